#include "immunizer/common/stream_loop.hpp"

#include <gtest/gtest.h>

#include "immunizer/common/fake_kafka.hpp"
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
