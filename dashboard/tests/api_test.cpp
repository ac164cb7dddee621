// The dashboard's HTTP API on a real server (127.0.0.1, port 0) via httplib::Client:
// JSON endpoints, SSE, feedback to Kafka (FakeProducer), manual actions, basic auth.
#include "immunizer/dashboard/api.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <future>
#include <thread>

#include "immunizer/common/config.hpp"
#include "immunizer/common/fake_kafka.hpp"
#include "immunizer/common/http_server.hpp"
#include "immunizer/dashboard/processor.hpp"
#include "test_records.hpp"

using namespace immunizer;
using namespace immunizer::dashboard;
using namespace immunizer::dashboard::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

class FakeOps final : public OperationsClient {
 public:
  OpsStatus block(const v1::BlockRequest& req, v1::BlockResponse* resp) override {
    std::lock_guard l(mu);
    blocks.push_back(req);
    resp->set_action_id("manual-1");
    return next;
  }
  OpsStatus unblock(const v1::UnblockRequest& req, v1::UnblockResponse* resp) override {
    std::lock_guard l(mu);
    unblocks.push_back(req);
    resp->set_found(req.action_id() == "manual-1");
    return next;
  }
  OpsStatus list_active(v1::ListActiveResponse* resp) override {
    auto* a = resp->add_actions();
    a->mutable_action()->set_id("manual-1");
    a->mutable_action()->set_kind(v1::ACTION_BLOCK_PRINCIPAL);
    a->set_acks(2);
    auto* e = resp->add_effectors();
    e->set_app("shop");
    e->set_instance("shop-1");
    return next;
  }
  std::string target() const override { return "fake"; }
  std::mutex mu;
  std::vector<v1::BlockRequest> blocks;
  std::vector<v1::UnblockRequest> unblocks;
  OpsStatus next;
};

struct Server {
  explicit Server(DashboardConfig c, OperationsClient* ops_override = nullptr)
      : cfg(std::move(c)),
        registry(std::make_shared<prometheus::Registry>()),
        topics(common::Topics::with_prefix("t.")),
        state(cfg, clock),
        hub(static_cast<size_t>(cfg.sse_max_clients), static_cast<size_t>(cfg.sse_queue), *registry),
        api(cfg, state, hub, producer, topics, ops_override ? *ops_override : ops, clock, *registry),
        proc(state, hub, topics, clock, 1000ms),
        http("127.0.0.1", 0, registry) {
    api.install(http);
    http.start();
    http.set_ready(true);
  }
  ~Server() {
    hub.close();
    http.stop();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", http.port());
    c.set_read_timeout(10, 0);
    return c;
  }
  void feed(const v1::Alarm& a) {
    common::Message m;
    m.topic = topics.alarms;
    m.payload = a.SerializeAsString();
    proc.process(m, producer);
  }
  DashboardConfig cfg;
  common::SystemClock clock;
  std::shared_ptr<prometheus::Registry> registry;
  common::Topics topics;
  DashboardState state;
  SseHub hub;
  common::FakeProducer producer;
  FakeOps ops;
  DashboardApi api;
  DashboardProcessor proc;
  common::HttpServer http;
};

DashboardConfig test_config() {
  DashboardConfig c;
  c.sse_keepalive_ms = 200;
  c.sse_max_clients = 4;
  return c;
}

json get_json(httplib::Client& c, const std::string& path, int expect = 200) {
  auto r = c.Get(path.c_str());
  EXPECT_TRUE(r) << path;
  if (!r) return nullptr;
  EXPECT_EQ(r->status, expect) << path << ": " << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  return json::parse(r->body);
}

}  // namespace

TEST(DashboardApi, ServesTheEmbeddedPage) {
  Server s(test_config());
  auto c = s.client();
  auto r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(r->body.find("Live alarms"), std::string::npos);
  r = c.Get("/app.js");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("EventSource"), std::string::npos);
  r = c.Get("/app.css");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(DashboardApi, AlarmsListByIdAndLimit) {
  Server s(test_config());
  for (int i = 1; i <= 3; ++i) s.feed(make_alarm(numbered("a", i), common::now_unix_nanos()));
  auto c = s.client();
  auto list = get_json(c, "/api/alarms?limit=2");
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["id"], "a3");
  EXPECT_EQ(list[1]["id"], "a2");
  EXPECT_EQ(get_json(c, "/api/alarms").size(), 3u);
  EXPECT_EQ(get_json(c, "/api/alarms?limit=junk").size(), 3u);
  auto one = get_json(c, "/api/alarms/a1");
  EXPECT_EQ(one["top_features"][0]["feature"], "arg.cantidad.rare_ngram");
  auto missing = get_json(c, "/api/alarms/nope", 404);
  EXPECT_NE(missing["error"].get<std::string>().find("nope"), std::string::npos);
}

TEST(DashboardApi, InvalidUtf8FromTheDataPlaneIsServedNotFatal) {
  Server s(test_config());
  auto a = make_alarm("bin", common::now_unix_nanos());
  a.set_call("http GET /x\xff\xfe%00");
  a.mutable_principal()->set_user("\xc3\x28");
  // Protobuf refuses such strings on the wire; anything else that reaches the state must
  // still render (replaced characters), not turn every listing into a 500.
  s.state.add_alarm(a);
  auto c = s.client();
  auto list = get_json(c, "/api/alarms");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["call"].get<std::string>().rfind("http GET /x", 0), 0u);
}

TEST(DashboardApi, ActionsStatsAndModels) {
  Server s(test_config());
  const int64_t now = common::now_unix_nanos();
  s.state.add_action(make_action_event("act1", "a1", v1::ACTION_EVENT_APPLIED, now, now - 80'000'000));
  s.state.add_score(make_score("m1", 3, 2, "ACTIVE"));
  auto c = s.client();
  auto actions = get_json(c, "/api/actions?limit=5");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0]["type"], "applied");
  EXPECT_NEAR(actions[0]["latency_ms"].get<double>(), 80.0, 1e-3);
  EXPECT_EQ(get_json(c, "/api/actions/active").size(), 1u);
  auto stats = get_json(c, "/api/stats");
  EXPECT_EQ(stats["blocks_active"], 1);
  EXPECT_EQ(stats["records_scored"], 1);
  EXPECT_EQ(stats["sse"]["clients"], 0);
  EXPECT_EQ(get_json(c, "/api/models")[0]["model_key"], "m1");
}

TEST(DashboardApi, EventStreamDeliversAnAlarmRaisedAfterConnecting) {
  Server s(test_config());
  std::mutex mu;
  std::condition_variable cv;
  std::string received;
  bool done = false;
  std::thread reader([&] {
    auto c = s.client();
    c.Get("/api/events", [&](const char* data, size_t n) {
      std::lock_guard l(mu);
      received.append(data, n);
      cv.notify_all();
      return received.find("event: alarm") == std::string::npos;  // stop after the alarm
    });
    std::lock_guard l(mu);
    done = true;
    cv.notify_all();
  });
  {
    // Connected once the greeting (current stats) has arrived.
    std::unique_lock l(mu);
    ASSERT_TRUE(cv.wait_for(l, 10s, [&] { return received.find("event: stats") != std::string::npos; }))
        << received;
  }
  EXPECT_EQ(s.hub.clients(), 1u);
  s.feed(make_alarm("live-1", common::now_unix_nanos()));
  {
    std::unique_lock l(mu);
    ASSERT_TRUE(cv.wait_for(l, 10s, [&] { return done; })) << received;
  }
  reader.join();
  const auto at = received.find("event: alarm\ndata: ");
  ASSERT_NE(at, std::string::npos) << received;
  const auto line_end = received.find('\n', at + 13);
  const auto j = json::parse(received.substr(at + 19, line_end - at - 19));
  EXPECT_EQ(j["id"], "live-1");
  EXPECT_EQ(j["top_features"][0]["feature"], "arg.cantidad.rare_ngram");
  // The browser went away: its slot is released at the next write (keepalive 200 ms).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (s.hub.clients() != 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(s.hub.clients(), 0u);
}

TEST(DashboardApi, BrowserThatStopsReadingNeverBlocksTheConsumer) {
  auto cfg = test_config();
  cfg.sse_queue = 4;
  Server s(cfg);
  // A raw client that sends the request and then never reads a byte.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(s.http.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string req = "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (s.hub.clients() != 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_EQ(s.hub.clients(), 1u);
  // ~40 MB of alarms: far more than the socket buffers hold. Each feed returns at once.
  auto big = make_alarm("big", common::now_unix_nanos());
  (*big.mutable_labels())["padding"] = std::string(20000, 'x');
  std::chrono::steady_clock::duration slowest{};
  for (int i = 0; i < 2000; ++i) {
    big.set_id(numbered("big-", i));
    const auto t0 = std::chrono::steady_clock::now();
    s.feed(big);
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
  }
  // Waiting on the socket would take the HTTP write timeout (5 s) at least once.
  EXPECT_LT(slowest, 1s);
  EXPECT_GT(s.hub.dropped(), 0u);
  EXPECT_EQ(s.state.alarm_count(), 1000u);
  ::close(fd);
}

TEST(DashboardApi, FeedbackProducesAFeedbackMessage) {
  Server s(test_config());
  s.feed(make_alarm("a1", common::now_unix_nanos()));
  auto c = s.client();
  auto r = c.Post("/api/feedback", R"({"alarm_id":"a1","verdict":"false_positive","comment":"our scanner"})",
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const auto sent = s.producer.on("t.feedback");
  ASSERT_EQ(sent.size(), 1u);
  v1::Feedback fb;
  ASSERT_TRUE(fb.ParseFromString(sent[0].payload));
  EXPECT_EQ(sent[0].key, "shop|http GET /tienda1/publico/anadir.jsp|");
  EXPECT_EQ(fb.alarm_id(), "a1");
  EXPECT_EQ(fb.model_key(), sent[0].key);
  EXPECT_EQ(fb.verdict(), v1::FEEDBACK_FALSE_POSITIVE);
  EXPECT_EQ(fb.record_id().seq(), 42u);
  EXPECT_EQ(fb.principal().session(), "sess-a1");
  EXPECT_EQ(fb.comment(), "our scanner");
  EXPECT_EQ(fb.analyst(), "dashboard");
  EXPECT_GT(fb.at_unix_nanos(), 0);
  EXPECT_EQ(fb.values_size(), 0);  // alarms do not carry the vector yet
  EXPECT_EQ(get_json(c, "/api/alarms/a1")["feedback"]["verdict"], "false_positive");

  r = c.Post("/api/feedback", R"({"alarm_id":"a1","verdict":"maybe"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c.Post("/api/feedback", R"({"alarm_id":"zzz","verdict":"confirmed"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = c.Post("/api/feedback", "not json", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(s.producer.on("t.feedback").size(), 1u);
}

TEST(DashboardApi, FeedbackNotAcknowledgedIs503) {
  Server s(test_config());
  s.feed(make_alarm("a1", common::now_unix_nanos()));
  s.producer.fail_next_flush = true;
  auto c = s.client();
  auto r = c.Post("/api/feedback", R"({"alarm_id":"a1","verdict":"confirmed"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_TRUE(get_json(c, "/api/alarms/a1")["feedback"].is_null());
}

TEST(DashboardApi, BlockAndUnblockGoToExecute) {
  Server s(test_config());
  s.feed(make_alarm("a1", common::now_unix_nanos()));
  auto c = s.client();
  auto r = c.Post("/api/block", R"({"alarm_id":"a1","ttl_ms":60000})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["action_id"], "manual-1");
  r = c.Post("/api/block", R"({"field":"ip","value":"10.1.2.3"})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_EQ(s.ops.blocks.size(), 2u);
  EXPECT_EQ(s.ops.blocks[0].field(), v1::PRINCIPAL_FIELD_SESSION);  // the alarm's session
  EXPECT_EQ(s.ops.blocks[0].value(), "sess-a1");
  EXPECT_EQ(s.ops.blocks[0].ttl_millis(), 60000);
  EXPECT_EQ(s.ops.blocks[1].field(), v1::PRINCIPAL_FIELD_IP);
  EXPECT_EQ(s.ops.blocks[1].ttl_millis(), s.cfg.block_ttl_ms);
  r = c.Post("/api/block", R"({"field":"cookie","value":"x"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);

  r = c.Post("/api/unblock", R"({"action_id":"manual-1"})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["found"], true);
  auto active = get_json(c, "/api/execute/active");
  EXPECT_EQ(active["actions"][0]["action"]["kind"], "block_principal");
  EXPECT_EQ(active["actions"][0]["acks"], 2);
  EXPECT_EQ(active["effectors"][0]["instance"], "shop-1");
  s.ops.next = {OpsStatus::kUnavailable, "execute unreachable at fake"};
  r = c.Post("/api/unblock", R"({"action_id":"manual-1"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(get_json(c, "/api/execute/active", 502)["error"], "execute unreachable at fake");
}

TEST(DashboardApi, UnreachableExecuteIs502WithAClearError) {
  auto ops = make_grpc_operations_client("127.0.0.1:1", 500ms);  // nothing listens on port 1
  Server s(test_config(), ops.get());
  auto c = s.client();
  auto r = c.Post("/api/block", R"({"field":"ip","value":"10.1.2.3","ttl_ms":1000})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  const auto err = json::parse(r->body)["error"].get<std::string>();
  EXPECT_NE(err.find("execute unreachable at 127.0.0.1:1"), std::string::npos) << err;
}

TEST(DashboardApi, BasicAuthGuardsEverythingButHealthAndMetrics) {
  auto cfg = test_config();
  cfg.auth_user = "ops";
  cfg.auth_password = "s3cret";
  Server s(cfg);
  s.feed(make_alarm("a1", common::now_unix_nanos()));
  auto c = s.client();
  for (const char* path : {"/", "/app.js", "/api/alarms", "/api/stats", "/api/events"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 401) << path;
    EXPECT_NE(r->get_header_value("WWW-Authenticate").find("Basic"), std::string::npos);
  }
  auto r = c.Post("/api/feedback", R"({"alarm_id":"a1","verdict":"confirmed"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_TRUE(s.producer.sent.empty());
  for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
    r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
  }
  c.set_basic_auth("ops", "wrong");
  r = c.Get("/api/stats");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  c.set_basic_auth("ops", "s3cret");
  EXPECT_EQ(get_json(c, "/api/alarms").size(), 1u);
  r = c.Post("/api/feedback", R"({"alarm_id":"a1","verdict":"confirmed"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  v1::Feedback fb;
  ASSERT_TRUE(fb.ParseFromString(s.producer.on("t.feedback").at(0).payload));
  EXPECT_EQ(fb.analyst(), "ops");  // the authenticated operator
}

TEST(DashboardApi, MetricsExposeSseGauges) {
  Server s(test_config());
  auto c = s.client();
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("immunizer_dashboard_sse_clients"), std::string::npos);
  EXPECT_NE(r->body.find("immunizer_dashboard_sse_dropped_total"), std::string::npos);
}

TEST(DashboardConfig, DefaultsAndValidation) {
  auto c = DashboardConfig::from_config(common::Config::from_map({}));
  EXPECT_EQ(c.max_alarms, 1000);
  EXPECT_EQ(c.execute_address, "127.0.0.1:7070");
  EXPECT_EQ(c.group.rfind("immunizer-dashboard", 0), 0u);
  auto d = DashboardConfig::from_config(
      common::Config::from_map({{"dashboard.max_alarms", "5"}, {"dashboard.group", "g"}}));
  EXPECT_EQ(d.max_alarms, 5);
  EXPECT_EQ(d.group, "g");
  EXPECT_THROW(DashboardConfig::from_config(common::Config::from_map({{"dashboard.max_alarms", "0"}})),
               common::ConfigError);
  EXPECT_THROW(DashboardConfig::from_config(common::Config::from_map({{"dashboard.auth_user", "ops"}})),
               common::ConfigError);
}
