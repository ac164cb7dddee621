// The dashboard's HTTP API on a real server (127.0.0.1, port 0) via httplib::Client:
// JSON endpoints, SSE, feedback to Kafka (FakeProducer), manual actions, basic auth.
#include "immunizer/dashboard/api.hpp"
#include "immunizer/testing/manual_clock.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "immunizer/common/config.hpp"
#include "immunizer/common/http_server.hpp"
#include "immunizer/dashboard/processor.hpp"
#include "immunizer/testing/fake_kafka.hpp"
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
        hub(static_cast<size_t>(cfg.sse_max_clients), static_cast<size_t>(cfg.sse_queue),
            *registry),
        api(cfg, state, hub, producer, topics, ops_override ? *ops_override : ops, clock,
            *registry),
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

// The API tests below run without authentication; the auth tests at the end turn it on.
DashboardConfig test_config() {
  DashboardConfig c;
  c.auth = "none";
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
  s.state.add_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_APPLIED, now, now - 80'000'000));
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
    ASSERT_TRUE(cv.wait_for(l, 10s, [&] {
      return received.find("event: stats") != std::string::npos;
    })) << received;
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
  while (s.hub.clients() != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
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
  while (s.hub.clients() != 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
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
  auto r = c.Post("/api/feedback",
                  R"({"alarm_id":"a1","verdict":"false_positive","comment":"our scanner"})",
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
  EXPECT_EQ(fb.analyst(), "anonymous");  // dashboard.auth=none: nobody authenticated
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
  auto r =
      c.Post("/api/feedback", R"({"alarm_id":"a1","verdict":"confirmed"})", "application/json");
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
  common::TlsFiles plaintext;
  plaintext.enabled = false;
  auto ops =
      make_grpc_operations_client("127.0.0.1:1", 500ms, plaintext);  // nothing listens on port 1
  Server s(test_config(), ops.get());
  auto c = s.client();
  auto r = c.Post("/api/block", R"({"field":"ip","value":"10.1.2.3","ttl_ms":1000})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  const auto err = json::parse(r->body)["error"].get<std::string>();
  EXPECT_NE(err.find("execute unreachable at 127.0.0.1:1"), std::string::npos) << err;
}

TEST(DashboardApi, BasicAuthGuardsEverythingButHealthAndMetrics) {
  auto cfg = test_config();
  cfg.auth = "on";
  cfg.auth_user = "ops";
  cfg.auth_password = "s3cret";
  Server s(cfg);
  s.feed(make_alarm("a1", common::now_unix_nanos()));
  auto c = s.client();
  for (const char* path : {"/app.js", "/api/alarms", "/api/stats", "/api/events", "/api/session"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 401) << path;
    EXPECT_NE(r->get_header_value("WWW-Authenticate").find("Basic"), std::string::npos);
  }
  auto r = c.Get("/");  // the page sends browsers to the login form
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->get_header_value("Location"), "/login.html");
  r = c.Post("/api/feedback", R"({"alarm_id":"a1","verdict":"confirmed"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_TRUE(s.producer.sent.empty());
  for (const char* path :
       {"/healthz", "/readyz", "/metrics", "/login.html", "/login.js", "/app.css"}) {
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
  r = c.Post("/api/feedback", R"({"alarm_id":"a1","verdict":"confirmed","analyst":"someone else"})",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  v1::Feedback fb;
  ASSERT_TRUE(fb.ParseFromString(s.producer.on("t.feedback").at(0).payload));
  EXPECT_EQ(fb.analyst(), "ops");  // the authenticated operator, not the body's field
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
  EXPECT_THROW(
      DashboardConfig::from_config(common::Config::from_map({{"dashboard.max_alarms", "0"}})),
      common::ConfigError);
  EXPECT_THROW(
      DashboardConfig::from_config(common::Config::from_map({{"dashboard.auth_user", "ops"}})),
      common::ConfigError);
  EXPECT_EQ(c.auth, "on");  // on by default
  EXPECT_THROW(DashboardConfig::from_config(common::Config::from_map({{"dashboard.auth", "off"}})),
               common::ConfigError);
  EXPECT_THROW(DashboardConfig::from_config(
                   common::Config::from_map({{"dashboard.public_origin", "evil.example"}})),
               common::ConfigError);
  // Issue 11: a webhook HMAC key under 32 bytes is a configuration error (config check
  // reports it), not only a refusal when the notifier starts.
  for (const size_t n : {1, 31}) {
    EXPECT_THROW(DashboardConfig::from_config(common::Config::from_map(
                     {{"dashboard.notify_webhook_urls", "http://127.0.0.1:1/hook"},
                      {"dashboard.notify_webhook_secret", std::string(n, 'k')}})),
                 common::ConfigError)
        << n;
  }
  EXPECT_NO_THROW(DashboardConfig::from_config(
      common::Config::from_map({{"dashboard.notify_webhook_urls", "http://127.0.0.1:1/hook"},
                                {"dashboard.notify_webhook_secret", std::string(32, 'k')}})));
}

// ---- authentication, roles, CSRF, rate limits ------------------------------------------------

namespace {

// A credentials file as `immunizer up` writes it (one line user:password).
std::string credentials_file(const std::string& line) {
  static int n = 0;
  const auto p = std::filesystem::temp_directory_path() /
                 ("immunizer_dash_cred_" + std::to_string(::getpid()) + "_" + std::to_string(++n));
  std::ofstream(p) << line << "\n";
  return p.string();
}

DashboardConfig auth_config() {
  auto c = test_config();
  c.auth = "on";
  c.credentials_file = credentials_file("admin:pa55-word");
  // A viewer and a second operator, with PBKDF2 hashes (the minimum cost, for test speed).
  c.users = {"val:viewer:" + hash_password("viewer-pw", 10000),
             "olga:operator:" + hash_password("olga-pw", 10000)};
  return c;
}

struct LoggedIn {
  std::string cookie;  // "immunizer_session=..."
  std::string csrf;
  std::string set_cookie;
};

LoggedIn login(Server& s, const std::string& user, const std::string& password) {
  auto c = s.client();
  const std::string origin = "http://127.0.0.1:" + std::to_string(s.http.port());
  auto r = c.Post("/api/login", {{"Origin", origin}},
                  json{{"user", user}, {"password", password}}.dump(), "application/json");
  LoggedIn out;
  if (!r || r->status != 200) {
    ADD_FAILURE() << "login " << user << ": " << (r ? r->status : -1) << " " << (r ? r->body : "");
    return out;
  }
  out.set_cookie = r->get_header_value("Set-Cookie");
  out.cookie = out.set_cookie.substr(0, out.set_cookie.find(';'));
  out.csrf = json::parse(r->body).at("csrf_token").get<std::string>();
  return out;
}

// POST as the page would: session cookie, same Origin, CSRF token, JSON.
httplib::Result page_post(Server& s, const LoggedIn& l, const std::string& path, const json& body,
                          httplib::Headers extra = {},
                          const char* content_type = "application/json") {
  auto c = s.client();
  httplib::Headers h = {{"Cookie", l.cookie},
                        {"X-CSRF-Token", l.csrf},
                        {"Origin", "http://127.0.0.1:" + std::to_string(s.http.port())}};
  for (auto& [k, v] : extra) {
    h.erase(k);
    if (!v.empty()) h.emplace(k, v);
  }
  return c.Post(path.c_str(), h, body.dump(), content_type);
}

}  // namespace

TEST(DashboardAuth, UnauthenticatedPostsAreRefused) {
  Server s(auth_config());
  s.feed(make_alarm("a1", common::now_unix_nanos()));
  auto c = s.client();
  // The attack of issue 10: no credentials, text/plain, a foreign Origin; and a clean JSON one.
  auto r = c.Post("/api/block", {{"Origin", "http://evil.example"}},
                  R"({"field":"ip","value":"10.0.0.9","ttl_ms":99999999999})", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  for (const char* path : {"/api/block", "/api/unblock", "/api/feedback", "/api/logout"}) {
    r = c.Post(
        path,
        R"({"field":"ip","value":"10.0.0.9","action_id":"manual-1","alarm_id":"a1","verdict":"confirmed"})",
        "application/json");
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 401) << path << ": " << r->body;
  }
  // A made-up session cookie is nobody.
  r = c.Post("/api/block", {{"Cookie", "immunizer_session=00ff"}, {"X-CSRF-Token", "x"}},
             R"({"field":"ip","value":"10.0.0.9"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_TRUE(s.ops.blocks.empty());
  EXPECT_TRUE(s.ops.unblocks.empty());
  EXPECT_TRUE(s.producer.sent.empty());
}

TEST(DashboardAuth, CsrfShapedPostsAreRefused) {
  Server s(auth_config());
  const auto l = login(s, "admin", "pa55-word");
  ASSERT_FALSE(l.csrf.empty());
  const json block = {{"field", "ip"}, {"value", "10.0.0.9"}};
  struct Case {
    const char* what;
    httplib::Headers extra;
    const char* content_type;
    int status;
  };
  const std::vector<Case> cases = {
      {"foreign Origin", {{"Origin", "http://evil.example"}}, "application/json", 403},
      {"text/plain", {}, "text/plain", 415},
      {"form encoding", {}, "application/x-www-form-urlencoded", 415},
      {"no CSRF token", {{"X-CSRF-Token", ""}}, "application/json", 403},
      {"wrong CSRF token", {{"X-CSRF-Token", std::string(64, '0')}}, "application/json", 403},
      {"cross-site fetch", {{"Sec-Fetch-Site", "cross-site"}}, "application/json", 403},
      {"no Origin nor Sec-Fetch-Site", {{"Origin", ""}}, "application/json", 403},
  };
  for (const auto& c : cases) {
    auto r = page_post(s, l, "/api/block", block, c.extra, c.content_type);
    ASSERT_TRUE(r) << c.what;
    EXPECT_EQ(r->status, c.status) << c.what << ": " << r->body;
  }
  EXPECT_TRUE(s.ops.blocks.empty());
  // Basic auth with a foreign Origin is refused as well (a browser that cached the password).
  auto c = s.client();
  c.set_basic_auth("admin", "pa55-word");
  auto r =
      c.Post("/api/block", {{"Origin", "http://evil.example"}}, block.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_TRUE(s.ops.blocks.empty());
  // The page's own request goes through, with Sec-Fetch-Site alone too; the reason names the user.
  r = page_post(s, l, "/api/block", block);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  r = page_post(s, l, "/api/block", block, {{"Origin", ""}, {"Sec-Fetch-Site", "same-origin"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  ASSERT_EQ(s.ops.blocks.size(), 2u);
  EXPECT_NE(s.ops.blocks[0].reason().find("by admin"), std::string::npos)
      << s.ops.blocks[0].reason();
  // After logout the cookie is worthless.
  r = page_post(s, l, "/api/logout", json::object());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = page_post(s, l, "/api/block", block);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
}

TEST(DashboardAuth, ViewerCannotBlockUnblockOrGiveFeedback) {
  Server s(auth_config());
  s.feed(make_alarm("a1", common::now_unix_nanos()));
  const auto l = login(s, "val", "viewer-pw");
  ASSERT_FALSE(l.csrf.empty());
  auto c = s.client();
  c.set_default_headers({{"Cookie", l.cookie}});
  EXPECT_EQ(get_json(c, "/api/alarms").size(), 1u);  // a viewer sees
  EXPECT_EQ(get_json(c, "/api/session")["role"], "viewer");
  for (const auto& [path, body] : std::vector<std::pair<std::string, json>>{
           {"/api/block", {{"field", "ip"}, {"value", "10.0.0.9"}}},
           {"/api/unblock", {{"action_id", "manual-1"}}},
           {"/api/feedback", {{"alarm_id", "a1"}, {"verdict", "false_positive"}}}}) {
    auto r = page_post(s, l, path, body);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 403) << path << ": " << r->body;
  }
  // Basic auth as the viewer: the same.
  auto b = s.client();
  b.set_basic_auth("val", "viewer-pw");
  auto r = b.Post("/api/block", R"({"field":"ip","value":"10.0.0.9"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_TRUE(s.ops.blocks.empty());
  EXPECT_TRUE(s.ops.unblocks.empty());
  EXPECT_TRUE(s.producer.sent.empty());
  // The configured operator may.
  b.set_basic_auth("olga", "olga-pw");
  r = b.Post("/api/block", R"({"field":"ip","value":"10.0.0.9"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST(DashboardAuth, FeedbackRecordsTheSessionUserNotTheBody) {
  Server s(auth_config());
  s.feed(make_alarm("a1", common::now_unix_nanos()));
  const auto l = login(s, "olga", "olga-pw");
  auto r = page_post(s, l, "/api/feedback",
                     {{"alarm_id", "a1"}, {"verdict", "false_positive"}, {"analyst", "mallory"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  v1::Feedback fb;
  ASSERT_TRUE(fb.ParseFromString(s.producer.on("t.feedback").at(0).payload));
  EXPECT_EQ(fb.analyst(), "olga");
  auto c = s.client();
  c.set_default_headers({{"Cookie", l.cookie}});
  EXPECT_EQ(get_json(c, "/api/alarms/a1")["feedback"]["analyst"], "olga");
}

TEST(DashboardAuth, FeedbackIsRateLimitedPerOperator) {
  auto cfg = auth_config();
  cfg.feedback_per_minute = 3;
  Server s(cfg);
  for (int i = 1; i <= 5; ++i) s.feed(make_alarm(numbered("a", i), common::now_unix_nanos()));
  const auto admin = login(s, "admin", "pa55-word");
  const auto olga = login(s, "olga", "olga-pw");
  for (int i = 1; i <= 4; ++i) {
    auto r = page_post(s, admin, "/api/feedback",
                       {{"alarm_id", numbered("a", i)}, {"verdict", "false_positive"}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, i <= 3 ? 200 : 429) << i << ": " << r->body;
    if (i == 4) {
      EXPECT_FALSE(r->get_header_value("Retry-After").empty());
    }
  }
  // A second session of the same operator shares the limit; another operator has its own.
  const auto admin2 = login(s, "admin", "pa55-word");
  auto r =
      page_post(s, admin2, "/api/feedback", {{"alarm_id", "a5"}, {"verdict", "false_positive"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  r = page_post(s, olga, "/api/feedback", {{"alarm_id", "a5"}, {"verdict", "false_positive"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(s.producer.on("t.feedback").size(), 4u);
}

TEST(DashboardAuth, LoginAttemptsAreRateLimited) {
  auto cfg = auth_config();
  cfg.login_attempts_per_minute = 3;
  Server s(cfg);
  auto c = s.client();
  for (int i = 0; i < 3; ++i) {
    auto r = c.Post("/api/login", R"({"user":"admin","password":"guess"})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_TRUE(r->get_header_value("Set-Cookie").empty());
  }
  // Now even the right password waits, and so does basic auth from the same address.
  auto r = c.Post("/api/login", R"({"user":"admin","password":"pa55-word"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_FALSE(r->get_header_value("Retry-After").empty());
  c.set_basic_auth("admin", "pa55-word");
  r = c.Get("/api/stats");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
}

TEST(DashboardAuth, SessionCookieFlagsAndSecurityHeaders) {
  Server s(auth_config());
  const auto l = login(s, "admin", "pa55-word");
  EXPECT_NE(l.set_cookie.find("HttpOnly"), std::string::npos) << l.set_cookie;
  EXPECT_NE(l.set_cookie.find("SameSite=Strict"), std::string::npos) << l.set_cookie;
  EXPECT_EQ(l.set_cookie.find("Secure"), std::string::npos)
      << "plain http: no Secure" << l.set_cookie;
  auto c = s.client();
  for (const char* path : {"/", "/login.html", "/api/alarms", "/no-such-page", "/healthz"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    const std::string csp = r->get_header_value("Content-Security-Policy");
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << path << ": " << csp;
    EXPECT_NE(csp.find("script-src 'self';"), std::string::npos) << path << ": " << csp;
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << path;
    EXPECT_EQ(r->get_header_value("Referrer-Policy"), "no-referrer") << path;
  }
  // No inline script in the pages (the CSP would refuse it).
  for (const char* path : {"/login.html"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body.find("<script>"), std::string::npos);
    EXPECT_EQ(r->body.find("onclick="), std::string::npos);
  }
  c.set_default_headers({{"Cookie", l.cookie}});
  auto r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.find("<script>"), std::string::npos);

  // Behind a TLS front (public_origin https): the cookie is Secure, the Origin is the public one.
  auto cfg = auth_config();
  cfg.public_origin = "https://immunizer.example.com";
  Server t(cfg);
  auto tc = t.client();
  r = tc.Post("/api/login", {{"Origin", "https://immunizer.example.com"}},
              R"({"user":"admin","password":"pa55-word"})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->get_header_value("Set-Cookie").find("; Secure"), std::string::npos);
  r = tc.Post("/api/login", {{"Origin", "http://127.0.0.1:" + std::to_string(t.http.port())}},
              R"({"user":"admin","password":"pa55-word"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
}

TEST(DashboardAuth, UsersAndCredentialsAreValidated) {
  auto cfg = test_config();
  cfg.auth = "on";
  common::ManualClock clock;
  EXPECT_THROW(Authenticator(cfg, clock), common::ConfigError);  // on, and no users at all
  cfg.credentials_file = "/nonexistent/dashboard.credentials";
  EXPECT_THROW(Authenticator(cfg, clock), common::ConfigError);
  cfg.credentials_file = credentials_file("no-colon-here");
  EXPECT_THROW(Authenticator(cfg, clock), common::ConfigError);
  cfg.credentials_file = "";
  cfg.users = {"bob:admin:" + hash_password("x", 10000)};
  EXPECT_THROW(Authenticator(cfg, clock), common::ConfigError);  // unknown role
  cfg.users = {"bob:viewer:plaintext"};
  EXPECT_THROW(Authenticator(cfg, clock), common::ConfigError);  // not a hash
  cfg.users = {"bob:viewer:pbkdf2-sha256$10$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA=="};
  EXPECT_THROW(Authenticator(cfg, clock), common::ConfigError);  // too few iterations
  cfg.users = {"bob:viewer:" + hash_password("right", 10000)};
  Authenticator a(cfg, clock);
  EXPECT_EQ(a.check_password("bob", "right"), Role::kViewer);
  EXPECT_EQ(a.check_password("bob", "wrong"), std::nullopt);
  EXPECT_EQ(a.check_password("eve", "right"), std::nullopt);
  cfg.auth = "none";
  EXPECT_FALSE(Authenticator(cfg, clock).enabled());
  // Hashes: salted (two hashes of one password differ), verified, malformed ones refused.
  const auto h1 = hash_password("pw", 10000), h2 = hash_password("pw", 10000);
  EXPECT_NE(h1, h2);
  EXPECT_TRUE(verify_password("pw", h1));
  EXPECT_FALSE(verify_password("pW", h1));
  EXPECT_FALSE(verify_password("pw", "pbkdf2-sha256$x$y$z"));
}

TEST(DashboardAuth, SessionsExpire) {
  auto cfg = auth_config();
  common::ManualClock clock;
  Authenticator a(cfg, clock);
  auto [id, s] = a.create_session("admin", Role::kOperator);
  EXPECT_EQ(s.csrf_token.size(), 64u);
  ASSERT_TRUE(a.find_session(id));
  clock.advance(std::chrono::milliseconds(cfg.session_ttl_ms + 1));
  EXPECT_FALSE(a.find_session(id));
}
