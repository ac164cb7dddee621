#include "immunizer/monitor/service.hpp"

#include <gtest/gtest.h>

#include "immunizer/common/fake_kafka.hpp"
#include "immunizer/v1/call_records.hpp"

using namespace immunizer;

namespace {
v1::CallRecord record(uint64_t seq, const std::string& q) {
  v1::CallRecord r;
  r.mutable_id()->set_app("shop");
  r.mutable_id()->set_instance("i1");
  r.mutable_id()->set_seq(seq);
  r.set_timestamp_unix_nanos(1'700'000'000'000'000'000 + static_cast<int64_t>(seq) * 1'000'000);
  r.set_call("/tienda1/publico/anadir.jsp");
  r.set_context("http.request");
  r.mutable_principal()->set_session("S" + std::to_string(seq % 7));
  auto* a = r.add_arguments();
  a->set_name("cantidad");
  a->mutable_value()->set_string_value(q);
  r.set_duration_nanos(1000);
  return r;
}

struct Fixture {
  common::ManualClock clock;
  prometheus::Registry reg;
  common::Topics topics = common::Topics::with_prefix("t.");
  monitor::MonitorProcessor proc{monitor::MonitorConfig{}, topics, clock, reg};
  common::FakeConsumer in;
  common::FakeProducer out;
  common::StreamLoop loop{in, out, proc, {.service = "monitor", .deadletter_topic = topics.deadletter}, nullptr};
};
}  // namespace

TEST(MonitorProcessor, OneVectorPerRecordKeyedByModelKey) {
  Fixture f;
  for (uint64_t i = 0; i < 50; ++i) f.in.push(f.topics.calls, "k", record(i, std::to_string(i % 9 + 1)).SerializeAsString());
  f.loop.run_once();
  auto vecs = f.out.on(f.topics.features);
  ASSERT_EQ(vecs.size(), 50u);
  EXPECT_EQ(vecs[0].key, "shop|/tienda1/publico/anadir.jsp|http.request");
  v1::FeatureVector v;
  ASSERT_TRUE(v.ParseFromString(vecs.back().payload));
  EXPECT_EQ(v.record_id().seq(), 49u);
  EXPECT_EQ(v.values_size(), v.schema().names_size());
  EXPECT_GT(v.values_size(), 0);
}

// What the sensor sends by default: several records of one key per message.
TEST(MonitorProcessor, BatchesGiveOneVectorPerRecordAndABadRecordDeadLettersItsBatch) {
  Fixture f;
  v1::CallRecordBatch b;
  b.set_batch_format(1);
  for (uint64_t i = 0; i < 20; ++i) *b.add_records() = record(i, std::to_string(i % 9 + 1));
  std::string payload = b.SerializeAsString();
  ASSERT_TRUE(v1::is_call_record_batch(payload));  // the marker field is written first
  f.in.push(f.topics.calls, "k", payload);
  f.loop.run_once();
  auto vecs = f.out.on(f.topics.features);
  ASSERT_EQ(vecs.size(), 20u);
  v1::FeatureVector v;
  ASSERT_TRUE(v.ParseFromString(vecs.back().payload));
  EXPECT_EQ(v.record_id().seq(), 19u);
  EXPECT_TRUE(f.out.on(f.topics.deadletter).empty());

  // One unusable record (no app): the others still become vectors, the batch is kept.
  v1::CallRecordBatch mixed;
  mixed.set_batch_format(1);
  *mixed.add_records() = record(20, "3");
  *mixed.add_records() = v1::CallRecord();
  *mixed.add_records() = record(21, "4");
  f.in.push(f.topics.calls, "k", mixed.SerializeAsString());
  f.loop.run_once();
  EXPECT_EQ(f.out.on(f.topics.features).size(), 22u);
  ASSERT_EQ(f.out.on(f.topics.deadletter).size(), 1u);

  // An unknown batch format is refused as a whole.
  mixed.set_batch_format(2);
  f.in.push(f.topics.calls, "k", mixed.SerializeAsString());
  f.loop.run_once();
  EXPECT_EQ(f.out.on(f.topics.features).size(), 22u);
  EXPECT_EQ(f.out.on(f.topics.deadletter).size(), 2u);
}

TEST(MonitorProcessor, CallsDeniedByTheEffectorAreNeitherScoredNorLearned) {
  Fixture f;
  auto r = record(1, "5");
  (*r.mutable_labels())["immunizer.denied"] = "effector";
  f.in.push(f.topics.calls, "k", r.SerializeAsString());
  f.loop.run_once();
  EXPECT_TRUE(f.out.on(f.topics.features).empty());
  EXPECT_TRUE(f.out.on(f.topics.deadletter).empty());
  EXPECT_TRUE(f.proc.extractor().model_keys().empty());
}

TEST(MonitorProcessor, GarbageIsDeadLetteredAndStateSurvivesRestart) {
  Fixture f;
  f.in.push(f.topics.calls, "k", "\x01\x02garbage");
  f.in.push(f.topics.calls, "k", v1::CallRecord().SerializeAsString());  // no app, no call
  f.loop.run_once();
  EXPECT_EQ(f.out.on(f.topics.deadletter).size(), 2u);
  for (uint64_t i = 0; i < 300; ++i) f.in.push(f.topics.calls, "k", record(i, std::to_string(i % 9 + 1)).SerializeAsString());
  while (f.loop.run_once() > 0) {
  }
  f.proc.drain(f.out);
  f.out.flush({});
  auto snaps = f.out.on(f.topics.models);
  ASSERT_EQ(snaps.size(), 1u);
  v1::ModelSnapshot s;
  ASSERT_TRUE(s.ParseFromString(snaps[0].payload));
  // A restarted monitor restored from the snapshot produces the same vector as one that never stopped.
  Fixture g;
  ASSERT_EQ(g.proc.restore({{s.model_key(), s}}), 1u);
  const auto next = record(300, "' OR 1=1 --").SerializeAsString();
  f.in.push(f.topics.calls, "k", next);
  g.in.push(g.topics.calls, "k", next);
  f.loop.run_once();
  g.loop.run_once();
  v1::FeatureVector vf, vg;
  ASSERT_TRUE(vf.ParseFromString(f.out.on(f.topics.features).back().payload));
  ASSERT_TRUE(vg.ParseFromString(g.out.on(g.topics.features).back().payload));
  ASSERT_EQ(vf.values_size(), vg.values_size());
  for (int i = 0; i < vf.values_size(); ++i) EXPECT_DOUBLE_EQ(vf.values(i), vg.values(i)) << vf.schema().names(i);
}

TEST(MonitorConfig, ReadsEveryKeyAndRejectsBadValuesByName) {
  using common::Config;
  const auto m = monitor::MonitorConfig::from_config(Config::from_map({{"monitor.outlier_novelty", "5.5"},
                                                                       {"monitor.outlier_learn_every", "64"},
                                                                       {"monitor.principal_features", "false"},
                                                                       {"monitor.max_paths_per_model", "12"}}));
  EXPECT_DOUBLE_EQ(m.features.outlier_novelty, 5.5);
  EXPECT_EQ(m.features.outlier_learn_every, 64u);
  EXPECT_FALSE(m.features.principal_features);
  EXPECT_EQ(m.features.max_paths_per_model, 12u);
  for (const auto& [key, bad] : std::vector<std::pair<std::string, std::string>>{
           {"monitor.outlier_novelty", "0"}, {"monitor.outlier_learn_every", "0"},
           {"monitor.max_paths_per_model", "x"}, {"monitor.trigram_sketch_depth", "9"}}) {
    try {
      monitor::MonitorConfig::from_config(Config::from_map({{key, bad}}));
      ADD_FAILURE() << key << "=" << bad << " accepted";
    } catch (const common::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key.substr(key.find('.') + 1)), std::string::npos) << e.what();
    }
  }
}
