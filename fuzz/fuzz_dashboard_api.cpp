// The dashboard's HTTP API with hostile request bodies and parameters, on a real loopback
// server (httplib, as the dashboard service runs it): JSON bodies of /api/feedback,
// /api/block and /api/unblock, the limit parameter and alarm ids in paths. Each framed
// message of the input is one request (tag: endpoint). The server and its state live for
// the whole run (what a dashboard does); outputs are discarded.
#include <httplib.h>
#include <prometheus/registry.h>

#include <memory>

#include "fuzz_util.hpp"
#include "immunizer/common/http_server.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/dashboard/api.hpp"
#include "immunizer/dashboard/processor.hpp"
#include "immunizer/testing/manual_clock.hpp"

using namespace immunizer;
using namespace immunizer::dashboard;

namespace {

class NullOps final : public OperationsClient {
 public:
  OpsStatus block(const v1::BlockRequest& req, v1::BlockResponse* resp) override {
    resp->set_action_id("manual-1");
    return {};
  }
  OpsStatus unblock(const v1::UnblockRequest& req, v1::UnblockResponse* resp) override {
    resp->set_found(req.action_id() == "manual-1");
    return {};
  }
  OpsStatus list_active(v1::ListActiveResponse* resp) override { return {}; }
  std::string target() const override { return "null"; }
};

struct Stack {
  // The handlers behind the login gate (with auth on, every request would be 401).
  DashboardConfig cfg = [] {
    DashboardConfig c;
    c.auth = "none";
    return c;
  }();
  common::ManualClock clock;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  common::Topics topics = common::Topics::with_prefix("f.");
  DashboardState state{cfg, clock};
  SseHub hub{2, 16, *registry};
  fuzz::NullProducer producer;
  NullOps ops;
  DashboardApi api{cfg, state, hub, producer, topics, ops, clock, *registry};
  DashboardProcessor proc{state, hub, topics, clock, std::chrono::milliseconds(1000)};
  common::HttpServer http{"127.0.0.1", 0, registry};
  std::unique_ptr<httplib::Client> client;

  Stack() {
    for (const char* id : {"alarm-1", "alarm-2"}) {
      v1::Alarm a;
      a.set_id(id);
      a.set_model_key("shop|http.request|");
      a.mutable_principal()->set_session("S1");
      a.mutable_principal()->set_ip("10.0.0.1");
      a.set_combined_score(9);
      a.set_threshold(3);
      common::Message m;
      m.topic = topics.alarms;
      m.payload = a.SerializeAsString();
      proc.process(m, producer);
    }
    api.install(http);
    http.start();
    http.set_ready(true);
    client = std::make_unique<httplib::Client>("127.0.0.1", http.port());
    client->set_keep_alive(true);
    client->set_read_timeout(10, 0);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Stack* s = new Stack();  // lives until exit: the server's threads use it
  for (const auto& f : fuzz::split(data, size, 8)) {
    const std::string body(f.bytes);
    const auto r = [&]() -> httplib::Result {
      switch (f.tag % 6) {
        case 0:
          return s->client->Post("/api/feedback", body, "application/json");
        case 1:
          return s->client->Post("/api/block", body, "application/json");
        case 2:
          return s->client->Post("/api/unblock", body, "application/json");
        case 3:
          return s->client->Get("/api/alarms?limit=" + httplib::detail::encode_query_param(body));
        case 4:
          return s->client->Get("/api/alarms/" + httplib::detail::encode_query_param(body));
        default:
          return s->client->Get("/api/actions?limit=" + httplib::detail::encode_query_param(body));
      }
    }();
    // The server must answer every request (a handler that throws answers 500: a finding).
    if (!r || r->status >= 500) {
      fprintf(stderr, "request %u answered %d: %s\n", f.tag % 6, r ? r->status : -1,
              r ? r->body.c_str() : "no answer");
      abort();
    }
  }
  return 0;
}
