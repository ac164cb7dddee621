// The incident API on a real server (127.0.0.1, port 0) fed through the
// processor: one incident per attacker, detail with alarms and actions, state
// changes by the authenticated operator (audited, notified), CSV/JSON export,
// evicted alarms served from the history, enforcing actions counted from
// execute's list, and history surviving a restart.
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "immunizer/common/http_server.hpp"
#include "immunizer/dashboard/api.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "test_records.hpp"

using namespace immunizer;
using namespace immunizer::dashboard;
using namespace immunizer::dashboard::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr int64_t kSec = 1'000'000'000;

// execute's list: a block, an action listed twice (must count once) and a
// throttle; a log action is not enforcing.
class ListingOps final : public OperationsClient {
 public:
  OpsStatus block(const v1::BlockRequest&, v1::BlockResponse* resp) override {
    resp->set_action_id("manual-1");
    return {};
  }
  OpsStatus unblock(const v1::UnblockRequest&, v1::UnblockResponse* resp) override {
    resp->set_found(true);
    return {};
  }
  OpsStatus list_active(v1::ListActiveResponse* resp) override {
    if (!up) return {OpsStatus::kUnavailable, "down"};
    for (const auto& [id, kind] :
         std::vector<std::pair<std::string, v1::ActionKind>>{{"b1", v1::ACTION_BLOCK_PRINCIPAL},
                                                             {"b1", v1::ACTION_BLOCK_PRINCIPAL},
                                                             {"t1", v1::ACTION_THROTTLE_PRINCIPAL},
                                                             {"l1", v1::ACTION_LOG}}) {
      auto* a = resp->add_actions();
      a->mutable_action()->set_id(id);
      a->mutable_action()->set_kind(kind);
    }
    resp->add_effectors()->set_app("shop");
    return {};
  }
  std::string target() const override { return "fake"; }
  std::atomic<bool> up{true};
};

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/immunizer-incapi-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

struct Server {
  Server(DashboardConfig c, const std::string& db, const std::string& jsonl)
      : cfg(std::move(c)),
        registry(std::make_shared<prometheus::Registry>()),
        topics(common::Topics::with_prefix("t.")),
        state(cfg, clock),
        hub(4, 64, *registry),
        incidents(IncidentConfig{}, std::make_unique<IncidentStore>(db), clock, *registry),
        notifier(notify_cfg(jsonl), *registry, clock),
        execute(ops, 1000ms, clock),
        api(cfg, state, hub, producer, topics, ops, clock, *registry,
            {&incidents, &notifier, &execute}),
        proc(state, hub, topics, clock, 1000ms, {&incidents, &notifier, &execute}),
        http("127.0.0.1", 0, registry) {
    api.install(http);
    http.start();
    http.set_ready(true);
  }
  ~Server() {
    hub.close();
    http.stop();
  }
  static NotifierConfig notify_cfg(const std::string& jsonl) {
    NotifierConfig n;
    n.jsonl_path = jsonl;
    return n;
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", http.port());
    c.set_read_timeout(10, 0);
    c.set_basic_auth("alice", "pw");
    return c;
  }
  void feed(const v1::Alarm& a) {
    common::Message m;
    m.topic = topics.alarms;
    m.payload = a.SerializeAsString();
    proc.process(m, producer);
  }
  void feed(const v1::ActionEvent& e) {
    common::Message m;
    m.topic = topics.actions;
    m.payload = e.SerializeAsString();
    proc.process(m, producer);
  }
  DashboardConfig cfg;
  common::SystemClock clock;
  std::shared_ptr<prometheus::Registry> registry;
  common::Topics topics;
  DashboardState state;
  SseHub hub;
  common::FakeProducer producer;
  ListingOps ops;
  IncidentEngine incidents;
  Notifier notifier;
  ExecuteView execute;
  DashboardApi api;
  DashboardProcessor proc;
  common::HttpServer http;
};

DashboardConfig test_config() {
  DashboardConfig c;
  c.max_alarms = 5;  // a small ring: most alarms are evicted from memory
  c.auth_user = "alice";
  c.auth_password = "pw";
  return c;
}

json get_json(httplib::Client& c, const std::string& path, int expect = 200) {
  auto r = c.Get(path.c_str());
  EXPECT_TRUE(r) << path;
  if (!r) return nullptr;
  EXPECT_EQ(r->status, expect) << path << ": " << r->body;
  return json::parse(r->body);
}

int post(httplib::Client& c, const std::string& path, const json& body, json* out = nullptr) {
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  if (!r) return -1;
  if (out) *out = json::parse(r->body, nullptr, false);
  return r->status;
}

v1::Alarm attack(int i, int64_t t0, const std::string& session = "ATTACKER1") {
  auto a = make_alarm(numbered(session == "ATTACKER1" ? "a" : "b", i), t0 + i * kSec);
  a.mutable_principal()->set_session(session);
  return a;
}

struct IncidentsApi : ::testing::Test {
  TempDir dir;
  std::string db() const { return (dir.path / "d.db").string(); }
  std::string jsonl() const { return (dir.path / "n.jsonl").string(); }
};

TEST_F(IncidentsApi, OneIncidentPerAttackerWithAlarmsActionsAndLatency) {
  Server s(test_config(), db(), jsonl());
  const int64_t t0 = common::now_unix_nanos() - 100 * kSec;
  for (int i = 0; i < 40; ++i) s.feed(attack(i, t0));
  s.feed(attack(0, t0, "bystander"));
  s.feed(make_action_event("act1", "a3", v1::ACTION_EVENT_DISPATCHED, t0 + 4 * kSec,
                           t0 + 3 * kSec - 30'000'000));
  s.feed(make_action_event("act1", "a3", v1::ACTION_EVENT_APPLIED, t0 + 3 * kSec + 20'000'000,
                           t0 + 3 * kSec - 30'000'000));
  auto c = s.client();
  auto l = get_json(c, "/api/incidents");
  EXPECT_EQ(l["total"], 2);
  auto mine = get_json(c, "/api/incidents?principal=ATTACKER1");
  ASSERT_EQ(mine["total"], 1);
  const auto inc = mine["incidents"][0];
  EXPECT_EQ(inc["alarms"], 40);
  EXPECT_EQ(inc["rows"], 1);
  EXPECT_EQ(inc["actions"], 1);
  auto d = get_json(c, "/api/incidents/" + std::to_string(inc["id"].get<int64_t>()) + "?alarms=10");
  EXPECT_EQ(d["recent_alarms"].size(), 10u);
  EXPECT_EQ(d["recent_alarms"][0]["id"], "a39");
  EXPECT_FALSE(d["recent_alarms"][0].contains("values"));
  ASSERT_EQ(d["groups"].size(), 1u);
  EXPECT_EQ(d["groups"][0]["count"], 40);
  ASSERT_EQ(d["action_list"].size(), 1u);
  EXPECT_EQ(d["action_list"][0]["status"], "applied");
  EXPECT_NEAR(d["action_list"][0]["latency_ms"].get<double>(), 50.0, 1e-6);
  get_json(c, "/api/incidents/999999", 404);
  get_json(c, "/api/incidents?state=bogus", 400);
  EXPECT_EQ(get_json(c, "/api/incidents?state=")["total"], 2);  // empty: no filter
  EXPECT_EQ(get_json(c, "/api/incidents?state=resolved,false_positive")["total"], 0);
  get_json(c, "/api/incidents?severity=extreme", 400);
  get_json(c, "/api/incidents?limit=0", 400);
  EXPECT_EQ(get_json(c, "/api/incidents?severity=critical")["total"], 0);
  EXPECT_EQ(get_json(c, "/api/incidents?limit=1&offset=1")["incidents"].size(), 1u);

  // The page's notification file got one "opened" per incident.
  s.notifier.stop(5s);
  std::ifstream in(jsonl());
  int opened = 0;
  for (std::string line; std::getline(in, line);)
    opened += json::parse(line)["type"] == "incident.opened";
  EXPECT_EQ(opened, 2);
}

TEST_F(IncidentsApi, StateChangesNeedTheOperatorAndAreAuditedAndNotified) {
  Server s(test_config(), db(), jsonl());
  s.feed(attack(0, common::now_unix_nanos()));
  auto c = s.client();
  const int64_t id = get_json(c, "/api/incidents")["incidents"][0]["id"].get<int64_t>();
  const std::string path = "/api/incidents/" + std::to_string(id) + "/state";

  httplib::Client anon("127.0.0.1", s.http.port());
  EXPECT_EQ(post(anon, path, {{"state", "resolved"}}), 401);

  json out;
  EXPECT_EQ(post(c, path, {{"state", "nonsense"}}), 400);
  EXPECT_EQ(post(c, "/api/incidents/424242/state", {{"state", "resolved"}}), 404);
  ASSERT_EQ(
      post(c, path, {{"state", "acknowledged"}, {"comment", "mine"}, {"analyst", "mallory"}}, &out),
      200);
  EXPECT_EQ(out["state"], "acknowledged");
  EXPECT_EQ(out["state_by"],
            "alice");  // the authenticated operator, not what the body claims
  EXPECT_EQ(post(c, path, {{"state", "open"}}), 409);
  ASSERT_EQ(post(c, path, {{"state", "resolved"}}), 200);
  auto d = get_json(c, "/api/incidents/" + std::to_string(id));
  EXPECT_EQ(d["state"], "resolved");
  ASSERT_EQ(d["history"].size(), 2u);
  EXPECT_EQ(d["history"][1]["what"], "state:open->acknowledged");
  EXPECT_EQ(d["history"][1]["detail"], "mine");

  // A block from the incident is audited on it.
  ASSERT_EQ(
      post(c, "/api/block", {{"field", "session"}, {"value", "ATTACKER1"}, {"incident_id", id}}),
      200);
  d = get_json(c, "/api/incidents/" + std::to_string(id));
  EXPECT_EQ(d["history"][0]["what"], "block");
  EXPECT_EQ(d["history"][0]["who"], "alice");

  s.notifier.stop(5s);
  std::ifstream in(jsonl());
  std::vector<std::string> types;
  for (std::string line; std::getline(in, line);) types.push_back(json::parse(line)["type"]);
  EXPECT_EQ(types, (std::vector<std::string>{"incident.opened", "incident.resolved"}));
}

TEST_F(IncidentsApi, ExportCsvAndJsonOfAFilteredList) {
  Server s(test_config(), db(), jsonl());
  const int64_t t0 = common::now_unix_nanos();
  s.feed(attack(0, t0));
  auto evil = attack(1, t0, "=HYPERLINK(\"http://x\")");
  evil.set_call("-cmd|' /C calc'!A0");
  s.feed(evil);
  auto c = s.client();
  auto r = c.Get("/api/incidents/export?format=csv");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/csv; charset=utf-8");
  EXPECT_EQ(r->body.rfind("id,state,principal,severity,alarms", 0), 0u);
  EXPECT_NE(r->body.find("\"session:ATTACKER1\""), std::string::npos);
  // Nothing a spreadsheet would run as a formula, quotes doubled.
  EXPECT_NE(r->body.find("\"session:=HYPERLINK(\"\"http://x\"\")\""), std::string::npos);
  EXPECT_NE(r->body.find("\"'-cmd|' /C calc'!A0 (1)\""), std::string::npos);
  size_t lines = 0;
  for (char ch : r->body) lines += ch == '\n';
  EXPECT_EQ(lines, 3u);
  auto j = get_json(c, "/api/incidents/export?format=json&principal=ATTACKER1");
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["principal_key"], "session:ATTACKER1");
  get_json(c, "/api/incidents/export?format=xml", 400);
}

TEST_F(IncidentsApi, EvictedAlarmsComeFromTheHistoryAndTakeFeedback) {
  Server s(test_config(), db(), jsonl());
  const int64_t t0 = common::now_unix_nanos();
  for (int i = 0; i < 20; ++i) s.feed(attack(i, t0));
  auto c = s.client();
  EXPECT_FALSE(s.state.find_alarm("a0"));  // out of the 5-alarm ring
  auto a = get_json(c, "/api/alarms/a0");
  EXPECT_EQ(a["id"], "a0");
  EXPECT_EQ(a["from_history"], true);
  json out;
  ASSERT_EQ(post(c, "/api/feedback", {{"alarm_id", "a0"}, {"verdict", "false_positive"}}, &out),
            200)
      << out;
  ASSERT_EQ(s.producer.sent.size(), 1u);
  v1::Feedback fb;
  ASSERT_TRUE(fb.ParseFromString(s.producer.sent[0].payload));
  EXPECT_EQ(fb.alarm_id(), "a0");
  EXPECT_EQ(fb.analyst(), "alice");
  auto d = get_json(c, "/api/incidents/1?alarms=1000");
  bool found = false;
  for (const auto& al : d["recent_alarms"])
    if (al["id"] == "a0") found = al["feedback"]["verdict"] == "false_positive";
  EXPECT_TRUE(found);
}

TEST_F(IncidentsApi, EnforcingActionsComeFromExecuteCountedOnce) {
  Server s(test_config(), db(), jsonl());
  const int64_t now = common::now_unix_nanos();
  // The audit trail alone would count 30 enforcing actions (one per plan, all
  // extending one).
  for (int i = 0; i < 30; ++i)
    s.state.add_action(
        make_action_event(numbered("x", i), "a1", v1::ACTION_EVENT_DISPATCHED, now, now));
  auto c = s.client();
  auto st = get_json(c, "/api/stats");
  EXPECT_EQ(st["blocks_active"], 30);
  EXPECT_EQ(st["blocks_active_source"],
            "audit_trail");  // execute not polled yet
  ASSERT_TRUE(s.execute.refresh());
  st = get_json(c, "/api/stats");
  EXPECT_EQ(st["blocks_active"],
            2);  // b1 once, t1; the log action is not enforcing
  EXPECT_EQ(st["blocks_active_source"], "execute");
  EXPECT_EQ(st["execute"]["by_kind"]["block_principal"], 1);
  EXPECT_EQ(st["incidents"]["total"], 0);
  s.ops.up = false;
  EXPECT_FALSE(s.execute.refresh());
  st = get_json(c, "/api/stats");
  EXPECT_EQ(st["blocks_active_source"], "audit_trail");
  EXPECT_EQ(st["execute"]["reachable"], false);
}

TEST_F(IncidentsApi, RestartTheDashboardAndTheIncidentsAndStatesAreStillThere) {
  int64_t id = 0;
  const int64_t t0 = common::now_unix_nanos();
  {
    Server s(test_config(), db(), jsonl());
    for (int i = 0; i < 10; ++i) s.feed(attack(i, t0));
    s.feed(attack(0, t0, "other"));
    auto c = s.client();
    id = get_json(c, "/api/incidents?principal=ATTACKER1")["incidents"][0]["id"].get<int64_t>();
    ASSERT_EQ(
        post(c, "/api/incidents/" + std::to_string(id) + "/state", {{"state", "false_positive"}}),
        200);
  }
  Server s(test_config(), db(), jsonl());
  // Kafka replays what it retains; nothing is counted twice.
  for (int i = 0; i < 10; ++i) s.feed(attack(i, t0));
  auto c = s.client();
  auto l = get_json(c, "/api/incidents");
  ASSERT_EQ(l["total"], 2);
  auto d = get_json(c, "/api/incidents/" + std::to_string(id));
  EXPECT_EQ(d["state"], "false_positive");
  EXPECT_EQ(d["state_by"], "alice");
  EXPECT_EQ(d["alarms"], 10);
  EXPECT_EQ(get_json(c, "/api/incidents?state=false_positive")["total"], 1);
}

}  // namespace
