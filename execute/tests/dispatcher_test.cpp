#include "immunizer/execute/dispatcher.hpp"

#include <gtest/gtest.h>

#include "immunizer/common/stream_loop.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/execute/processor.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "immunizer/testing/manual_clock.hpp"
#include "test_util.hpp"

using namespace immunizer;
using namespace immunizer::execute;
using namespace immunizer::execute::testing;
using namespace std::chrono_literals;

namespace {

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest()
      : topics(common::Topics::with_prefix("t.")), d(test_config(), topics, clock, registry) {}

  std::shared_ptr<RecordingLink> connect(const std::string& app, const std::string& instance,
                                         uint64_t* session = nullptr, bool batches = false) {
    auto link = std::make_shared<RecordingLink>();
    v1::EffectorHello h;
    h.set_app(app);
    h.set_instance(instance);
    if (batches) h.add_capabilities(std::string(effector::kBatchCapability));
    const uint64_t s = d.connect(h, link);
    if (session) *session = s;
    return link;
  }
  std::vector<v1::ActionEvent> drained() {
    d.drain(out);
    out.flush(0ms);
    return events(out, topics.actions);
  }
  v1::DirectiveAck ack(const v1::Directive& dir, bool applied, const std::string& reason = "",
                       int64_t at = 0) {
    v1::DirectiveAck a;
    a.set_directive_id(dir.id());
    a.set_applied(applied);
    a.set_reason(reason);
    a.set_applied_unix_nanos(at);
    return a;
  }

  common::ManualClock clock;
  prometheus::Registry registry;
  common::Topics topics;
  Dispatcher d;
  common::FakeProducer out;
};

TEST_F(DispatcherTest, PlanBecomesSignedDirectivePushedToEveryEffectorAndDispatchedEvent) {
  auto a = connect("shop", "1");
  auto b = connect("shop", "2");
  const int64_t call_ts = clock.now_unix_nanos() - 50'000'000;
  d.on_plan(block_plan("p1", "act1", "sess-1", 60'000, call_ts));

  ASSERT_EQ(a->directives().size(), 1u);
  ASSERT_EQ(b->directives().size(), 1u);
  const v1::Directive dir = a->directives()[0];
  EXPECT_EQ(b->directives()[0].id(), dir.id());
  EXPECT_FALSE(dir.id().empty());
  EXPECT_EQ(dir.action().id(), "act1");
  EXPECT_EQ(dir.action().kind(), v1::ACTION_BLOCK_PRINCIPAL);
  EXPECT_EQ(dir.action().target_value(), "sess-1");
  EXPECT_EQ(dir.issued_unix_nanos(), clock.now_unix_nanos());
  EXPECT_EQ(dir.expires_unix_nanos(), clock.now_unix_nanos() + 60'000'000'000LL);
  EXPECT_EQ(dir.key_id(), execute_key()->key_id());
  EXPECT_EQ(dir.plan_id(), "p1");
  EXPECT_FALSE(dir.revoke());
  EXPECT_TRUE(effector::verify(dir, trusted_keys()));
  EXPECT_FALSE(effector::verify(dir, crypto::KeyRing{}));
  v1::Directive tampered = dir;
  tampered.set_expires_unix_nanos(dir.expires_unix_nanos() + 1);
  EXPECT_FALSE(effector::verify(tampered, trusted_keys()));

  const auto ev = drained();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type(), v1::ACTION_EVENT_DISPATCHED);
  EXPECT_EQ(ev[0].action_id(), "act1");
  EXPECT_EQ(ev[0].plan_id(), "p1");
  EXPECT_EQ(ev[0].alarm_id(), "alarm-p1");
  EXPECT_EQ(ev[0].call_timestamp_unix_nanos(), call_ts);
  EXPECT_EQ(out.on(topics.actions)[0].key, "act1");
  EXPECT_EQ(d.active_count(), 1u);
  EXPECT_EQ(metric(registry, "immunizer_actions_total", "type", "block"), 1);
  EXPECT_EQ(metric(registry, "immunizer_execute_effectors_connected"), 2);
}

TEST_F(DispatcherTest, AppliedAckWritesAppliedOncePerEffectorAndRecordsLatency) {
  uint64_t s1 = 0, s2 = 0;
  auto a = connect("shop", "1", &s1);
  connect("shop", "2", &s2);
  const int64_t call_ts = clock.now_unix_nanos();
  d.on_plan(block_plan("p1", "act1", "sess-1", 60'000, call_ts));
  const auto dir = a->directives().at(0);
  d.on_ack(s1, ack(dir, true, "", call_ts + 120'000'000));
  d.on_ack(s1, ack(dir, true, "already applied"));  // e.g. after a replay: no second event
  d.on_ack(s2, ack(dir, false, "bad signature"));

  const auto ev = drained();
  const auto applied = of_type(ev, v1::ACTION_EVENT_APPLIED);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].action_id(), "act1");
  EXPECT_EQ(applied[0].effector(), "shop/1");
  EXPECT_EQ(applied[0].call_timestamp_unix_nanos(), call_ts);
  const auto rejected = of_type(ev, v1::ACTION_EVENT_REJECTED);
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].effector(), "shop/2");
  EXPECT_EQ(rejected[0].reason(), "bad signature");

  EXPECT_EQ(metric(registry, "immunizer_mitigation_latency_seconds"), 1);
  for (const auto& fam : registry.Collect()) {
    if (fam.name == "immunizer_mitigation_latency_seconds") {
      EXPECT_NEAR(fam.metric.at(0).histogram.sample_sum, 0.12, 1e-9);
    }
  }
  EXPECT_EQ(d.list_active().actions(0).acks(), 1);
}

TEST_F(DispatcherTest, SecondPlanForBlockedPrincipalExtendsTheActiveDirective) {
  auto link = connect("shop", "1");
  d.on_plan(block_plan("p1", "act1", "sess-1", 60'000));
  clock.advance(30s);
  d.on_plan(block_plan("p2", "act2", "sess-1", 60'000));

  EXPECT_EQ(d.active_count(), 1u);
  const auto dirs = link->directives();
  ASSERT_EQ(dirs.size(), 2u);
  // Same action id (the effector replaces the rule in place), new directive id, later expiry.
  EXPECT_EQ(dirs[1].action().id(), "act1");
  EXPECT_NE(dirs[1].id(), dirs[0].id());
  EXPECT_EQ(dirs[1].expires_unix_nanos(), clock.now_unix_nanos() + 60'000'000'000LL);
  EXPECT_EQ(dirs[1].action().ttl_millis(), 60'000);
  EXPECT_EQ(dirs[1].plan_id(), "p2");
  EXPECT_TRUE(effector::verify(dirs[1], trusted_keys()));

  const auto dispatched = of_type(drained(), v1::ACTION_EVENT_DISPATCHED);
  ASSERT_EQ(dispatched.size(), 2u);
  EXPECT_EQ(dispatched[1].action_id(), "act2");
  EXPECT_NE(dispatched[1].reason().find("extends active action act1"), std::string::npos);

  // A shorter TTL never shortens the block.
  clock.advance(10s);
  d.on_plan(block_plan("p3", "act3", "sess-1", 1'000));
  EXPECT_EQ(link->directives().back().expires_unix_nanos(), dirs[1].expires_unix_nanos());

  // Another principal is a separate action; another kind on the same principal too.
  d.on_plan(block_plan("p4", "act4", "sess-2", 60'000));
  d.on_plan(block_plan("p5", "act5", "sess-1", 60'000, 0, v1::ACTION_THROTTLE_PRINCIPAL));
  EXPECT_EQ(d.active_count(), 3u);

  // Expiry ends every action folded into the entry; Unblock works through any of their ids.
  EXPECT_TRUE(d.unblock("act5"));
  clock.advance(61s);
  EXPECT_EQ(d.expire(), 2u);
  const auto expired = of_type(drained(), v1::ACTION_EVENT_EXPIRED);
  std::vector<std::string> ids;
  for (const auto& e : expired) ids.push_back(e.action_id());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"act1", "act2", "act3", "act4"}));
}

TEST_F(DispatcherTest, TtlExpiryRemovesDirectiveAndWritesExpired) {
  auto link = connect("shop", "1");
  d.on_plan(block_plan("p1", "act1", "sess-1", 5'000));
  EXPECT_EQ(d.expire(), 0u);
  clock.advance(4999ms);
  EXPECT_EQ(d.expire(), 0u);
  clock.advance(1ms);
  EXPECT_EQ(d.expire(), 1u);
  EXPECT_EQ(d.active_count(), 0u);
  EXPECT_EQ(d.list_active().actions_size(), 0);
  const auto expired = of_type(drained(), v1::ACTION_EVENT_EXPIRED);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].action_id(), "act1");
  EXPECT_EQ(metric(registry, "immunizer_actions_total", "type", "expire"), 1);
  // A new effector gets nothing replayed; a new plan starts a new block.
  EXPECT_TRUE(connect("shop", "2")->directives().empty());
  d.on_plan(block_plan("p2", "act2", "sess-1", 5'000));
  EXPECT_EQ(link->directives().back().action().id(), "act2");
}

TEST_F(DispatcherTest, ReconnectingEffectorGetsEveryActiveDirectiveReplayedFirst) {
  d.on_plan(block_plan("p1", "act1", "sess-1", 60'000));
  d.on_plan(block_plan("p2", "act2", "sess-2", 60'000, 0, v1::ACTION_ABORT_CALL));
  uint64_t s = 0;
  auto first = connect("shop", "1", &s);
  ASSERT_EQ(first->directives().size(), 2u);
  d.disconnect(s);
  EXPECT_EQ(metric(registry, "immunizer_execute_effectors_connected"), 0);
  d.on_plan(block_plan("p3", "act3", "sess-3", 60'000));
  EXPECT_EQ(first->directives().size(), 2u);  // gone: nothing more pushed to it

  auto again = connect("shop", "1");
  const auto dirs = again->directives();
  ASSERT_EQ(dirs.size(), 3u);
  // The end-of-replay marker follows the replayed directives and counts them.
  EXPECT_EQ(first->replay_markers, (std::vector<std::pair<size_t, uint32_t>>{{2, 2}}));
  EXPECT_EQ(again->replay_markers, (std::vector<std::pair<size_t, uint32_t>>{{3, 3}}));
  // Replays are the very same signed directives (effectors recognise them as duplicates).
  EXPECT_EQ(dirs[0].id(), first->directives()[0].id());
  EXPECT_EQ(dirs[0].signature(), first->directives()[0].signature());
  d.on_plan(block_plan("p4", "act4", "sess-4", 60'000));
  EXPECT_EQ(again->directives().back().action().id(), "act4");
  EXPECT_EQ(again->replay_markers.size(), 1u);  // once per stream
}

// Issue 11, item 6: an effector that takes batches gets the replay in runs of kReplayBatch,
// each signed once with execute's key over its directives' exact bytes; live directives
// still go one by one. An effector that does not say so gets single directives.
TEST_F(DispatcherTest, ReplayToAnEffectorThatTakesBatchesIsSignedPerBatch) {
  for (int i = 0; i < 290; ++i)  // under the guard's 300 automatic blocks a minute
    d.on_plan(block_plan("p" + std::to_string(i), "act" + std::to_string(i),
                         "sess-" + std::to_string(i), 60'000));
  auto link = connect("shop", "1", nullptr, /*batches=*/true);
  ASSERT_EQ(link->batches.size(), 2u);
  EXPECT_EQ(link->batches[0].directives_size(), 256);
  EXPECT_EQ(link->batches[1].directives_size(), 34);
  for (const auto& b : link->batches) {
    std::vector<std::string> digests;
    for (const auto& dir : b.directives()) {
      digests.push_back(effector::directive_digest(dir));
      EXPECT_TRUE(effector::verify(dir, trusted_keys()));  // each still signed on its own
    }
    EXPECT_EQ(b.key_id(), execute_key()->key_id());
    EXPECT_TRUE(effector::verify(b, digests, trusted_keys()));
    auto altered = b;
    altered.mutable_directives(0)->mutable_action()->set_target_value("someone-else");
    digests[0] = effector::directive_digest(altered.directives(0));
    EXPECT_FALSE(effector::verify(altered, digests, trusted_keys()));
  }
  EXPECT_EQ(link->replay_markers, (std::vector<std::pair<size_t, uint32_t>>{{290, 290}}));
  d.on_plan(block_plan("p-live", "act-live", "sess-live", 60'000));
  EXPECT_EQ(link->batches.size(), 2u);
  EXPECT_EQ(link->directives().back().action().id(), "act-live");
  auto older = connect("shop", "2");  // no DIRECTIVE_BATCH in its hello
  EXPECT_TRUE(older->batches.empty());
  EXPECT_EQ(older->directives().size(), 291u);
}

TEST_F(DispatcherTest, ShadowPlansAreNotEnforced) {
  auto link = connect("shop", "1");
  auto p = block_plan("p1", "act1", "sess-1", 60'000);
  p.set_shadow(true);
  d.on_plan(p);
  EXPECT_TRUE(link->directives().empty());
  EXPECT_EQ(d.active_count(), 0u);
  EXPECT_TRUE(drained().empty());
  EXPECT_EQ(metric(registry, "immunizer_actions_total", "type", "shadow"), 1);
}

TEST_F(DispatcherTest, LogAndEscalateAreOnlyRecorded) {
  auto link = connect("shop", "1");
  v1::Plan p;
  p.set_id("p1");
  auto* log = p.add_actions();
  log->set_id("log1");
  log->set_kind(v1::ACTION_LOG);
  auto* esc = p.add_actions();
  esc->set_id("esc1");
  esc->set_kind(v1::ACTION_ESCALATE);
  d.on_plan(p);
  EXPECT_TRUE(link->directives().empty());
  const auto ev = drained();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].action_id(), "log1");
  EXPECT_EQ(ev[1].action_id(), "esc1");
  EXPECT_EQ(ev[1].type(), v1::ACTION_EVENT_DISPATCHED);
  EXPECT_EQ(metric(registry, "immunizer_actions_total", "type", "escalate"), 1);
}

TEST_F(DispatcherTest, UnenforceableActionIsRejectedNotSent) {
  auto link = connect("shop", "1");
  auto p = block_plan("p1", "act1", "", 60'000);  // no target value
  d.on_plan(p);
  auto q = block_plan("p2", "act2", "s", 60'000, 0, v1::ACTION_DISABLE_CALL);  // no call
  d.on_plan(q);
  EXPECT_TRUE(link->directives().empty());
  const auto rejected = of_type(drained(), v1::ACTION_EVENT_REJECTED);
  ASSERT_EQ(rejected.size(), 2u);
  EXPECT_EQ(rejected[0].reason(), "no target value");
  EXPECT_EQ(rejected[0].effector(), "execute");
}

TEST_F(DispatcherTest, RepeatedOrStalePlansAreNotDispatchedAgain) {
  auto link = connect("shop", "1");
  const auto p = block_plan("p1", "act1", "sess-1", 60'000);
  d.on_plan(p);
  d.on_plan(p);  // read twice (at-least-once)
  EXPECT_EQ(link->directives().size(), 1u);
  EXPECT_EQ(metric(registry, "immunizer_duplicates_dropped_total", "what", "plan"), 1);
  EXPECT_EQ(drained().size(), 1u);  // one DISPATCHED, not two
  auto old = block_plan("p0", "act0", "sess-9", 60'000);
  old.set_created_unix_nanos(clock.now_unix_nanos() - 61'000'000'000LL);
  d.on_plan(old);
  EXPECT_EQ(link->directives().size(), 1u);
  EXPECT_EQ(metric(registry, "immunizer_actions_total", "type", "stale"), 1);
}

TEST_F(DispatcherTest, ManualBlockAndUnblock) {
  auto link = connect("shop", "1");
  v1::BlockRequest req;
  req.set_field(v1::PRINCIPAL_FIELD_IP);
  req.set_value("10.0.0.9");
  req.set_ttl_millis(0);  // default TTL
  req.set_reason("scanner");
  const std::string id = d.block(req);
  ASSERT_EQ(link->directives().size(), 1u);
  const auto dir = link->directives()[0];
  EXPECT_EQ(dir.action().id(), id);
  EXPECT_EQ(dir.action().kind(), v1::ACTION_BLOCK_PRINCIPAL);
  EXPECT_EQ(dir.expires_unix_nanos(), clock.now_unix_nanos() + 300'000'000'000LL);

  EXPECT_TRUE(d.unblock(id));
  ASSERT_EQ(link->directives().size(), 2u);
  const auto revoke = link->directives()[1];
  EXPECT_TRUE(revoke.revoke());
  EXPECT_EQ(revoke.action().id(), id);
  EXPECT_NE(revoke.id(), dir.id());
  EXPECT_TRUE(effector::verify(revoke, trusted_keys()));
  EXPECT_FALSE(d.unblock(id));
  EXPECT_EQ(d.active_count(), 0u);
  const auto ev = drained();
  ASSERT_EQ(of_type(ev, v1::ACTION_EVENT_REVOKED).size(), 1u);
  EXPECT_NE(of_type(ev, v1::ACTION_EVENT_DISPATCHED).at(0).reason().find("scanner"),
            std::string::npos);

  // A call without a principal disables the call for everyone; nothing at all is invalid.
  v1::BlockRequest call_only;
  call_only.set_call("http POST /admin");
  d.block(call_only);
  EXPECT_EQ(link->directives().back().action().kind(), v1::ACTION_DISABLE_CALL);
  EXPECT_THROW(d.block(v1::BlockRequest{}), InvalidRequest);
  v1::BlockRequest no_value;
  no_value.set_field(v1::PRINCIPAL_FIELD_USER);
  EXPECT_THROW(d.block(no_value), InvalidRequest);
}

TEST_F(DispatcherTest, EffectorThatDoesNotReadIsClosed) {
  auto slow = connect("shop", "slow");
  slow->full = true;
  d.on_plan(block_plan("p1", "act1", "sess-1", 60'000));
  EXPECT_FALSE(slow->closed.empty());
  EXPECT_EQ(metric(registry, "immunizer_execute_slow_effectors_total"), 1);
}

TEST(ExecuteProcessor, PlansInEventsOutMalformedToDeadLetters) {
  common::ManualClock clock;
  prometheus::Registry registry;
  const auto topics = common::Topics::with_prefix("t.");
  Dispatcher d(test_config(), topics, clock, registry);
  ExecuteProcessor proc(d);
  common::FakeConsumer in;
  common::FakeProducer out;
  common::StreamLoop loop(in, out, proc,
                          {.service = "execute", .deadletter_topic = topics.deadletter}, nullptr);
  in.push(topics.plans, "sess-1",
          signed_plan(block_plan("p1", "act1", "sess-1", 1'000)).SerializeAsString());
  in.push(topics.plans, "x", "\xff\xff not a plan");
  EXPECT_EQ(loop.run_once(), 2u);
  EXPECT_EQ(out.on(topics.deadletter).size(), 1u);
  EXPECT_EQ(of_type(events(out, topics.actions), v1::ACTION_EVENT_DISPATCHED).size(), 1u);
  EXPECT_EQ((in.committed[{topics.plans, 0}]), 2);
  // The loop's tick is the TTL timer.
  clock.advance(2s);
  loop.run_once();
  out.flush(0ms);
  EXPECT_EQ(of_type(events(out, topics.actions), v1::ACTION_EVENT_EXPIRED).size(), 1u);
}

}  // namespace

namespace {

TEST(DispatcherRestart, ActiveDirectivesSurviveARestartAndEndedOnesDoNot) {
  common::ManualClock clock;
  const auto topics = common::Topics::with_prefix("t.");
  common::FakeProducer out;
  {
    prometheus::Registry registry;
    Dispatcher d(test_config(), topics, clock, registry);
    d.on_plan(block_plan("p1", "act1", "sess-1", 60'000));
    d.on_plan(block_plan("p2", "act2", "sess-1", 60'000));  // extends act1
    d.on_plan(block_plan("p3", "act3", "sess-2", 10'000));
    d.on_plan(block_plan("p4", "act4", "sess-3", 60'000));
    EXPECT_TRUE(d.unblock("act4"));
    d.drain(out);
    out.flush(0ms);
  }
  prometheus::Registry registry;
  clock.advance(20s);  // act3 is over by now
  Dispatcher d(test_config(), topics, clock, registry);
  EXPECT_EQ(d.restore(latest_snapshots(out, topics.models)), 1u);
  EXPECT_EQ(d.active_count(), 1u);
  auto link = std::make_shared<RecordingLink>();
  v1::EffectorHello h;
  h.set_app("shop");
  const uint64_t s = d.connect(h, link);
  ASSERT_EQ(link->directives().size(), 1u);
  const auto dir = link->directives()[0];
  EXPECT_EQ(dir.action().id(), "act1");
  EXPECT_EQ(dir.plan_id(), "p2");  // the extended directive, unchanged: effectors see a duplicate
  EXPECT_TRUE(effector::verify(dir, trusted_keys()));
  v1::DirectiveAck ack;
  ack.set_directive_id(dir.id());
  ack.set_applied(true);
  d.on_ack(s, ack);
  // A plan replayed after the restart (same deterministic action id) is dropped as in force.
  d.on_plan(block_plan("p1", "act1", "sess-1", 60'000));
  EXPECT_EQ(metric(registry, "immunizer_duplicates_dropped_total", "what", "action"), 1);
  EXPECT_EQ(link->directives().size(), 1u);
  // Deduplication and Unblock through a folded-in id keep working after the restart.
  d.on_plan(block_plan("p5", "act5", "sess-1", 60'000));
  EXPECT_EQ(d.active_count(), 1u);
  EXPECT_TRUE(d.unblock("act2"));
  EXPECT_EQ(d.active_count(), 0u);
  common::FakeProducer out2;
  d.drain(out2);
  out2.flush(0ms);
  EXPECT_EQ(of_type(events(out2, topics.actions), v1::ACTION_EVENT_APPLIED).size(), 1u);
  EXPECT_EQ(of_type(events(out2, topics.actions), v1::ACTION_EVENT_REVOKED).size(),
            3u);  // act1, act2, act5
}

}  // namespace

namespace {

TEST(DispatcherDurability, ManualBlockReturnsOnlyOnceItsStateIsAcknowledgedAndSurvivesARestart) {
  common::ManualClock clock;
  const auto topics = common::Topics::with_prefix("t.");
  prometheus::Registry registry;
  Dispatcher d(test_config(), topics, clock, registry);
  common::FakeProducer sink;
  d.set_state_sink(&sink, 1s);
  v1::BlockRequest req;
  req.set_field(v1::PRINCIPAL_FIELD_IP);
  req.set_value("10.0.0.9");
  req.set_ttl_millis(600'000);
  const std::string id = d.block(req);
  // Acknowledged (flushed) before block() returned: nothing left pending.
  EXPECT_TRUE(sink.pending.empty());
  const auto state = latest_snapshots(sink, topics.models);
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state.begin()->second.model_key(), id);
  // Events still go with the stream loop's producer, not the state sink.
  common::FakeProducer out;
  d.drain(out);
  out.flush(0ms);
  EXPECT_TRUE(out.on(topics.models).empty());
  EXPECT_EQ(of_type(events(out, topics.actions), v1::ACTION_EVENT_DISPATCHED).size(), 1u);

  // Kafka does not acknowledge: the caller is told, and the state is written again later.
  sink.fail_next_flush = true;
  v1::BlockRequest other = req;
  other.set_value("10.0.0.10");
  EXPECT_THROW(d.block(other), std::runtime_error);
  EXPECT_EQ(d.active_count(), 2u);  // in force meanwhile
  EXPECT_TRUE(d.flush_state());
  EXPECT_EQ(latest_snapshots(sink, topics.models).size(), 2u);

  // kill -9 right after: a new execute takes both back with their expiry.
  clock.advance(60s);
  prometheus::Registry registry2;
  Dispatcher again(test_config(), topics, clock, registry2);
  EXPECT_EQ(again.restore(latest_snapshots(sink, topics.models)), 2u);
  const auto listed = again.list_active();
  ASSERT_EQ(listed.actions_size(), 2);
  for (const auto& a : listed.actions())
    EXPECT_EQ(a.expires_unix_nanos(),
              clock.now_unix_nanos() - 60'000'000'000LL + 600'000'000'000LL);

  // Unblock is durable too.
  EXPECT_TRUE(d.unblock(id));
  EXPECT_TRUE(sink.pending.empty());
  prometheus::Registry registry3;
  Dispatcher third(test_config(), topics, clock, registry3);
  EXPECT_EQ(third.restore(latest_snapshots(sink, topics.models)), 1u);
}

TEST(DispatcherDurability, APlanBatchIsReadAgainWhenItsStateIsNotAcknowledged) {
  common::ManualClock clock;
  prometheus::Registry registry;
  const auto topics = common::Topics::with_prefix("t.");
  Dispatcher d(test_config(), topics, clock, registry);
  common::FakeProducer sink;
  d.set_state_sink(&sink, 1s);
  ExecuteProcessor proc(d);
  common::FakeConsumer in;
  common::FakeProducer out;
  common::StreamLoop loop(in, out, proc,
                          {.service = "execute", .deadletter_topic = topics.deadletter}, nullptr);
  in.push(topics.plans, "s",
          signed_plan(block_plan("p1", "act1", "sess-1", 60'000)).SerializeAsString());
  sink.fail_next_flush = true;
  loop.run_once();
  EXPECT_EQ((in.committed[{topics.plans, 0}]), 0)
      << "committed although its state was not acknowledged";
  EXPECT_TRUE(latest_snapshots(sink, topics.models).empty());
  loop.run_once();  // read again: the plan is known, its state is written again
  EXPECT_EQ((in.committed[{topics.plans, 0}]), 1);
  EXPECT_EQ(latest_snapshots(sink, topics.models).size(), 1u);
  EXPECT_EQ(d.active_count(), 1u);
}

}  // namespace
