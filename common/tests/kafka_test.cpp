// Producer and consumer against the embedded broker on 127.0.0.1.
#include "immunizer/common/kafka.hpp"

#include <gtest/gtest.h>
#include <iostream>
#include <set>

#include "immunizer/common/mock_broker.hpp"

using namespace immunizer::common;
using namespace std::chrono_literals;

namespace {
std::vector<Message> consume_n(Consumer& c, size_t n, std::chrono::seconds limit) {
  std::vector<Message> got;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (got.size() < n && std::chrono::steady_clock::now() < deadline) {
    auto batch = c.poll(n - got.size(), 200ms);
    c.commit(batch);
    got.insert(got.end(), batch.begin(), batch.end());
  }
  return got;
}
}  // namespace

TEST(Kafka, ProduceConsumeCommitAndResume) {
  MockBroker broker(1, {{"t.calls", 2}});
  KafkaSettings s;
  s.bootstrap = broker.bootstrap();
  prometheus::Registry reg;
  KafkaMetrics metrics(reg, "test");
  auto p = make_kafka_producer(s, "p", &metrics);
  for (int i = 0; i < 20; ++i) p->produce("t.calls", "k" + std::to_string(i % 3), "v" + std::to_string(i));
  ASSERT_TRUE(p->flush(10s).ok());
  std::set<std::string> seen;
  {
    auto c = make_kafka_consumer(s, "g", {"t.calls"}, &metrics);
    auto got = consume_n(*c, 10, 30s);
    ASSERT_GE(got.size(), 10u);
    for (const auto& m : got) seen.insert(m.payload);
    c->close();
  }
  // A new member of the same group continues after the committed offsets.
  for (int i = 20; i < 25; ++i) p->produce("t.calls", "k", "v" + std::to_string(i));
  ASSERT_TRUE(p->flush(10s).ok());
  auto c2 = make_kafka_consumer(s, "g", {"t.calls"}, &metrics);
  auto t0 = std::chrono::steady_clock::now();
  auto rest = consume_n(*c2, 5, 40s);
  std::cerr << "second member: " << rest.size() << " in " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  // Committed messages are not delivered again to the group.
  ASSERT_EQ(rest.size(), 5u);
  for (const auto& m : rest) EXPECT_FALSE(seen.count(m.payload)) << m.payload << " delivered twice";
}

#include "immunizer/common/snapshots.hpp"

TEST(Snapshots, LatestPerKeyOfOneKind) {
  MockBroker broker(1, {{"t.models", 2}});
  KafkaSettings s;
  s.bootstrap = broker.bootstrap();
  auto p = make_kafka_producer(s, "p", nullptr);
  auto put = [&](const std::string& kind, const std::string& key, const std::string& state) {
    immunizer::v1::ModelSnapshot snap;
    snap.set_kind(kind);
    snap.set_model_key(key);
    snap.set_state(state);
    p->produce("t.models", snapshot_key(kind, key), snap.SerializeAsString());
  };
  put("analyze", "a|x|", "old");
  put("monitor", "a|x|", "monitor-state");
  put("analyze", "a|y|", "y1");
  put("analyze", "a|x|", "new");
  ASSERT_TRUE(p->flush(10s).ok());
  auto got = read_snapshots(s, "t.models", "analyze", 20s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got["a|x|"].state(), "new");
  EXPECT_EQ(got["a|y|"].state(), "y1");
  EXPECT_TRUE(read_snapshots(s, "t.absent", "analyze", 3s).empty());
}
