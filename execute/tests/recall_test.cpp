// Exactly-once-looking dispatch across a crash of execute (issue 11): a plan handled but not
// committed is read again by the next run, which recalls the previous run's decisions from the
// tail of the actions topic and dispatches nothing twice; events wait for the state they
// follow, so an event on the topic implies its block is restored.
#include <gtest/gtest.h>

#include <limits>

#include "immunizer/common/mock_broker.hpp"
#include "immunizer/common/stream_loop.hpp"
#include "immunizer/execute/dispatcher.hpp"
#include "immunizer/execute/processor.hpp"
#include "immunizer/execute/recent_events.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "immunizer/testing/manual_clock.hpp"
#include "test_util.hpp"

using namespace immunizer;
using namespace immunizer::execute;
using namespace immunizer::execute::testing;
using namespace std::chrono_literals;

namespace {

// A plan with a block, a log and an escalation (every kind of output the audit trail gets).
v1::Plan mixed_plan(const std::string& id, const std::string& session) {
  v1::Plan p = block_plan(id, id + "-block", session, 600'000);
  auto* log = p.add_actions();
  log->set_id(id + "-log");
  log->set_kind(v1::ACTION_LOG);
  auto* esc = p.add_actions();
  esc->set_id(id + "-escalate");
  esc->set_kind(v1::ACTION_ESCALATE);
  return p;
}

common::Message plan_message(const common::Topics& topics, const v1::Plan& p, int64_t offset) {
  common::Message m;
  m.topic = topics.plans;
  m.offset = offset;
  m.key = p.principal().session();
  m.payload = signed_plan(p).SerializeAsString();
  return m;
}

std::map<std::string, int> dispatched(const common::FakeProducer& out, const std::string& topic) {
  std::map<std::string, int> n;
  for (const auto& e : of_type(events(out, topic), v1::ACTION_EVENT_DISPATCHED)) ++n[e.action_id()];
  return n;
}

// One run of execute: a dispatcher with its state on `state` (the snapshot producer).
struct ExecuteRun {
  ExecuteRun(const common::Topics& topics, const common::Clock& clock, common::FakeProducer& state)
      : d(test_config(), topics, clock, registry), proc(d) {
    d.set_state_sink(&state, 1s);
  }
  // What the stream loop does with a batch, up to (not including) the commit.
  void process(const std::vector<common::Message>& batch, common::FakeProducer& out) {
    proc.process_batch(batch, out,
                       [](const common::Message&, const std::string& reason, const std::string&) {
                         FAIL() << "dead letter: " << reason;
                       });
    ASSERT_TRUE(out.flush(0ms).ok());
  }
  prometheus::Registry registry;
  Dispatcher d;
  ExecuteProcessor proc;
};

TEST(DispatcherRecall, APlanReadAgainAfterACrashDispatchesNothingTwice) {
  common::ManualClock clock;
  const auto topics = common::Topics::with_prefix("t.");
  common::FakeProducer state, actions;
  const std::vector<common::Message> batch = {plan_message(topics, mixed_plan("p1", "sess-1"), 0),
                                              plan_message(topics, mixed_plan("p2", "sess-2"), 1)};
  {
    ExecuteRun first(topics, clock, state);
    first.process(batch, actions);
    // kill -9 here: the events and the state are acknowledged, the offsets never committed.
  }
  ASSERT_EQ(dispatched(actions, topics.actions).size(), 6u);

  clock.advance(2s);
  ExecuteRun second(topics, clock, state);
  EXPECT_EQ(second.d.restore(latest_snapshots(state, topics.models)), 2u);
  EXPECT_EQ(second.d.recall(events(actions, topics.actions), 0), 6u);
  common::FakeProducer again;
  second.process(batch, again);  // the same plans, read again from the last committed offset
  EXPECT_TRUE(dispatched(again, topics.actions).empty())
      << "an action was dispatched twice after the restart";
  EXPECT_EQ(metric(second.registry, "immunizer_duplicates_dropped_total", "what", "action"), 6);
  EXPECT_EQ(second.d.active_count(), 2u);  // the blocks stay in force
  EXPECT_EQ(metric(second.registry, "immunizer_actions_total", "type", "log"), 0);
  EXPECT_EQ(metric(second.registry, "immunizer_actions_total", "type", "escalate"), 0);

  // A new plan after the restart is dispatched as usual.
  second.process({plan_message(topics, mixed_plan("p3", "sess-3"), 2)}, again);
  EXPECT_EQ(dispatched(again, topics.actions).size(), 3u);
}

TEST(DispatcherRecall, AGuardRefusalIsRecalledToo) {
  common::ManualClock clock;
  const auto topics = common::Topics::with_prefix("t.");
  common::FakeProducer state, actions;
  v1::Plan p = block_plan("p1", "act1", "sess-1", 60'000, 0, v1::ACTION_DISABLE_CALL);
  p.mutable_actions(0)->set_call("http POST /admin");
  const std::vector<common::Message> batch = {plan_message(topics, p, 0)};
  {
    ExecuteRun first(topics, clock, state);  // automatic plans may not disable calls by default
    first.process(batch, actions);
  }
  ASSERT_EQ(of_type(events(actions, topics.actions), v1::ACTION_EVENT_REJECTED).size(), 1u);
  ExecuteRun second(topics, clock, state);
  second.d.recall(events(actions, topics.actions), 0);
  common::FakeProducer again;
  second.process(batch, again);
  EXPECT_TRUE(events(again, topics.actions).empty());
  EXPECT_EQ(metric(second.registry, "immunizer_duplicates_dropped_total", "what", "action"), 1);
}

TEST(DispatcherRecall, ABlockWhoseStateWasAcknowledgedButNotItsEventGetsTheEventOnce) {
  common::ManualClock clock;
  const auto topics = common::Topics::with_prefix("t.");
  common::FakeProducer state;
  const v1::Plan p = block_plan("p1", "act1", "sess-1", 600'000);
  {
    ExecuteRun first(topics, clock, state);
    first.d.on_plan(p);
    ASSERT_TRUE(first.d.flush_state());
    // kill -9 here: the state is acknowledged, the DISPATCHED event never produced.
  }
  clock.advance(2s);
  {
    // The read back covers the time of the dispatch: the event is missing, written now.
    ExecuteRun second(topics, clock, state);
    EXPECT_EQ(second.d.restore(latest_snapshots(state, topics.models)), 1u);
    second.d.recall({}, clock.now_unix_nanos() - 60'000'000'000LL);
    common::FakeProducer out;
    second.d.on_plan(p);  // read again
    second.d.drain(out);
    out.flush(0ms);
    const auto ev = of_type(events(out, topics.actions), v1::ACTION_EVENT_DISPATCHED);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].action_id(), "act1");
    EXPECT_EQ(ev[0].plan_id(), "p1");
    EXPECT_EQ(ev[0].alarm_id(), "alarm-p1");
    EXPECT_EQ(metric(second.registry, "immunizer_duplicates_dropped_total", "what", "action"), 1);
  }
  {
    // It does not (events older than the read's start are unknown, and a read that did not
    // complete knows nothing): no event is invented.
    for (const int64_t since : {clock.now_unix_nanos(), std::numeric_limits<int64_t>::max()}) {
      ExecuteRun third(topics, clock, state);
      third.d.restore(latest_snapshots(state, topics.models));
      third.d.recall({}, since);
      common::FakeProducer out;
      third.d.drain(out);
      out.flush(0ms);
      EXPECT_TRUE(events(out, topics.actions).empty());
    }
  }
}

TEST(DispatcherRecall, EventsWaitForTheStateTheyFollow) {
  common::ManualClock clock;
  const auto topics = common::Topics::with_prefix("t.");
  common::FakeProducer state;
  ExecuteRun run(topics, clock, state);
  common::FakeProducer out;
  state.fail_next_flush = true;
  run.d.on_plan(block_plan("p1", "act1", "sess-1", 600'000));
  run.d.drain(out);  // the state is not acknowledged: its event waits
  out.flush(0ms);
  EXPECT_TRUE(events(out, topics.actions).empty());
  run.d.drain(out);  // acknowledged now (written again): the event follows
  out.flush(0ms);
  EXPECT_EQ(dispatched(out, topics.actions).size(), 1u);
  EXPECT_EQ(latest_snapshots(state, topics.models).size(), 1u);

  // Through the stream loop: a batch whose state is not acknowledged produces no event.
  common::FakeConsumer in;
  common::FakeProducer out2;
  common::StreamLoop loop(in, out2, run.proc,
                          {.service = "execute", .deadletter_topic = topics.deadletter}, nullptr);
  in.push(topics.plans, "s",
          signed_plan(block_plan("p2", "act2", "sess-2", 60'000)).SerializeAsString());
  state.fail_next_flush = true;
  loop.run_once();
  out2.flush(0ms);
  EXPECT_TRUE(events(out2, topics.actions).empty());
  EXPECT_EQ((in.committed[{topics.plans, 0}]), 0);
  loop.run_once();
  EXPECT_EQ((in.committed[{topics.plans, 0}]), 1);
  EXPECT_EQ(dispatched(out2, topics.actions).size(), 1u);
}

TEST(RecentEvents, ReadsTheLastEventsOfEachPartitionToItsEnd) {
  common::MockBroker broker(1, {{"t.actions", 1}, {"t.empty", 2}});
  common::KafkaSettings s;
  s.bootstrap = broker.bootstrap();
  {
    auto p = common::make_kafka_producer(s, "test", nullptr);
    for (int i = 1; i <= 30; ++i) {
      v1::ActionEvent e;
      e.set_action_id("a" + std::to_string(i));
      e.set_type(v1::ACTION_EVENT_DISPATCHED);
      e.set_at_unix_nanos(i * 1000);
      p->produce("t.actions", e.action_id(), e.SerializeAsString());
    }
    p->produce("t.actions", "x", "\xff\xff not an event");
    ASSERT_TRUE(p->flush(10s).ok());
  }
  const auto tail = read_recent_events(s, "t.actions", 6, 10s);
  EXPECT_TRUE(tail.complete);
  ASSERT_EQ(tail.events.size(), 5u);  // the last 6 messages: a26..a30 and the unreadable one
  EXPECT_EQ(tail.unreadable, 1u);
  EXPECT_EQ(tail.events.front().action_id(), "a26");
  EXPECT_EQ(tail.events.back().action_id(), "a30");
  EXPECT_EQ(tail.complete_since_unix_nanos, 26'000);

  const auto all = read_recent_events(s, "t.actions", 1000, 10s);
  EXPECT_TRUE(all.complete);
  EXPECT_EQ(all.events.size(), 30u);
  EXPECT_EQ(all.complete_since_unix_nanos, 0);  // from the first offset: nothing before

  const auto empty = read_recent_events(s, "t.empty", 1000, 10s);
  EXPECT_TRUE(empty.complete);
  EXPECT_TRUE(empty.events.empty());
  EXPECT_EQ(empty.complete_since_unix_nanos, 0);
}

}  // namespace
