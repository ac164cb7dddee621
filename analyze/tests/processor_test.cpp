#include "immunizer/analyze/processor.hpp"

#include <gtest/gtest.h>

#include <iostream>
#include <random>

#include "immunizer/common/fake_kafka.hpp"

using namespace immunizer;

namespace {
// Eight features: a and b as given, six more N(0,1) noise unless `far` puts them far out.
v1::FeatureVector vec(uint64_t seq, double a, double b, const std::string& session = "S",
                      double far = 0) {
  static std::mt19937 noise(11);
  std::normal_distribution<double> g(0, 1);
  v1::FeatureVector v;
  v.set_model_key("shop|http.request|");
  v.mutable_record_id()->set_app("shop");
  v.mutable_record_id()->set_seq(seq);
  v.mutable_schema()->set_version(1);
  v.mutable_schema()->add_names("arg:q:length_dev");
  v.mutable_schema()->add_names("arg:q:charclass_divergence");
  v.add_values(a);
  v.add_values(b);
  for (int i = 0; i < 6; ++i) {
    v.mutable_schema()->add_names("f" + std::to_string(i));
    v.add_values(far != 0 ? far : g(noise));
  }
  v.mutable_principal()->set_session(session);
  v.set_call("http.request");
  v.set_timestamp_unix_nanos(1);
  (*v.mutable_labels())["trace"] = std::to_string(seq);
  return v;
}

struct Fixture {
  common::ManualClock clock;
  prometheus::Registry reg;
  common::Topics topics = common::Topics::with_prefix("t.");
  analyze::AnalyzeConfig cfg = [] {
    analyze::AnalyzeConfig c;
    c.detector.grace_records = 200;
    c.detector.detector = analyze::DetectorKind::kIForest;
    return c;
  }();
  analyze::AnalyzeProcessor proc{cfg, topics, clock, reg};
  common::FakeConsumer in;
  common::FakeProducer out;
  common::StreamLoop loop{
      in, out, proc, {.service = "analyze", .deadletter_topic = topics.deadletter}, nullptr};
  void feed_normal(int n, uint64_t seq0) {
    std::mt19937 rng(7);
    std::normal_distribution<double> g(0, 1);
    for (int i = 0; i < n; ++i)
      in.push(topics.features, "k", vec(seq0 + i, g(rng), g(rng)).SerializeAsString());
    while (loop.run_once() > 0) {
    }
  }
};
}  // namespace

TEST(AnalyzeProcessor, LearnsThenAlarmsOnOutlierWithExplanation) {
  Fixture f;
  f.feed_normal(400, 0);
  EXPECT_EQ(f.out.on(f.topics.scores).size(), 400u);
  // 200 vectors scored after a 200-vector grace at risk 1e-3: false alarms stay rare.
  const size_t false_alarms = f.out.on(f.topics.alarms).size();
  EXPECT_LE(false_alarms, 2u);
  f.in.push(f.topics.features, "k", vec(1000, 40.0, 40.0, "attacker", 25.0).SerializeAsString());
  f.loop.run_once();
  auto alarms = f.out.on(f.topics.alarms);
  ASSERT_EQ(alarms.size(), false_alarms + 1);
  EXPECT_EQ(alarms.back().key, "attacker");
  v1::Alarm a;
  ASSERT_TRUE(a.ParseFromString(alarms.back().payload));
  EXPECT_EQ(a.record_id().seq(), 1000u);
  EXPECT_GT(a.combined_score(), a.threshold());
  ASSERT_FALSE(a.top_features().empty());
  ASSERT_GE(a.top_features_size(), 2);
  EXPECT_GE(a.top_features(0).value(), 25.0);
  EXPECT_EQ(a.labels().at("trace"), "1000");
  ASSERT_EQ(a.values_size(), 8) << "the alarm carries its vector for feedback";
  EXPECT_DOUBLE_EQ(a.values(0), 40.0);
  // The same vector read again (a replay after a crash) raises the alarm under the same id,
  // so downstream can drop it; another record gets another id.
  f.in.push(f.topics.features, "k", vec(1000, 40.0, 40.0, "attacker", 25.0).SerializeAsString());
  f.in.push(f.topics.features, "k", vec(1001, 40.0, 40.0, "attacker", 25.0).SerializeAsString());
  f.loop.run_once();
  alarms = f.out.on(f.topics.alarms);
  ASSERT_EQ(alarms.size(), false_alarms + 3);
  v1::Alarm again, other;
  ASSERT_TRUE(again.ParseFromString(alarms[alarms.size() - 2].payload));
  ASSERT_TRUE(other.ParseFromString(alarms.back().payload));
  EXPECT_EQ(again.id(), a.id());
  EXPECT_NE(other.id(), a.id());
  EXPECT_EQ(a.id().size(), 32u);

  // An analyst's "false positive" on that alarm reaches the model (as the dashboard sends it).
  v1::Feedback fb;
  fb.set_verdict(v1::FEEDBACK_FALSE_POSITIVE);
  fb.set_model_key(a.model_key());
  *fb.mutable_values() = a.values();
  f.in.push(f.topics.feedback, a.model_key(), fb.SerializeAsString());
  f.loop.run_once();
  EXPECT_TRUE(f.out.on(f.topics.deadletter).empty());
  ASSERT_EQ(a.scores_size(), 1);
  EXPECT_EQ(a.scores(0).detector(), "iforest");
}

TEST(AnalyzeProcessor, InvalidVectorsAreDeadLetteredAndSnapshotsRestore) {
  Fixture f;
  auto bad = vec(1, 0, 0);
  bad.add_values(3);  // 9 values, 8 names
  f.in.push(f.topics.features, "k", bad.SerializeAsString());
  f.in.push(f.topics.features, "k", "garbage\xff");
  f.loop.run_once();
  EXPECT_EQ(f.out.on(f.topics.deadletter).size(), 2u);
  f.feed_normal(300, 10);
  f.proc.drain(f.out);
  f.out.flush({});
  auto snaps = f.out.on(f.topics.models);
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].key, "analyze|shop|http.request|");
  v1::ModelSnapshot s;
  ASSERT_TRUE(s.ParseFromString(snaps[0].payload));
  // A fresh instance restored from the snapshot scores exactly as the original.
  Fixture g;
  ASSERT_EQ(g.proc.restore({{s.model_key(), s}}), 1u);
  auto probe = vec(5000, 0.5, 9.0);
  f.in.push(f.topics.features, "k", probe.SerializeAsString());
  g.in.push(g.topics.features, "k", probe.SerializeAsString());
  f.loop.run_once();
  g.loop.run_once();
  v1::Score sf, sg;
  ASSERT_TRUE(sf.ParseFromString(f.out.on(f.topics.scores).back().payload));
  ASSERT_TRUE(sg.ParseFromString(g.out.on(g.topics.scores).back().payload));
  EXPECT_EQ(sg.model_state(), "ACTIVE");
  EXPECT_DOUBLE_EQ(sf.combined_score(), sg.combined_score());
}

TEST(AnalyzeConfig, RejectsBadValues) {
  EXPECT_THROW(
      analyze::AnalyzeConfig::from_config(common::Config::from_map({{"analyze.detector", "lof"}})),
      common::ConfigError);
  EXPECT_THROW(
      analyze::AnalyzeConfig::from_config(common::Config::from_map({{"analyze.risk", "2"}})),
      common::ConfigError);
}
