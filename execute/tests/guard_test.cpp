// Plans are authenticated (signed by plan's key) and guarded (kinds, TTL cap, circuit breaker).
#include <gtest/gtest.h>

#include <algorithm>

#include "immunizer/common/stream_loop.hpp"
#include "immunizer/execute/dispatcher.hpp"
#include "immunizer/execute/processor.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "immunizer/testing/manual_clock.hpp"
#include "test_util.hpp"

using namespace immunizer;
using namespace immunizer::execute;
using namespace immunizer::execute::testing;
using namespace std::chrono_literals;

namespace {

v1::Plan disable_plan(const std::string& id, const std::string& call) {
  v1::Plan p;
  p.set_id(id);
  auto* a = p.add_actions();
  a->set_id("act-" + id);
  a->set_kind(v1::ACTION_DISABLE_CALL);
  a->set_call(call);
  a->set_ttl_millis(60'000);
  return p;
}

class GuardTest : public ::testing::Test {
 protected:
  explicit GuardTest(ExecuteConfig cfg = test_config())
      : topics(common::Topics::with_prefix("t.")), d(std::move(cfg), topics, clock, registry) {
    link = std::make_shared<RecordingLink>();
    v1::EffectorHello h;
    h.set_app("shop");
    h.set_instance("1");
    d.connect(h, link);
  }
  std::vector<v1::ActionEvent> drained() {
    d.drain(out);
    out.flush(0ms);
    return events(out, topics.actions);
  }

  common::ManualClock clock;
  prometheus::Registry registry;
  common::Topics topics;
  Dispatcher d;
  std::shared_ptr<RecordingLink> link;
  common::FakeProducer out;
};

TEST_F(GuardTest, UnsignedOrForgedPlansOnTheTopicAreDeadLetteredAndNothingIsEnforced) {
  ExecuteProcessor proc(d);
  common::FakeConsumer in;
  common::StreamLoop loop(in, out, proc,
                          {.service = "execute", .deadletter_topic = topics.deadletter}, nullptr);

  // The attack from issue 10: anyone with write access to the topic disables every request.
  in.push(topics.plans, "x", disable_plan("p-unsigned", "http.request").SerializeAsString());
  // Signed by a key of the attacker's own...
  const auto attacker = crypto::SigningKey::from_pem(crypto::generate_ed25519().private_pem);
  v1::Plan own_key = block_plan("p-own", "act-own", "victim", 60'000);
  plan::sign(own_key, attacker);
  in.push(topics.plans, "x", own_key.SerializeAsString());
  // ... claiming the trusted key's id...
  v1::Plan claimed = own_key;
  claimed.set_key_id(plan_key().key_id());
  in.push(topics.plans, "x", claimed.SerializeAsString());
  // ... or a genuine plan altered after signing (the block stretched to a year).
  v1::Plan altered = signed_plan(block_plan("p-alt", "act-alt", "victim", 60'000));
  altered.mutable_actions(0)->set_ttl_millis(365LL * 24 * 3600 * 1000);
  in.push(topics.plans, "x", altered.SerializeAsString());
  // A shadow plan is authenticated like any other.
  v1::Plan shadow = disable_plan("p-shadow", "http.request");
  shadow.set_shadow(true);
  in.push(topics.plans, "x", shadow.SerializeAsString());

  EXPECT_EQ(loop.run_once(), 5u);
  EXPECT_TRUE(link->directives().empty());
  EXPECT_EQ(d.active_count(), 0u);
  EXPECT_TRUE(events(out, topics.actions).empty());
  const auto dl = out.on(topics.deadletter);
  ASSERT_EQ(dl.size(), 5u);
  std::vector<std::string> reasons;
  for (const auto& m : dl) {
    v1::DeadLetter l;
    ASSERT_TRUE(l.ParseFromString(m.payload));
    reasons.push_back(l.reason().substr(0, l.reason().find(':')));
  }
  EXPECT_EQ(reasons,
            (std::vector<std::string>{"unsigned_plan", "untrusted_plan_key", "bad_plan_signature",
                                      "bad_plan_signature", "unsigned_plan"}));
  EXPECT_EQ(metric(registry, "immunizer_execute_plans_refused_total", "reason", "unsigned_plan"),
            2);
  EXPECT_EQ(
      metric(registry, "immunizer_execute_plans_refused_total", "reason", "untrusted_plan_key"), 1);
  EXPECT_EQ(
      metric(registry, "immunizer_execute_plans_refused_total", "reason", "bad_plan_signature"), 2);
  EXPECT_EQ((in.committed[{topics.plans, 0}]), 5);  // dead-lettered, not re-read

  // The genuine plan, signed by plan's key, is enforced.
  in.push(topics.plans, "x",
          signed_plan(block_plan("p-ok", "act-ok", "attacker", 60'000)).SerializeAsString());
  loop.run_once();
  ASSERT_EQ(link->directives().size(), 1u);
  EXPECT_EQ(link->directives()[0].action().target_value(), "attacker");
  EXPECT_EQ(out.on(topics.deadletter).size(), 5u);
}

TEST_F(GuardTest, AutomaticPlansMayNotDisableACallButAnOperatorMay) {
  d.on_plan(disable_plan("p1", "http.request"));
  EXPECT_TRUE(link->directives().empty());
  const auto rejected = of_type(drained(), v1::ACTION_EVENT_REJECTED);
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].action_id(), "act-p1");
  EXPECT_NE(rejected[0].reason().find("may not disable"), std::string::npos)
      << rejected[0].reason();
  EXPECT_EQ(metric(registry, "immunizer_execute_guard_total", "decision", "refused_kind"), 1);
  // Principal blocks, throttles and aborts remain allowed.
  d.on_plan(block_plan("p2", "act2", "s2", 60'000));
  d.on_plan(block_plan("p3", "act3", "s3", 60'000, 0, v1::ACTION_THROTTLE_PRINCIPAL));
  d.on_plan(block_plan("p4", "act4", "s4", 60'000, 0, v1::ACTION_ABORT_CALL));
  EXPECT_EQ(link->directives().size(), 3u);
  // The operator (Operations.Block) may disable a call.
  v1::BlockRequest req;
  req.set_call("http.request");
  d.block(req);
  ASSERT_EQ(link->directives().size(), 4u);
  EXPECT_EQ(link->directives().back().action().kind(), v1::ACTION_DISABLE_CALL);
}

class GuardDisableEnabledTest : public GuardTest {
 protected:
  static ExecuteConfig cfg() {
    auto c = test_config();
    c.guard_automatic_actions = {"block", "disable"};
    return c;
  }
  GuardDisableEnabledTest() : GuardTest(cfg()) {}
};

TEST_F(GuardDisableEnabledTest, DisableFromPlansWhenExplicitlyEnabledAndThrottleThenRefused) {
  d.on_plan(disable_plan("p1", "http POST /admin"));
  ASSERT_EQ(link->directives().size(), 1u);
  EXPECT_EQ(link->directives()[0].action().kind(), v1::ACTION_DISABLE_CALL);
  d.on_plan(
      block_plan("p2", "act2", "s2", 60'000, 0, v1::ACTION_THROTTLE_PRINCIPAL));  // not listed
  EXPECT_EQ(link->directives().size(), 1u);
}

TEST_F(GuardTest, AutomaticTtlIsClampedButAManualOneIsNot) {
  d.on_plan(block_plan("p1", "act1", "s1", 99'999'999'999));
  ASSERT_EQ(link->directives().size(), 1u);
  const auto dir = link->directives()[0];
  EXPECT_EQ(dir.action().ttl_millis(), 3'600'000);
  EXPECT_EQ(dir.expires_unix_nanos(), clock.now_unix_nanos() + 3'600'000LL * 1'000'000);
  const auto dispatched = of_type(drained(), v1::ACTION_EVENT_DISPATCHED);
  ASSERT_EQ(dispatched.size(), 1u);
  EXPECT_NE(dispatched[0].reason().find("ttl clamped from 99999999999 ms to 3600000 ms"),
            std::string::npos)
      << dispatched[0].reason();
  EXPECT_EQ(metric(registry, "immunizer_execute_guard_total", "decision", "ttl_clamped"), 1);
  // A plan without a TTL gets the default (5 min, under the cap): nothing clamped.
  d.on_plan(block_plan("p2", "act2", "s2", 0));
  EXPECT_EQ(link->directives().back().action().ttl_millis(), 300'000);
  EXPECT_EQ(metric(registry, "immunizer_execute_guard_total", "decision", "ttl_clamped"), 1);
  // An operator's block is bounded by execute.max_ttl_ms only (30 days).
  v1::BlockRequest req;
  req.set_field(v1::PRINCIPAL_FIELD_IP);
  req.set_value("10.0.0.1");
  req.set_ttl_millis(7LL * 24 * 3600 * 1000);
  d.block(req);
  EXPECT_EQ(link->directives().back().action().ttl_millis(), 7LL * 24 * 3600 * 1000);
}

TEST_F(GuardTest, AManualBlockOverTheMaximumTtlIsRefusedAndAudited) {
  // Issue 10: ttl_ms 99999999999 through the dashboard or `immunizer block` was accepted.
  v1::BlockRequest req;
  req.set_field(v1::PRINCIPAL_FIELD_IP);
  req.set_value("10.0.0.9");
  req.set_ttl_millis(99'999'999'999);
  req.set_reason("manual block from the dashboard by admin");
  try {
    d.block(req);
    FAIL() << "accepted";
  } catch (const InvalidRequest& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds execute.max_ttl_ms (2592000000 ms"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(link->directives().empty()) << "nothing enforced";
  EXPECT_EQ(metric(registry, "immunizer_execute_guard_total", "decision", "manual_ttl_refused"), 1);
  const auto rejected = of_type(drained(), v1::ACTION_EVENT_REJECTED);
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].action().target_value(), "10.0.0.9");
  EXPECT_NE(rejected[0].reason().find("manual block refused"), std::string::npos);
  EXPECT_NE(rejected[0].reason().find("by admin"), std::string::npos);
  // At the maximum itself: accepted.
  req.set_ttl_millis(30LL * 24 * 3600 * 1000);
  d.block(req);
  ASSERT_EQ(link->directives().size(), 1u);
  EXPECT_EQ(link->directives()[0].action().ttl_millis(), 30LL * 24 * 3600 * 1000);
}

TEST_F(GuardTest, PrefixBlocksAreEnforcedWithACanonicalNetworkOnly) {
  d.on_plan(block_plan("p1", "act1", "s1", 60'000));
  v1::Plan p = block_plan("p2", "act2", "x", 60'000);
  p.mutable_actions(0)->set_target_field(v1::PRINCIPAL_FIELD_IP_PREFIX);
  p.mutable_actions(0)->set_target_value("198.51.100.0/24");
  d.on_plan(p);
  ASSERT_EQ(link->directives().size(), 2u);
  EXPECT_EQ(link->directives()[1].action().target_field(), v1::PRINCIPAL_FIELD_IP_PREFIX);
  v1::BlockRequest req;
  req.set_field(v1::PRINCIPAL_FIELD_IP_PREFIX);
  req.set_value("198.51.100.7/24");  // host bits set
  EXPECT_THROW(d.block(req), InvalidRequest);
  req.set_value("203.0.113.0/24");
  d.block(req);
  EXPECT_EQ(link->directives().size(), 3u);
}

class BreakerTest : public GuardTest {
 protected:
  static ExecuteConfig cfg() {
    auto c = test_config();
    c.guard_max_automatic_blocks_per_minute = 5;
    c.guard_breaker_cooldown_ms = 120'000;
    return c;
  }
  BreakerTest() : GuardTest(cfg()) {}
};

TEST_F(BreakerTest, MoreThanNAutomaticBlocksPerMinuteOpenTheBreakerUntilTheCooldownEnds) {
  for (int i = 0; i < 5; ++i) {
    d.on_plan(block_plan("p" + std::to_string(i), "act" + std::to_string(i),
                         "s" + std::to_string(i), 60'000));
    clock.advance(1s);
  }
  EXPECT_EQ(link->directives().size(), 5u);
  EXPECT_FALSE(d.breaker_open());
  // Extending a block in force is no new lockout and does not count.
  d.on_plan(block_plan("p-ext", "act-ext", "s0", 60'000));
  EXPECT_EQ(link->directives().size(), 6u);
  EXPECT_FALSE(d.breaker_open());
  // The 6th new principal within a minute trips it: not enforced, an alarm in the audit trail.
  d.on_plan(block_plan("p5", "act5", "s5", 60'000));
  EXPECT_EQ(link->directives().size(), 6u);
  EXPECT_TRUE(d.breaker_open());
  EXPECT_EQ(metric(registry, "immunizer_execute_breaker_open"), 1);
  EXPECT_EQ(metric(registry, "immunizer_execute_guard_total", "decision", "breaker_tripped"), 1);
  auto ev = drained();
  const auto rejected = of_type(ev, v1::ACTION_EVENT_REJECTED);
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].action_id(), "act5");
  bool alarm = false;
  for (const auto& e : of_type(ev, v1::ACTION_EVENT_DISPATCHED))
    if (e.action().kind() == v1::ACTION_ESCALATE &&
        e.reason().find("circuit breaker opened") != std::string::npos)
      alarm = true;
  EXPECT_TRUE(alarm) << "no circuit-breaker escalation in the audit trail";

  // While open: automatic blocks (new or extensions) are logged as rejected, manual ones work.
  clock.advance(61s);  // the window has emptied, but the cooldown has not
  d.on_plan(block_plan("p6", "act6", "s6", 60'000));
  d.on_plan(block_plan("p7", "act7", "s1", 60'000));
  EXPECT_EQ(link->directives().size(), 6u);
  EXPECT_EQ(metric(registry, "immunizer_execute_guard_total", "decision", "breaker_open"), 3);
  v1::BlockRequest req;
  req.set_field(v1::PRINCIPAL_FIELD_SESSION);
  req.set_value("s-manual");
  d.block(req);
  EXPECT_EQ(link->directives().size(), 7u);
  EXPECT_TRUE(d.breaker_open());

  // After the cooldown it closes again and automatic blocks resume.
  clock.advance(60s);
  EXPECT_FALSE(d.breaker_open());
  d.on_plan(block_plan("p8", "act8", "s8", 60'000));
  EXPECT_EQ(link->directives().size(), 8u);
  EXPECT_EQ(link->directives().back().action().id(), "act8");
  EXPECT_EQ(metric(registry, "immunizer_execute_breaker_open"), 0);
  EXPECT_EQ(metric(registry, "immunizer_execute_guard_total", "decision", "breaker_closed"), 1);
}

}  // namespace

// A watch denies nothing: it is signed and sent like any directive, whatever
// execute.guard.automatic_actions says and while the breaker is open, and counts as no
// lockout; one without a principal is refused.
TEST_F(BreakerTest, WatchesAreSentOutsideTheGuard) {
  for (int i = 0; i < 6; ++i)
    d.on_plan(block_plan("p" + std::to_string(i), "act" + std::to_string(i),
                         "s" + std::to_string(i), 60'000));
  ASSERT_TRUE(d.breaker_open());
  const size_t before = link->directives().size();
  d.on_plan(block_plan("pw", "actw", "s-watched", 300'000, 0, v1::ACTION_WATCH_PRINCIPAL));
  ASSERT_EQ(link->directives().size(), before + 1);
  const auto sent = link->directives();
  const auto& w = sent.back();
  EXPECT_EQ(w.action().kind(), v1::ACTION_WATCH_PRINCIPAL);
  EXPECT_EQ(w.action().target_value(), "s-watched");
  EXPECT_FALSE(w.signature().empty());
  EXPECT_GT(w.expires_unix_nanos(), w.issued_unix_nanos());
  v1::Plan bad = block_plan("pw2", "actw2", "", 300'000, 0, v1::ACTION_WATCH_PRINCIPAL);
  d.on_plan(bad);
  EXPECT_EQ(link->directives().size(), before + 1);
  const auto rejected = of_type(drained(), v1::ACTION_EVENT_REJECTED);
  EXPECT_TRUE(std::any_of(rejected.begin(), rejected.end(),
                          [](const v1::ActionEvent& e) { return e.action_id() == "actw2"; }));
}
