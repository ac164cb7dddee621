#include "immunizer/plan/policy.hpp"

#include <gtest/gtest.h>

#include "immunizer/common/fake_kafka.hpp"
#include "immunizer/plan/plan_signing.hpp"
#include "immunizer/plan/processor.hpp"

using namespace immunizer;
using namespace std::chrono_literals;

namespace {
v1::Alarm alarm(const std::string& session, int severity, const std::string& ip = "10.0.0.1") {
  v1::Alarm a;
  a.set_id("a-" + session + std::to_string(severity));
  a.mutable_principal()->set_session(session);
  a.mutable_principal()->set_ip(ip);
  a.set_call("http.request");
  a.set_severity(static_cast<v1::Severity>(severity));
  a.set_combined_score(0.99);
  return a;
}
}  // namespace

TEST(Policy, BlocksSessionForTtlThenDeduplicates) {
  common::ManualClock clock;
  plan::PolicyConfig cfg;
  cfg.block_ttl_ms = 60'000;
  plan::Policy p(cfg, clock);
  auto d = p.decide(alarm("S1", 3));
  ASSERT_TRUE(d.plan);
  EXPECT_EQ(d.outcome, "planned");
  ASSERT_EQ(d.plan->actions_size(), 1);
  const auto& a = d.plan->actions(0);
  EXPECT_EQ(a.kind(), v1::ACTION_BLOCK_PRINCIPAL);
  EXPECT_EQ(a.target_field(), v1::PRINCIPAL_FIELD_SESSION);
  EXPECT_EQ(a.target_value(), "S1");
  EXPECT_EQ(a.ttl_millis(), 60'000);
  // A second alarm for the same session while the block holds produces nothing new.
  EXPECT_EQ(p.decide(alarm("S1", 3)).outcome, "deduplicated");
  clock.advance(61s);
  EXPECT_EQ(p.decide(alarm("S1", 3)).outcome, "planned");
}

TEST(Policy, LowSeverityAllowlistAndFeedbackOnlyLog) {
  common::ManualClock clock;
  plan::PolicyConfig cfg;
  cfg.allowlist = {"10.9.9.9"};
  plan::Policy p(cfg, clock);
  auto low = p.decide(alarm("S2", 1));
  EXPECT_EQ(low.outcome, "below_severity");
  EXPECT_EQ(low.plan->actions(0).kind(), v1::ACTION_LOG);
  EXPECT_EQ(p.decide(alarm("S3", 4, "10.9.9.9")).outcome, "allowlisted");
  v1::Feedback f;
  f.set_verdict(v1::FEEDBACK_FALSE_POSITIVE);
  f.mutable_principal()->set_session("S4");
  p.on_feedback(f);
  EXPECT_EQ(p.decide(alarm("S4", 4)).outcome, "forgiven");
}

TEST(Policy, FalsePositiveFeedbackForgivesForABoundedWindowAndNumberOfAlarms) {
  common::ManualClock clock;
  plan::PolicyConfig cfg;
  cfg.forgive_window_ms = 60'000;
  cfg.forgive_max_alarms = 3;
  plan::Policy p(cfg, clock);
  v1::Feedback f;
  f.set_verdict(v1::FEEDBACK_FALSE_POSITIVE);
  f.mutable_principal()->set_session("S1");
  // A thousand clicks count as one: three alarms forgiven, the fourth acts again.
  for (int i = 0; i < 1000; ++i) p.on_feedback(f);
  for (int i = 0; i < 3; ++i) {
    auto d = p.decide(alarm("S1", 4));
    EXPECT_EQ(d.outcome, "forgiven") << i;
    EXPECT_EQ(d.plan->actions(0).kind(), v1::ACTION_LOG);
  }
  EXPECT_EQ(p.decide(alarm("S1", 4)).outcome, "planned");
  // Only that principal: others are acted on meanwhile.
  EXPECT_EQ(p.decide(alarm("S2", 4)).outcome, "planned");
  // The window bounds it too: forgiven again, then the window ends with alarms left.
  p.on_feedback(f);
  EXPECT_EQ(p.decide(alarm("S1", 4)).outcome, "forgiven");
  clock.advance(61s);
  EXPECT_EQ(p.decide(alarm("S1", 4)).outcome, "planned");
  // Feedback while forgiven does not extend the window.
  clock.advance(400s);  // the block of S1 is over
  p.on_feedback(f);
  clock.advance(50s);
  p.on_feedback(f);
  clock.advance(11s);
  EXPECT_EQ(p.decide(alarm("S1", 4)).outcome, "planned");
  // 0 alarms: feedback never forgives.
  cfg.forgive_max_alarms = 0;
  plan::Policy none(cfg, clock);
  none.on_feedback(f);
  EXPECT_EQ(none.decide(alarm("S1", 4)).outcome, "planned");
}

TEST(Policy, FallsBackToIpAndEscalatesCriticalAndRateLimits) {
  common::ManualClock clock;
  plan::PolicyConfig cfg;
  cfg.max_plans_per_minute = 2;
  plan::Policy p(cfg, clock);
  auto d = p.decide(alarm("", 4, "192.0.2.7"));
  ASSERT_TRUE(d.plan);
  EXPECT_EQ(d.plan->actions(0).target_field(), v1::PRINCIPAL_FIELD_IP);
  ASSERT_EQ(d.plan->actions_size(), 2);
  EXPECT_EQ(d.plan->actions(1).kind(), v1::ACTION_ESCALATE);
  p.decide(alarm("B", 3));
  auto limited = p.decide(alarm("C", 3));
  EXPECT_EQ(limited.outcome, "rate_limited");
  EXPECT_EQ(limited.plan->actions(0).kind(), v1::ACTION_ESCALATE);
}

TEST(Policy, RepeatedLowAlarmsFromOnePrincipalAddUpToABlock) {
  common::ManualClock clock;
  plan::PolicyConfig cfg;
  cfg.repeat_alarms_to_act = 3;
  cfg.repeat_window_ms = 10'000;
  plan::Policy p(cfg, clock);
  EXPECT_EQ(p.decide(alarm("P", 1)).outcome, "below_severity");
  clock.advance(11s);  // the first alarm leaves the window
  EXPECT_EQ(p.decide(alarm("P", 1)).outcome, "below_severity");
  EXPECT_EQ(p.decide(alarm("Q", 1)).outcome, "below_severity") << "other principals do not count";
  auto d = p.decide(alarm("P", 1));
  EXPECT_EQ(d.outcome, "below_severity");
  auto third = p.decide(alarm("P", 1));
  ASSERT_EQ(third.outcome, "planned");
  EXPECT_EQ(third.plan->actions(0).kind(), v1::ACTION_BLOCK_PRINCIPAL);
  EXPECT_EQ(third.plan->policy_rule(), "3_alarms_in_10s:block");
}

TEST(Policy, ConfigRejectsBadValues) {
  auto c = common::Config::from_map({{"plan.response", "nuke"}});
  EXPECT_THROW(plan::PolicyConfig::from_config(c), common::ConfigError);
  auto c2 = common::Config::from_map({{"plan.block_ttl_ms", "5"}});
  EXPECT_THROW(plan::PolicyConfig::from_config(c2), common::ConfigError);
}

TEST(PlanProcessor, PublishesPlansKeyedByPrincipalAndDeadLettersGarbage) {
  common::ManualClock clock;
  prometheus::Registry reg;
  auto topics = common::Topics::with_prefix("t.");
  auto pair = crypto::generate_ed25519();
  auto key =
      std::make_shared<const crypto::SigningKey>(crypto::SigningKey::from_pem(pair.private_pem));
  plan::PlanProcessor proc({}, topics, clock, reg, key);
  common::FakeConsumer in;
  common::FakeProducer out;
  common::StreamLoop loop(in, out, proc, {.service = "plan", .deadletter_topic = topics.deadletter},
                          nullptr);
  in.push(topics.alarms, "S9", alarm("S9", 3).SerializeAsString());
  in.push(topics.alarms, "x", "\xff\xff garbage");
  loop.run_once();
  ASSERT_EQ(out.on(topics.plans).size(), 1u);
  EXPECT_EQ(out.on(topics.plans)[0].key, "S9");
  v1::Plan plan;
  ASSERT_TRUE(plan.ParseFromString(out.on(topics.plans)[0].payload));
  EXPECT_EQ(plan.alarm_id(), "a-S93");
  // Signed with plan's key: verifies with its public key only.
  crypto::KeyRing ring;
  ring.add(crypto::VerifyingKey::from_pem(pair.public_pem));
  EXPECT_EQ(plan.key_id(), key->key_id());
  EXPECT_EQ(plan::verify(plan, ring), "");
  crypto::KeyRing other;
  other.add(crypto::VerifyingKey::from_pem(crypto::generate_ed25519().public_pem));
  EXPECT_EQ(plan::verify(plan, other), "untrusted_plan_key");
  EXPECT_EQ(out.on(topics.deadletter).size(), 1u);
}

TEST(PlanProcessor, AnAlarmReadAgainIsDroppedAndAReplayAfterACrashMakesTheSameIds) {
  common::ManualClock clock;
  auto topics = common::Topics::with_prefix("t.");
  auto key = std::make_shared<const crypto::SigningKey>(
      crypto::SigningKey::from_pem(crypto::generate_ed25519().private_pem));
  auto run = [&](prometheus::Registry& reg, common::FakeProducer& out, int times) {
    plan::PlanProcessor proc({}, topics, clock, reg, key);
    common::FakeConsumer in;
    common::StreamLoop loop(in, out, proc,
                            {.service = "plan", .deadletter_topic = topics.deadletter}, nullptr);
    for (int i = 0; i < times; ++i)
      in.push(topics.alarms, "S9", alarm("S9", 4).SerializeAsString());
    loop.run_once();
  };
  prometheus::Registry reg;
  common::FakeProducer out;
  run(reg, out, 2);
  ASSERT_EQ(out.on(topics.plans).size(), 1u);
  double dups = 0;
  for (const auto& fam : reg.Collect())
    if (fam.name == "immunizer_duplicates_dropped_total")
      for (const auto& m : fam.metric) dups += m.counter.value;
  EXPECT_EQ(dups, 1);
  v1::Plan first;
  ASSERT_TRUE(first.ParseFromString(out.on(topics.plans)[0].payload));
  ASSERT_EQ(first.actions_size(), 2);  // block + escalate
  EXPECT_NE(first.actions(0).id(), first.actions(1).id());
  // A fresh plan (restarted after a crash) reading the same alarm makes the same ids.
  prometheus::Registry reg2;
  common::FakeProducer out2;
  run(reg2, out2, 1);
  ASSERT_EQ(out2.on(topics.plans).size(), 1u);
  v1::Plan second;
  ASSERT_TRUE(second.ParseFromString(out2.on(topics.plans)[0].payload));
  EXPECT_EQ(second.id(), first.id());
  EXPECT_EQ(second.actions(0).id(), first.actions(0).id());
  EXPECT_EQ(second.actions(1).id(), first.actions(1).id());
  // Another alarm: other ids.
  auto d = plan::Policy({}, clock).decide(alarm("S8", 4));
  ASSERT_TRUE(d.plan);
  EXPECT_NE(d.plan->id(), first.id());
}
