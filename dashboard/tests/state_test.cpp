// DashboardState ring buffers, action lifecycle, score statistics and JSON; SseHub queues.
#include "immunizer/dashboard/state.hpp"
#include "immunizer/testing/manual_clock.hpp"

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "immunizer/dashboard/json.hpp"
#include "immunizer/dashboard/processor.hpp"
#include "immunizer/dashboard/sse.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "test_records.hpp"

using namespace immunizer;
using namespace immunizer::dashboard;
using namespace immunizer::dashboard::testing;
using namespace std::chrono_literals;

namespace {
DashboardConfig small_config() {
  DashboardConfig c;
  c.max_alarms = 3;
  c.max_actions = 4;
  c.max_models = 2;
  return c;
}
}  // namespace

TEST(DashboardState, AlarmRingKeepsNewestFirstAndEvictsOldest) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  for (int i = 1; i <= 5; ++i)
    ASSERT_TRUE(st.add_alarm(make_alarm(numbered("a", i), clock.now_unix_nanos())));
  const auto list = st.alarms_json(10);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0]["id"], "a5");
  EXPECT_EQ(list[2]["id"], "a3");
  EXPECT_EQ(st.alarms_json(1).size(), 1u);
  EXPECT_FALSE(st.find_alarm("a1"));
  EXPECT_FALSE(st.alarm_json("a2"));
  EXPECT_TRUE(st.find_alarm("a3"));
  EXPECT_EQ(st.stats_json()["alarms"], 5);
  EXPECT_EQ(st.stats_json()["alarms_buffered"], 3);
}

TEST(DashboardState, RedeliveredAlarmIsIgnored) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  ASSERT_TRUE(st.add_alarm(make_alarm("x", clock.now_unix_nanos())));
  EXPECT_FALSE(st.add_alarm(make_alarm("x", clock.now_unix_nanos())));
  EXPECT_EQ(st.alarm_count(), 1u);
  EXPECT_EQ(st.stats_json()["alarms_duplicate"], 1);
}

TEST(DashboardState, AlarmJsonCarriesTheExplanation) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  const auto j = *st.add_alarm(make_alarm("a1", clock.now_unix_nanos(), v1::SEVERITY_CRITICAL));
  EXPECT_EQ(j["id"], "a1");
  EXPECT_EQ(j["severity"], "critical");
  EXPECT_EQ(j["principal"]["session"], "sess-a1");
  EXPECT_EQ(j["principal"]["ip"], "10.0.0.66");
  EXPECT_EQ(j["call"], "http GET /tienda1/publico/anadir.jsp");
  EXPECT_DOUBLE_EQ(j["combined_score"].get<double>(), 3.4);
  EXPECT_DOUBLE_EQ(j["threshold"].get<double>(), 2.0);
  ASSERT_EQ(j["top_features"].size(), 2u);
  EXPECT_EQ(j["top_features"][0]["feature"], "arg.cantidad.rare_ngram");
  EXPECT_DOUBLE_EQ(j["top_features"][0]["value"].get<double>(), 7.5);
  EXPECT_DOUBLE_EQ(j["top_features"][0]["contribution"].get<double>(), 2.1);
  EXPECT_EQ(j["scores"][0]["detector"], "iforest");
  EXPECT_EQ(j["record_id"]["seq"], 42);
  EXPECT_TRUE(j["feedback"].is_null());
  EXPECT_TRUE(j["actions"].empty());
  EXPECT_EQ(j["received_unix_nanos"], clock.now_unix_nanos());
}

TEST(DashboardState, FeedbackMarksTheAlarm) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  st.add_alarm(make_alarm("a1", clock.now_unix_nanos()));
  const auto j = st.record_feedback("a1", "false_positive", "alice", "scanner of ours");
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["feedback"]["verdict"], "false_positive");
  EXPECT_EQ((*j)["feedback"]["analyst"], "alice");
  EXPECT_FALSE(st.record_feedback("gone", "confirmed", "alice", ""));
  EXPECT_EQ(st.stats_json()["feedback"]["false_positive"], 1);
  EXPECT_EQ(st.stats_json()["feedback"]["total"], 2);
}

TEST(DashboardState, ActionLifecycleLatencyAndActiveBlocks) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  const int64_t call = clock.now_unix_nanos();
  st.add_alarm(make_alarm("a1", call));
  clock.advance(40ms);
  auto d = st.add_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_DISPATCHED, clock.now_unix_nanos(), call));
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)["type"], "dispatched");
  EXPECT_TRUE((*d)["latency_ms"].is_null());
  clock.advance(10ms);
  auto a = st.add_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_APPLIED, clock.now_unix_nanos(), call));
  ASSERT_TRUE(a);
  EXPECT_NEAR((*a)["latency_ms"].get<double>(), 50.0, 1e-6);
  EXPECT_EQ((*a)["action"]["kind"], "block_principal");
  EXPECT_EQ((*a)["action"]["target_field"], "session");
  EXPECT_EQ((*a)["status"], "applied");
  // Redelivered event: ignored.
  EXPECT_FALSE(st.add_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_APPLIED, clock.now_unix_nanos(), call)));

  auto stats = st.stats_json();
  EXPECT_EQ(stats["blocks_active"], 1);
  EXPECT_EQ(stats["action_events"], 2);
  EXPECT_NEAR(stats["latency_call_to_applied_ms"]["p50"].get<double>(), 50.0, 1e-6);
  const auto alarm = *st.alarm_json("a1");
  ASSERT_EQ(alarm["actions"].size(), 1u);
  EXPECT_EQ(alarm["actions"][0]["status"], "applied");
  const auto active = st.active_actions_json();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0]["action"]["target_value"], "sess-a1");

  const auto events = st.actions_json(10);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["type"], "applied");  // newest first

  st.add_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_EXPIRED, clock.now_unix_nanos(), call));
  EXPECT_EQ(st.stats_json()["blocks_active"], 0);
  // A late applied ack never revives an expired action.
  st.add_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_APPLIED, clock.now_unix_nanos() + 1, call));
  EXPECT_EQ(st.stats_json()["blocks_active"], 0);
}

TEST(DashboardState, BlockStopsCountingWhenItsTtlRunsOut) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  st.add_action(
      make_action_event("act1", "a1", v1::ACTION_EVENT_APPLIED, clock.now_unix_nanos(), 0, 1000));
  EXPECT_EQ(st.stats_json()["blocks_active"], 1);
  clock.advance(1001ms);
  EXPECT_EQ(st.stats_json()["blocks_active"], 0);
  EXPECT_TRUE(st.active_actions_json().empty());
}

TEST(DashboardState, ActionEventRingIsBounded) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  for (int i = 0; i < 10; ++i)
    st.add_action(make_action_event(numbered("act", i), "", v1::ACTION_EVENT_DISPATCHED,
                                    clock.now_unix_nanos() + i, 0));
  EXPECT_EQ(st.action_event_count(), 4u);
  EXPECT_EQ(st.actions_json(100).size(), 4u);
  EXPECT_EQ(st.stats_json()["action_events"], 10);
  EXPECT_EQ(st.active_actions_json().size(), 4u);  // per-action state is bounded too
}

TEST(DashboardState, ScoresFeedCountersDistributionAndModels) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  st.add_score(make_score("m1", 0.1, 2.0, "ACTIVE"));   // ratio 0.05 -> first bucket
  st.add_score(make_score("m1", 3.0, 2.0, "ACTIVE"));   // 1.5 -> "<= 1.5"
  st.add_score(make_score("m1", 20.0, 2.0, "ACTIVE"));  // 10 -> overflow bucket
  st.add_score(make_score("m2", 1.0, 0.0, "LEARNING"));
  const auto s = st.stats_json();
  EXPECT_EQ(s["records_scored"], 4);
  EXPECT_EQ(s["records_alarmed"], 2);
  const auto& b = s["score_distribution"]["buckets"];
  ASSERT_EQ(b.size(), score_bucket_bounds().size() + 1);
  EXPECT_EQ(b[0]["count"], 1);
  EXPECT_EQ(b[4]["le"], 1.5);
  EXPECT_EQ(b[4]["count"], 1);
  EXPECT_TRUE(b.back()["le"].is_null());
  EXPECT_EQ(b.back()["count"], 1);
  EXPECT_EQ(s["score_distribution"]["learning"], 1);
  EXPECT_EQ(s["models"]["tracked"], 2);
  EXPECT_EQ(s["models"]["active"], 1);
  EXPECT_EQ(s["models"]["learning"], 1);
  const auto models = st.models_json(10);
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0]["model_key"], "m1");  // most alarms first
  EXPECT_EQ(models[0]["alarmed"], 2);
  EXPECT_EQ(models[0]["state"], "ACTIVE");
  st.add_score(make_score("m3", 1.0, 2.0, "ACTIVE"));  // max_models = 2: m1 evicted
  EXPECT_EQ(st.models_json(10).size(), 2u);
}

TEST(RateWindow, AveragesOverTheObservedWindow) {
  RateWindow w(10);
  const int64_t t0 = 1'000'000'000'000'000'000;
  for (int s = 0; s < 5; ++s) w.add(t0 + s * 1'000'000'000LL, 10);
  EXPECT_DOUBLE_EQ(w.per_second(t0 + 4'000'000'000LL), 10.0);
  EXPECT_EQ(w.count(t0 + 4'000'000'000LL), 50u);
  // 20 s later everything has left the window.
  EXPECT_DOUBLE_EQ(w.per_second(t0 + 24'000'000'000LL), 0.0);
}

TEST(SseHub, FullQueueDropsAndCountsWithoutBlocking) {
  prometheus::Registry reg;
  SseHub hub(2, 3, reg);
  auto slow = hub.subscribe();
  auto fast = hub.subscribe();
  ASSERT_TRUE(slow && fast);
  EXPECT_FALSE(hub.subscribe());  // max_clients
  std::string f;
  for (int i = 0; i < 5; ++i) {
    hub.publish("alarm", "{\"n\":" + std::to_string(i) + "}");
    ASSERT_EQ(hub.next(*fast, f, 0ms), SseHub::Next::kFrame);  // the fast client keeps up
  }
  EXPECT_EQ(f, "event: alarm\ndata: {\"n\":4}\n\n");
  EXPECT_EQ(hub.dropped(), 2u);
  EXPECT_EQ(slow->dropped, 2u);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(hub.next(*slow, f, 0ms), SseHub::Next::kFrame);
  EXPECT_EQ(f, "event: alarm\ndata: {\"n\":2}\n\n");  // the oldest three were kept
  EXPECT_EQ(hub.next(*slow, f, 1ms), SseHub::Next::kTimeout);
  const std::string text = prometheus::TextSerializer().Serialize(reg.Collect());
  EXPECT_NE(text.find("immunizer_dashboard_sse_dropped_total 2"), std::string::npos) << text;
  EXPECT_NE(text.find("immunizer_dashboard_sse_clients 2"), std::string::npos) << text;
  hub.unsubscribe(slow);
  EXPECT_EQ(hub.clients(), 1u);
  hub.close();
  EXPECT_EQ(hub.next(*fast, f, 10s), SseHub::Next::kClosed);  // returns at once
  EXPECT_FALSE(hub.subscribe());
}

TEST(DashboardProcessor, RoutesTopicsAndRejectsGarbage) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  prometheus::Registry reg;
  SseHub hub(4, 16, reg);
  auto client = hub.subscribe();
  const auto topics = common::Topics::with_prefix("t.");
  DashboardProcessor proc(st, hub, topics, clock, 1000ms);
  common::FakeProducer out;
  common::Message m;
  m.topic = topics.alarms;
  m.payload = make_alarm("a1", clock.now_unix_nanos()).SerializeAsString();
  proc.process(m, out);
  m.topic = topics.actions;
  m.payload =
      make_action_event("act1", "a1", v1::ACTION_EVENT_DISPATCHED, clock.now_unix_nanos(), 0)
          .SerializeAsString();
  proc.process(m, out);
  m.topic = topics.scores;
  m.payload = make_score("m", 1, 2, "ACTIVE").SerializeAsString();
  proc.process(m, out);
  EXPECT_EQ(st.alarm_count(), 1u);
  EXPECT_EQ(st.action_event_count(), 1u);
  EXPECT_EQ(st.stats_json()["records_scored"], 1);
  std::string f;
  ASSERT_EQ(hub.next(*client, f, 0ms), SseHub::Next::kFrame);
  EXPECT_EQ(f.rfind("event: alarm\n", 0), 0u);
  ASSERT_EQ(hub.next(*client, f, 0ms), SseHub::Next::kFrame);
  EXPECT_EQ(f.rfind("event: action\n", 0), 0u);
  proc.tick(out);
  ASSERT_EQ(hub.next(*client, f, 0ms), SseHub::Next::kFrame);
  EXPECT_EQ(f.rfind("event: stats\n", 0), 0u);
  proc.tick(out);  // within the interval: no second stats event
  EXPECT_EQ(hub.next(*client, f, 0ms), SseHub::Next::kTimeout);

  m.topic = topics.alarms;
  m.payload = "\xff\xff not a proto";
  EXPECT_THROW(proc.process(m, out), common::BadMessage);
  m.topic = "t.other";
  EXPECT_THROW(proc.process(m, out), common::BadMessage);
}

// A replay upstream (analyze re-reading after a crash) brings the same alarm id again: shown
// once, counted as a dropped duplicate.
TEST(DashboardProcessor, ReplayedAlarmIsShownOnceAndCounted) {
  common::ManualClock clock;
  DashboardState st(small_config(), clock);
  prometheus::Registry reg;
  SseHub hub(4, 16, reg);
  auto client = hub.subscribe();
  const auto topics = common::Topics::with_prefix("t.");
  auto& dups = prometheus::BuildCounter()
                   .Name("immunizer_duplicates_dropped_total")
                   .Help("h")
                   .Register(reg)
                   .Add({{"what", "alarm"}});
  DashboardParts parts;
  parts.alarm_duplicates = &dups;
  DashboardProcessor proc(st, hub, topics, clock, 1000ms, parts);
  common::FakeProducer out;
  common::Message m;
  m.topic = topics.alarms;
  m.payload = make_alarm("a1", clock.now_unix_nanos()).SerializeAsString();
  proc.process(m, out);
  proc.process(m, out);
  EXPECT_EQ(st.alarm_count(), 1u);
  EXPECT_EQ(dups.Value(), 1);
  std::string f;
  ASSERT_EQ(hub.next(*client, f, 0ms), SseHub::Next::kFrame);
  EXPECT_EQ(f.rfind("event: alarm\n", 0), 0u);
  EXPECT_EQ(hub.next(*client, f, 0ms), SseHub::Next::kTimeout) << "the replayed copy was pushed";
}
