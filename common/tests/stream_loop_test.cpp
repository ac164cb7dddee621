#include "immunizer/common/stream_loop.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "immunizer/common/stage_processor.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "immunizer/testing/manual_clock.hpp"
#include "immunizer/v1/records.pb.h"

using namespace immunizer::common;

namespace {
// Upper-cases payloads to "out"; rejects payloads starting with '!'.
class Upper final : public Processor {
 public:
  void process(const Message& m, Producer& out) override {
    if (!m.payload.empty() && m.payload[0] == '!') throw BadMessage("bad_payload", "starts with !");
    std::string s = m.payload;
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out.produce("out", m.key, s);
  }
};
}  // namespace

TEST(StreamLoop, CommitsOnlyAfterOutputsAreAcknowledged) {
  FakeConsumer in;
  FakeProducer out;
  Upper p;
  StreamLoop loop(in, out, p, {.service = "t", .deadletter_topic = "dl"}, nullptr);
  in.push("in", "k", "a");
  in.push("in", "k", "b");
  out.fail_next_flush = true;
  EXPECT_EQ(loop.run_once(), 2u);
  EXPECT_TRUE(in.committed.empty());
  EXPECT_EQ(in.rewinds, 1);
  EXPECT_TRUE(out.sent.empty());
  // The batch is read again and this time acknowledged.
  EXPECT_EQ(loop.run_once(), 2u);
  EXPECT_EQ((in.committed[{"in", 0}]), 2);
  ASSERT_EQ(out.on("out").size(), 2u);
  EXPECT_EQ(out.on("out")[1].payload, "B");
}

TEST(StreamLoop, MalformedMessageBecomesDeadLetterAndLoopContinues) {
  FakeConsumer in;
  FakeProducer out;
  Upper p;
  StreamLoop loop(in, out, p, {.service = "t", .deadletter_topic = "dl"}, nullptr);
  in.push("in", "k", "!oops");
  in.push("in", "k", "fine");
  loop.run_once();
  ASSERT_EQ(out.on("dl").size(), 1u);
  immunizer::v1::DeadLetter dl;
  ASSERT_TRUE(dl.ParseFromString(out.on("dl")[0].payload));
  EXPECT_EQ(dl.source_topic(), "in");
  EXPECT_EQ(dl.offset(), 0);
  EXPECT_NE(dl.reason().find("bad_payload"), std::string::npos);
  EXPECT_EQ(dl.payload(), "!oops");
  EXPECT_EQ(out.on("out").size(), 1u);
  EXPECT_EQ((in.committed[{"in", 0}]), 2);
  EXPECT_EQ(loop.deadlettered(), 1u);
}

TEST(StreamLoop, StopDrainsAndCloses) {
  FakeConsumer in;
  FakeProducer out;
  Upper p;
  StreamLoop loop(in, out, p, {.service = "t", .deadletter_topic = "dl"}, nullptr);
  std::atomic<bool> stop{true};
  loop.run(stop);
  EXPECT_TRUE(in.closed);
}

// Issue 11: a ~1 MB message made the monitor re-read its batch forever, because its dead
// letter carried the whole payload, over the broker's limit. A dead letter now carries a
// bounded slice, the payload's length and SHA-256.
TEST(StreamLoop, DeadLettersCarryABoundedSliceWithLengthAndDigest) {
  FakeConsumer in;
  FakeProducer out;
  out.max_message_bytes = 1000000;  // the broker's default limit
  Upper p;
  StreamLoop loop(in, out, p, {.service = "t", .deadletter_topic = "dl"}, nullptr);
  const std::string huge = "!" + std::string(1 << 20, 'z');
  in.push("in", "k", huge);
  in.push("in", "k", "fine");
  loop.run_once();
  ASSERT_EQ(out.on("dl").size(), 1u);
  immunizer::v1::DeadLetter dl;
  ASSERT_TRUE(dl.ParseFromString(out.on("dl")[0].payload));
  EXPECT_EQ(dl.payload(), huge.substr(0, 64 << 10));
  EXPECT_TRUE(dl.payload_truncated());
  EXPECT_EQ(dl.payload_length(), huge.size());
  EXPECT_EQ(dl.payload_sha256(), sha256(huge));
  EXPECT_EQ(dl.payload_sha256().size(), 32u);
  EXPECT_EQ((in.committed[{"in", 0}]), 2);
  EXPECT_EQ(in.rewinds, 0);
}

namespace {
// Echoes payloads to "out" (any size).
class Echo final : public Processor {
 public:
  void process(const Message& m, Producer& out) override { out.produce("out", m.key, m.payload); }
};
}  // namespace

// An output the broker refuses for good is retried max_output_attempts times, then counted
// and skipped; the batch is committed and the loop moves on (it used to re-read it forever).
TEST(StreamLoop, PermanentlyRefusedOutputsAreSkippedAfterBoundedRetries) {
  FakeConsumer in;
  FakeProducer out;
  out.max_message_bytes = 1000;
  Echo p;
  prometheus::Registry reg;
  StreamLoop loop(in, out, p, {.service = "t", .deadletter_topic = "dl", .max_output_attempts = 3},
                  nullptr, &reg);
  in.push("in", "k", "small");
  in.push("in", "k", std::string(5000, 'x'));
  in.push("in", "k", "also small");
  for (int i = 0; i < 2; ++i) {
    loop.run_once();
    EXPECT_TRUE(in.committed.empty()) << "attempt " << i + 1;
  }
  EXPECT_EQ(in.rewinds, 2);
  loop.run_once();
  EXPECT_EQ((in.committed[{"in", 0}]), 3);
  EXPECT_EQ(loop.outputs_skipped(), 1u);
  EXPECT_EQ(loop.run_once(), 0u);  // nothing is read again
  EXPECT_EQ(in.rewinds, 2);
  double skipped = 0;
  for (const auto& fam : reg.Collect())
    if (fam.name == "immunizer_outputs_skipped_total")
      for (const auto& m : fam.metric) skipped += m.counter.value;
  EXPECT_EQ(skipped, 1.0);
  // The small outputs went through (at least once: each attempt produced them again).
  EXPECT_GE(out.on("out").size(), 2u);
}

// Outputs that only wait for the broker (not acknowledged yet) are never skipped.
TEST(StreamLoop, TransientFailuresAreRetriedWithoutLimit) {
  FakeConsumer in;
  FakeProducer out;
  Echo p;
  StreamLoop loop(in, out, p, {.service = "t", .deadletter_topic = "dl", .max_output_attempts = 2},
                  nullptr);
  in.push("in", "k", "a");
  for (int i = 0; i < 5; ++i) {
    out.fail_next_flush = true;
    loop.run_once();
  }
  EXPECT_TRUE(in.committed.empty());
  EXPECT_EQ(loop.outputs_skipped(), 0u);
  loop.run_once();
  EXPECT_EQ((in.committed[{"in", 0}]), 1);
  EXPECT_EQ(out.on("out").size(), 1u);
}

// A rebalance that gives this member a partition calls the stage's hook before the batch
// that may hold the partition's messages; the first assignment does not (the stage
// restored its state before it joined).
TEST(StreamLoop, PartitionsGainedInARebalanceCallTheHookBeforeTheBatch) {
  FakeConsumer in;
  FakeProducer out;
  std::vector<std::string> seen;  // the hook's calls and the processed payloads, in order
  class Recorder final : public Processor {
   public:
    explicit Recorder(std::vector<std::string>& s) : seen_(s) {}
    void process(const Message& m, Producer&) override { seen_.push_back(m.payload); }

   private:
    std::vector<std::string>& seen_;
  } p(seen);
  StreamLoop loop(in, out, p,
                  {.service = "t",
                   .deadletter_topic = "dl",
                   .on_partitions_gained = [&seen] { seen.push_back("restore"); }},
                  nullptr);
  in.gained = 1;  // the first assignment
  in.push("in", "k", "a");
  loop.run_once();
  in.gained = 2;  // a rebalance moved a partition here
  in.push("in", "k", "b", 1);
  loop.run_once();
  in.push("in", "k", "c", 1);
  loop.run_once();
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "restore", "b", "c"}));
}

namespace {
// Keeps one string per key; mark()s a key when it processes a message for it.
class KeyState final : public SnapshottingProcessor {
 public:
  explicit KeyState(const Clock& c) : SnapshottingProcessor({"t", 1}, "models", 60'000, c) {}
  void process(const Message& m, Producer&) override {
    state[m.key] = m.payload;
    mark(m.key);
  }
  std::map<std::string, std::string> state;

 protected:
  std::optional<std::pair<std::string, uint64_t>> state_of(const std::string& k) override {
    return std::make_pair(state[k], uint64_t{1});
  }
  void restore_key(const std::string& k, const std::string& s) override { state[k] = s; }
};

immunizer::v1::ModelSnapshot snapshot(const std::string& key, const std::string& state,
                                      int64_t taken) {
  immunizer::v1::ModelSnapshot s;
  s.set_model_key(key);
  s.set_kind("t");
  s.set_format_version(1);
  s.set_state(state);
  s.set_taken_unix_nanos(taken);
  return s;
}
}  // namespace

// After a rebalance the stage restores the snapshots again: keys another member held take
// the snapshot, a key this member changed after the snapshot was taken keeps its own state.
TEST(SnapshottingProcessor, ARestoreKeepsWhatThisMemberChangedSinceTheSnapshot) {
  ManualClock clock;
  KeyState p(clock);
  FakeProducer out;
  const int64_t before = clock.now_unix_nanos();
  clock.advance(std::chrono::seconds(1));
  Message m;
  m.key = "mine";
  m.payload = "live";
  p.process(m, out);
  clock.advance(std::chrono::seconds(1));
  std::map<std::string, immunizer::v1::ModelSnapshot> snaps{
      {"mine", snapshot("mine", "older", before)},
      {"moved", snapshot("moved", "from the other member", before)}};
  EXPECT_EQ(p.restore(snaps), 1u);
  EXPECT_EQ(p.state["mine"], "live");
  EXPECT_EQ(p.state["moved"], "from the other member");
  // A snapshot taken after this member's last change (the other member had the key later).
  snaps["mine"] = snapshot("mine", "newer", clock.now_unix_nanos());
  EXPECT_EQ(p.restore(snaps), 2u);
  EXPECT_EQ(p.state["mine"], "newer");
}
