// IncidentEngine over a real SQLite file in a temporary folder: grouping per
// principal in a window, collapsing identical alarms, actions attached through
// their alarm, state changes with audit, search/pagination, and history
// surviving a restart (a new engine on the same file).
#include "immunizer/dashboard/incidents.hpp"
#include "immunizer/testing/manual_clock.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <filesystem>

#include <sqlite3.h>

#include "test_records.hpp"

using namespace immunizer;
using namespace immunizer::dashboard;
using namespace immunizer::dashboard::testing;
using nlohmann::json;

namespace {

constexpr int64_t kSec = 1'000'000'000;

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/immunizer-incidents-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

v1::Alarm alarm_for(const std::string& id, const std::string& session, int64_t at,
                    v1::Severity sev = v1::SEVERITY_HIGH, const std::string& call = "http GET /a") {
  v1::Alarm a = make_alarm(id, at, sev);
  a.mutable_principal()->set_session(session);
  a.set_call(call);
  a.set_model_key("shop|" + call + "|");
  return a;
}

struct Fixture : ::testing::Test {
  TempDir dir;
  common::ManualClock clock;
  IncidentConfig cfg;
  std::unique_ptr<prometheus::Registry> registry_;
  std::unique_ptr<IncidentEngine> engine;

  std::string db() const { return (dir.path / "dashboard.db").string(); }
  void open() {
    engine.reset();
    registry_ = std::make_unique<prometheus::Registry>();
    engine = std::make_unique<IncidentEngine>(cfg, std::make_unique<IncidentStore>(db()), clock,
                                              *registry_);
  }
  void SetUp() override { open(); }
};

using Incidents = Fixture;

TEST_F(Incidents, AlarmsOfOnePrincipalWithinTheWindowAreOneIncident) {
  const int64_t t0 = clock.now_unix_nanos();
  for (int i = 0; i < 50; ++i) {
    auto c = engine->on_alarm(alarm_for(numbered("a", i), "ATTACKER1", t0 + i * kSec));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->kind, i == 0 ? IncidentChange::kOpened : IncidentChange::kUpdated) << i;
  }
  engine->on_alarm(alarm_for("b0", "bystander", t0));
  auto l = engine->list({});
  ASSERT_EQ(l["total"], 2);
  const auto& inc = l["incidents"][0]["principal_key"] == "session:ATTACKER1" ? l["incidents"][0]
                                                                              : l["incidents"][1];
  EXPECT_EQ(inc["alarms"], 50);
  EXPECT_EQ(inc["rows"],
            1);  // identical alarms (same principal, model, top feature) collapse
  EXPECT_EQ(inc["by_severity"]["high"], 50);
  EXPECT_EQ(inc["first_seen_unix_nanos"], t0);
  EXPECT_EQ(inc["last_seen_unix_nanos"], t0 + 49 * kSec);
  EXPECT_EQ(inc["state"], "open");
  ASSERT_FALSE(inc["top_features"].empty());
  EXPECT_EQ(inc["top_features"][0]["feature"], "arg.cantidad.rare_ngram");
  EXPECT_NEAR(inc["top_features"][0]["contribution"].get<double>(), 50 * 2.1, 1e-6);

  // A duplicate (redelivery) changes nothing.
  EXPECT_FALSE(engine->on_alarm(alarm_for("a3", "ATTACKER1", t0 + 3 * kSec)));
  EXPECT_EQ(engine->list({})["incidents"][0]["alarms"].get<int>() +
                engine->list({})["incidents"][1]["alarms"].get<int>(),
            51);
}

TEST_F(Incidents, AQuietGapLongerThanTheWindowOpensANewIncident) {
  cfg.window_ms = 60'000;
  open();
  const int64_t t0 = clock.now_unix_nanos();
  engine->on_alarm(alarm_for("a1", "s", t0));
  engine->on_alarm(alarm_for("a2", "s", t0 + 59 * kSec));
  auto c = engine->on_alarm(alarm_for("a3", "s", t0 + 59 * kSec + 61 * kSec));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, IncidentChange::kOpened);
  EXPECT_EQ(engine->list({})["total"], 2);
}

TEST_F(Incidents, DifferentModelsOrTopFeaturesAreSeparateRowsAndEscalationIsReported) {
  const int64_t t0 = clock.now_unix_nanos();
  engine->on_alarm(alarm_for("a1", "s", t0, v1::SEVERITY_MEDIUM, "http GET /a"));
  engine->on_alarm(alarm_for("a2", "s", t0 + 1, v1::SEVERITY_MEDIUM, "http GET /b"));
  auto other = alarm_for("a3", "s", t0 + 2, v1::SEVERITY_MEDIUM, "http GET /a");
  other.mutable_top_features(0)->set_feature("arg.x.len_dev");
  engine->on_alarm(other);
  auto c = engine->on_alarm(alarm_for("a4", "s", t0 + 3, v1::SEVERITY_CRITICAL, "http GET /a"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, IncidentChange::kEscalated);
  const auto id = engine->list({})["incidents"][0]["id"].get<int64_t>();
  auto d = engine->detail(id, 100);
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)["alarms"], 4);
  EXPECT_EQ((*d)["rows"], 3);
  EXPECT_EQ((*d)["groups"].size(), 3u);
  EXPECT_EQ((*d)["groups"][0]["count"], 2);  // /a with rare_ngram: a1 and a4
  EXPECT_EQ((*d)["groups"][0]["max_severity"], "critical");
  EXPECT_EQ((*d)["recent_alarms"].size(), 4u);
  EXPECT_EQ((*d)["severity"], "critical");
  EXPECT_EQ((*d)["calls"].size(), 2u);
}

TEST_F(Incidents, FeaturesOfValueZeroAreNeverReasons) {
  auto a = alarm_for("a1", "s", clock.now_unix_nanos());
  a.mutable_top_features(0)->set_value(0);  // struct:missing_args = 0 with a contribution
  engine->on_alarm(a);
  const auto inc = engine->list({})["incidents"][0];
  for (const auto& f : inc["top_features"]) EXPECT_NE(f["feature"], "arg.cantidad.rare_ngram");
  auto d = engine->detail(inc["id"].get<int64_t>(), 10);
  EXPECT_EQ((*d)["groups"][0]["top_feature"], "arg.cantidad.len_dev");
}

TEST_F(Incidents, ActionsAttachThroughTheirAlarmInEitherOrderAndRepeatsCountOnce) {
  const int64_t t0 = clock.now_unix_nanos();
  // The action's events arrive before its alarm (different topics, no ordering
  // between them).
  engine->on_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_DISPATCHED, t0 + 10, t0 - 30'000'000));
  engine->on_alarm(alarm_for("a1", "s", t0));
  auto c = engine->on_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_APPLIED, t0 + 50'000'000, t0 - 30'000'000));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->incident.action_count, 1);
  // Redelivered event: ignored.
  EXPECT_FALSE(engine->on_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_APPLIED, t0 + 50'000'000, t0 - 30'000'000)));
  // An extension of it by a second plan is its own action, marked as extending
  // the first.
  auto ext = make_action_event("act2", "a2", v1::ACTION_EVENT_DISPATCHED, t0 + 60'000'000, t0);
  ext.set_reason("extends active action act1");
  engine->on_alarm(alarm_for("a2", "s", t0 + 1));
  engine->on_action(ext);
  auto d = engine->detail(c->incident.id, 10);
  ASSERT_TRUE(d);
  ASSERT_EQ((*d)["action_list"].size(), 2u);
  const json& first = (*d)["action_list"][1]["action_id"] == "act1" ? (*d)["action_list"][1]
                                                                    : (*d)["action_list"][0];
  const json& second = (*d)["action_list"][1]["action_id"] == "act1" ? (*d)["action_list"][0]
                                                                     : (*d)["action_list"][1];
  EXPECT_EQ(first["status"], "applied");
  EXPECT_EQ(first["applied_acks"], 1);
  EXPECT_NEAR(first["latency_ms"].get<double>(), 80.0, 1e-6);
  EXPECT_EQ(second["extends"], "act1");
}

TEST_F(Incidents, StateChangesAreValidatedAndAudited) {
  engine->on_alarm(alarm_for("a1", "s", clock.now_unix_nanos()));
  const auto id = engine->list({})["incidents"][0]["id"].get<int64_t>();
  EXPECT_EQ(engine->set_state(id, "bogus", "alice", "").code,
            IncidentEngine::StateResult::kInvalid);
  EXPECT_EQ(engine->set_state(id + 100, "resolved", "alice", "").code,
            IncidentEngine::StateResult::kNotFound);
  auto r = engine->set_state(id, "acknowledged", "alice", "looking");
  ASSERT_EQ(r.code, IncidentEngine::StateResult::kOk) << r.message;
  EXPECT_EQ(engine->set_state(id, "open", "alice", "").code, IncidentEngine::StateResult::kInvalid);
  clock.advance(std::chrono::seconds(5));
  ASSERT_EQ(engine->set_state(id, "false_positive", "bob", "scanner of ours").code,
            IncidentEngine::StateResult::kOk);
  auto d = engine->detail(id, 10);
  EXPECT_EQ((*d)["state"], "false_positive");
  EXPECT_EQ((*d)["state_by"], "bob");
  EXPECT_EQ((*d)["state_at_unix_nanos"], clock.now_unix_nanos());
  ASSERT_EQ((*d)["history"].size(), 2u);
  EXPECT_EQ((*d)["history"][0]["who"], "bob");
  EXPECT_EQ((*d)["history"][0]["what"], "state:acknowledged->false_positive");
  EXPECT_EQ((*d)["history"][1]["who"], "alice");
  // A closed incident is not joined: the principal's next alarm opens a new
  // one.
  auto c = engine->on_alarm(alarm_for("a2", "s", clock.now_unix_nanos()));
  EXPECT_EQ(c->kind, IncidentChange::kOpened);
  EXPECT_NE(c->incident.id, id);
}

TEST_F(Incidents, SearchFiltersAndPagination) {
  cfg.min_alarms = 1;  // every alarm opens an incident: this is about searching them
  open();
  const int64_t t0 = clock.now_unix_nanos();
  for (int i = 0; i < 25; ++i)
    engine->on_alarm(alarm_for(numbered("a", i), numbered("sess-", i), t0 + i * kSec,
                               i % 5 == 0 ? v1::SEVERITY_CRITICAL : v1::SEVERITY_LOW,
                               i % 2 ? "http GET /odd" : "http POST /even%_"));
  IncidentQuery q;
  q.limit = 10;
  auto p1 = engine->list(q);
  EXPECT_EQ(p1["total"], 25);
  ASSERT_EQ(p1["incidents"].size(), 10u);
  EXPECT_EQ(p1["incidents"][0]["principal_value"], "sess-24");  // newest first
  q.offset = 20;
  EXPECT_EQ(engine->list(q)["incidents"].size(), 5u);
  q = {};
  q.min_severity = 4;
  EXPECT_EQ(engine->list(q)["total"], 5);
  q = {};
  q.principal = "sess-1";  // sess-1, sess-10..19
  EXPECT_EQ(engine->list(q)["total"], 11);
  q = {};
  q.call = "/even%_";  // LIKE wildcards are literal
  EXPECT_EQ(engine->list(q)["total"], 13);
  q.call = "/ev%n";
  EXPECT_EQ(engine->list(q)["total"], 0);
  q = {};
  q.from = t0 + 20 * kSec;
  EXPECT_EQ(engine->list(q)["total"], 5);
  q.to = t0 + 21 * kSec;
  EXPECT_EQ(engine->list(q)["total"], 2);
  engine->set_state(engine->list({})["incidents"][0]["id"].get<int64_t>(), "resolved", "op", "");
  q = {};
  q.states = {"resolved"};
  EXPECT_EQ(engine->list(q)["total"], 1);
  EXPECT_EQ(engine->counts()["open"], 24);
  EXPECT_EQ(engine->counts()["total"], 25);
}

TEST_F(Incidents, RestartKeepsIncidentsStatesAndDeduplicatesTheReplay) {
  const int64_t t0 = clock.now_unix_nanos();
  for (int i = 0; i < 10; ++i)
    engine->on_alarm(alarm_for(numbered("a", i), "ATTACKER", t0 + i * kSec));
  const auto id = engine->list({})["incidents"][0]["id"].get<int64_t>();
  ASSERT_EQ(engine->set_state(id, "acknowledged", "alice", "on it").code,
            IncidentEngine::StateResult::kOk);

  open();  // a new process on the same data folder
  auto l = engine->list({});
  ASSERT_EQ(l["total"], 1);
  EXPECT_EQ(l["incidents"][0]["state"], "acknowledged");
  EXPECT_EQ(l["incidents"][0]["state_by"], "alice");
  EXPECT_EQ(l["incidents"][0]["alarms"], 10);
  // The dashboard never commits offsets: a restart replays the retained alarms.
  // None counts twice.
  for (int i = 0; i < 10; ++i)
    EXPECT_FALSE(engine->on_alarm(alarm_for(numbered("a", i), "ATTACKER", t0 + i * kSec)));
  // A new alarm of the same attacker joins the acknowledged incident.
  auto c = engine->on_alarm(alarm_for("a10", "ATTACKER", t0 + 10 * kSec));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->incident.id, id);
  EXPECT_EQ(engine->list({})["incidents"][0]["alarms"], 11);
  EXPECT_TRUE(engine->find_alarm("a3"));
}

TEST_F(Incidents, RetentionByAgeAndBySize) {
  cfg.retention.max_age_ms = 3600'000;
  open();
  const int64_t t0 = clock.now_unix_nanos();
  engine->on_alarm(alarm_for("old", "s-old", t0));
  clock.advance(std::chrono::hours(2));
  engine->on_alarm(alarm_for("new", "s-new", clock.now_unix_nanos()));
  engine->tick();
  auto l = engine->list({});
  ASSERT_EQ(l["total"], 1);
  EXPECT_EQ(l["incidents"][0]["principal_value"], "s-new");
  EXPECT_FALSE(engine->find_alarm("old"));

  // Size: many incidents with large alarms, a small limit; the oldest go first.
  cfg.retention.max_age_ms = 365LL * 24 * 3600 * 1000;
  cfg.retention.max_bytes = 256 * 1024;
  open();
  for (int i = 0; i < 400; ++i) {
    auto a = alarm_for(numbered("big", i), numbered("s", i), clock.now_unix_nanos() + i * kSec);
    for (int k = 0; k < 200; ++k) a.add_values(k);
    engine->on_alarm(a);
  }
  const auto before = engine->list({})["total"].get<int64_t>();
  engine->tick();  // the first tick of a new engine prunes at once
  const auto after = engine->list({})["total"].get<int64_t>();
  EXPECT_EQ(before, 401);  // with s-new from above
  EXPECT_LT(after, before);
  EXPECT_GT(after, 0);
  EXPECT_TRUE(engine->find_alarm("big399"));
  EXPECT_FALSE(engine->find_alarm("big0"));
  IncidentStore probe(db());
  EXPECT_LE(probe.size_bytes(), cfg.retention.max_bytes);
}

TEST_F(Incidents, TheDatabaseFileIsOwnerOnlyAndInWalMode) {
  engine->on_alarm(alarm_for("a1", "s", clock.now_unix_nanos()));
  EXPECT_EQ(std::filesystem::status(db()).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_TRUE(std::filesystem::exists(db() + "-wal"));
}

TEST_F(Incidents, HostilePrincipalsAndCallsAreStoredVerbatim) {
  auto a = alarm_for("x'; DROP TABLE incidents;--", "s' OR '1'='1", clock.now_unix_nanos(),
                     v1::SEVERITY_HIGH,
                     std::string("http GET /<script>alert(1)</script>\xc3\xa9\0x", 39));
  ASSERT_TRUE(engine->on_alarm(a));
  IncidentQuery q;
  q.principal = "' OR '1'='1";
  auto l = engine->list(q);
  ASSERT_EQ(l["total"], 1);
  EXPECT_TRUE(engine->find_alarm("x'; DROP TABLE incidents;--"));
  EXPECT_EQ(engine->find_alarm("x'; DROP TABLE incidents;--")->call(), a.call());
}

TEST_F(Incidents, ABatchIsOneTransactionAndAFailedAlarmInsideItDoesNotUndoTheOthers) {
  const int64_t t0 = clock.now_unix_nanos();
  engine->begin_batch();
  for (int i = 0; i < 20; ++i) engine->on_alarm(alarm_for(numbered("a", i), "s", t0 + i));
  EXPECT_FALSE(
      engine->on_alarm(alarm_for("a3", "s", t0 + 3)));  // a duplicate rolls back its own unit only
  engine->end_batch();
  IncidentStore other(db());
  auto [rows, total] = other.list({});
  ASSERT_EQ(total, 1);
  EXPECT_EQ(rows[0].alarm_count, 20);
  EXPECT_EQ(engine->store_errors(), 0u);
}

TEST_F(Incidents, LowEvidenceAlarmsOfManyPrincipalsCollapseIntoOnePatternRow) {
  // The demo's mix: one-request sessions, each alarmed once at low severity (CSIC has one
  // request per session), and one attacker repeating itself.
  const int64_t t0 = clock.now_unix_nanos();
  for (int i = 0; i < 100; ++i) {
    auto c = engine->on_alarm(
        alarm_for(numbered("n", i), numbered("one-shot-", i), t0 + i, v1::SEVERITY_LOW));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->kind, IncidentChange::kUpdated) << i;  // a pattern row never notifies
    EXPECT_EQ(c->incident.principal_key, "pattern:http GET /a|arg.cantidad.rare_ngram");
  }
  for (int i = 0; i < 5; ++i) {
    auto c = engine->on_alarm(
        alarm_for(numbered("atk", i), "ATTACKER1", t0 + 200 + i, v1::SEVERITY_MEDIUM));
    ASSERT_TRUE(c);
    // The third alarm within the window is the evidence: the incident opens with all three.
    EXPECT_EQ(c->kind, i == 2 ? IncidentChange::kOpened : IncidentChange::kUpdated) << i;
  }
  auto l = engine->list({});
  ASSERT_EQ(l["total"], 1);
  const auto inc = l["incidents"][0];
  EXPECT_EQ(inc["principal_key"], "session:ATTACKER1");
  EXPECT_EQ(inc["kind"], "incident");
  EXPECT_EQ(inc["alarms"], 5);
  EXPECT_EQ(inc["rows"], 1);
  EXPECT_EQ(inc["by_severity"]["medium"], 5);
  EXPECT_EQ(inc["first_seen_unix_nanos"], t0 + 200);
  auto d = engine->detail(inc["id"].get<int64_t>(), 100);
  EXPECT_EQ((*d)["recent_alarms"].size(), 5u);
  EXPECT_EQ((*d)["groups"][0]["count"], 5);

  IncidentQuery q;
  q.kind = IncidentQuery::Kind::kPatterns;
  auto p = engine->list(q);
  ASSERT_EQ(p["total"], 1);
  EXPECT_EQ(p["incidents"][0]["kind"], "pattern");
  EXPECT_EQ(p["incidents"][0]["principal_value"], "http GET /a|arg.cantidad.rare_ngram");
  EXPECT_EQ(p["incidents"][0]["alarms"], 100);  // the attacker's two moved out
  EXPECT_EQ(p["incidents"][0]["principals"], 100);
  EXPECT_EQ(p["incidents"][0]["by_severity"]["low"], 100);
  EXPECT_EQ(p["incidents"][0]["by_severity"]["medium"], 0);
  EXPECT_EQ(p["incidents"][0]["severity"], "low");
  EXPECT_EQ(p["incidents"][0]["last_seen_unix_nanos"], t0 + 99);
  // Still searchable: by call, and by any principal whose alarms it holds.
  q.call = "/a";
  EXPECT_EQ(engine->list(q)["total"], 1);
  q.call.clear();
  q.principal = "one-shot-42";
  EXPECT_EQ(engine->list(q)["total"], 1);
  q.principal = "ATTACKER1";  // its alarms all moved to its incident
  EXPECT_EQ(engine->list(q)["total"], 0);
  q = {};
  q.kind = IncidentQuery::Kind::kAll;
  EXPECT_EQ(engine->list(q)["total"], 2);
  const auto counts = engine->counts();
  EXPECT_EQ(counts["open"], 1);
  EXPECT_EQ(counts["total"], 1);
  EXPECT_EQ(counts["patterns"], 1);
  EXPECT_EQ(counts["pattern_alarms"], 100);
  // Each pattern alarm is still found (feedback on it works).
  EXPECT_TRUE(engine->find_alarm("n42"));

  // One high alarm is evidence enough on its own.
  auto c = engine->on_alarm(alarm_for("h1", "one-shot-high", t0 + 300, v1::SEVERITY_HIGH));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, IncidentChange::kOpened);
  EXPECT_EQ(engine->list({})["total"], 2);
}

TEST_F(Incidents, AnEnforcingActionOnAPatternAlarmOpensItsPrincipalsIncident) {
  const int64_t t0 = clock.now_unix_nanos();
  engine->on_alarm(alarm_for("a1", "s1", t0, v1::SEVERITY_LOW));
  engine->on_alarm(alarm_for("b1", "s2", t0 + 1, v1::SEVERITY_LOW));
  // A log action (plan's answer to every low alarm) is no evidence.
  auto log = make_action_event("log1", "a1", v1::ACTION_EVENT_DISPATCHED, t0 + 5, t0);
  log.mutable_action()->set_kind(v1::ACTION_LOG);
  engine->on_action(log);
  EXPECT_EQ(engine->list({})["total"], 0);
  // A block is: whoever the system blocked must be on the incident list.
  auto c =
      engine->on_action(make_action_event("act1", "a1", v1::ACTION_EVENT_DISPATCHED, t0 + 10, t0));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, IncidentChange::kOpened);
  EXPECT_EQ(c->incident.principal_key, "session:s1");
  EXPECT_EQ(c->incident.alarm_count, 1);
  EXPECT_EQ(c->incident.action_count, 2);  // the log and the block, both on a1
  IncidentQuery q;
  q.kind = IncidentQuery::Kind::kPatterns;
  auto p = engine->list(q);
  ASSERT_EQ(p["total"], 1);
  EXPECT_EQ(p["incidents"][0]["alarms"], 1);
  EXPECT_EQ(p["incidents"][0]["principals"], 1);
  EXPECT_EQ(p["incidents"][0]["actions"], 0);

  // The other order (the block's events before its alarm) opens the incident at the alarm.
  engine->on_action(make_action_event("act2", "c1", v1::ACTION_EVENT_DISPATCHED, t0 + 20, t0));
  auto c2 = engine->on_alarm(alarm_for("c1", "s3", t0 + 2, v1::SEVERITY_LOW));
  ASSERT_TRUE(c2);
  EXPECT_EQ(c2->kind, IncidentChange::kOpened);
  EXPECT_EQ(c2->incident.action_count, 1);
  EXPECT_EQ(engine->list({})["total"], 2);

  // The last alarm of a pattern row moving out deletes the row.
  engine->on_action(make_action_event("act3", "b1", v1::ACTION_EVENT_DISPATCHED, t0 + 30, t0));
  EXPECT_EQ(engine->list(q)["total"], 0);
  EXPECT_EQ(engine->list({})["total"], 3);
  EXPECT_EQ(engine->counts()["pattern_alarms"], 0);
}

TEST_F(Incidents, AChangeThatEmptiesPatternRowsReportsThemForThePage) {
  // Issue 15: the page showed a pattern row's old counts until a reload after its alarms
  // moved into an incident; the change now carries the rows it took alarms out of.
  const int64_t t0 = clock.now_unix_nanos();
  engine->on_alarm(alarm_for("s1-1", "s1", t0, v1::SEVERITY_LOW));
  engine->on_alarm(alarm_for("s1-2", "s1", t0 + 1, v1::SEVERITY_LOW));
  auto c = engine->on_alarm(alarm_for("s2-1", "s2", t0 + 2, v1::SEVERITY_LOW));
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->patterns_updated.empty());  // the row itself is the change
  const int64_t pattern = c->incident.id;
  EXPECT_EQ(c->incident.alarm_count, 3);
  EXPECT_EQ(c->incident.principal["principals"], 2);
  // s1's third alarm opens its incident: its two alarms leave the row, s2's stays.
  c = engine->on_alarm(alarm_for("s1-3", "s1", t0 + 3, v1::SEVERITY_LOW));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, IncidentChange::kOpened);
  EXPECT_EQ(c->incident.alarm_count, 3);
  ASSERT_EQ(c->patterns_updated.size(), 1u);
  EXPECT_EQ(c->patterns_updated[0].id, pattern);
  EXPECT_EQ(c->patterns_updated[0].alarm_count, 1);
  EXPECT_EQ(c->patterns_updated[0].principal["principals"], 1);
  EXPECT_EQ(incident_json(c->patterns_updated[0])["kind"], "pattern");
  EXPECT_TRUE(c->patterns_removed.empty());
  // The next change reports nothing left over from this one.
  c = engine->on_alarm(alarm_for("s1-4", "s1", t0 + 4, v1::SEVERITY_LOW));
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->patterns_updated.empty());
  EXPECT_TRUE(c->patterns_removed.empty());
  // A block on s2's alarm opens s2's incident: the row's last alarm leaves, the row is gone.
  c = engine->on_action(make_action_event("blk", "s2-1", v1::ACTION_EVENT_DISPATCHED, t0 + 10, t0));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, IncidentChange::kOpened);
  EXPECT_TRUE(c->patterns_updated.empty());
  EXPECT_EQ(c->patterns_removed, std::vector<int64_t>{pattern});
  IncidentQuery q;
  q.kind = IncidentQuery::Kind::kPatterns;
  EXPECT_EQ(engine->list(q)["total"], 0);
}

TEST_F(Incidents, ASchemaOneDatabaseIsMigrated) {
  engine->on_alarm(alarm_for("a1", "s", clock.now_unix_nanos()));
  engine.reset();
  {
    // Back to schema 1: alarms without principal_key.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db().c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw,
                           "DROP INDEX alarms_principal; ALTER TABLE alarms DROP COLUMN "
                           "principal_key; UPDATE meta SET value = '1'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(raw);
    sqlite3_close(raw);
  }
  open();
  EXPECT_TRUE(engine->find_alarm("a1"));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(engine->on_alarm(
        alarm_for(numbered("m", i), "s2", clock.now_unix_nanos() + i, v1::SEVERITY_LOW)));
  EXPECT_EQ(engine->list({})["total"], 2);
  EXPECT_EQ(engine->store_errors(), 0u);
}

TEST(PrincipalKey, FieldsFallbackAndPrefixes) {
  IncidentConfig c;
  v1::Principal p;
  p.set_session("S");
  p.set_ip("10.1.2.3");
  p.set_user("bob");
  EXPECT_EQ(principal_key(p, c), "session:S");
  c.key = "ip";
  EXPECT_EQ(principal_key(p, c), "ip:10.1.2.3");
  c.key = "user";
  EXPECT_EQ(principal_key(p, c), "user:bob");
  c.key = "prefix";
  EXPECT_EQ(principal_key(p, c), "prefix:10.1.2.0/24");
  p.set_ip("2001:db8:1:2:3:4:5:6");
  EXPECT_EQ(principal_key(p, c), "prefix:2001:db8:1:2::/64");
  p.set_ip("not-an-address");
  EXPECT_EQ(principal_key(p, c), "ip:not-an-address");
  v1::Principal only_ip;
  only_ip.set_ip("192.168.7.9");
  c.key = "session";
  EXPECT_EQ(principal_key(only_ip, c), "ip:192.168.7.9");
  EXPECT_EQ(principal_key(v1::Principal{}, c), "none:");
  EXPECT_EQ(address_prefix("192.168.7.9", 16, 64), "192.168.0.0/16");
  EXPECT_EQ(address_prefix("192.168.7.9", 20, 64), "192.168.0.0/20");
}

}  // namespace
