#include "immunizer/analyze/processor.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <iostream>
#include <limits>
#include <random>
#include <set>

#include "immunizer/common/compress.hpp"
#include "immunizer/common/restore_timeout.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "immunizer/testing/manual_clock.hpp"
#include "immunizer/v1/feature_batches.hpp"

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

namespace {
// The monitor's format: vectors of one key in one message, the schema once.
v1::FeatureVectorBatch batch_of(const std::vector<v1::FeatureVector>& vs) {
  v1::FeatureVectorBatch b;
  b.set_batch_format(1);
  b.set_model_key(vs.at(0).model_key());
  *b.mutable_schema() = vs[0].schema();
  for (const auto& v : vs) {
    auto* r = b.add_rows();
    *r->mutable_record_id() = v.record_id();
    *r->mutable_values() = v.values();
    *r->mutable_principal() = v.principal();
    r->set_call(v.call());
    r->set_timestamp_unix_nanos(v.timestamp_unix_nanos());
    *r->mutable_labels() = v.labels();
  }
  return b;
}
}  // namespace

// Issue 13: vectors arrive batched per model key with the schema once; each row is scored as
// a single FeatureVector would be, and a row that cannot be used is dead-lettered alone.
TEST(AnalyzeProcessor, BatchedVectorsScoreLikeSingleOnesAndABadRowIsIsolated) {
  Fixture single, batched;
  std::mt19937 rng(3);
  std::normal_distribution<double> g(0, 1);
  std::vector<v1::FeatureVector> all;
  for (int i = 0; i < 600; ++i) all.push_back(vec(i, g(rng), g(rng)));
  all.push_back(vec(600, 40.0, 40.0, "attacker", 25.0));
  for (const auto& v : all) single.in.push(single.topics.features, "k", v.SerializeAsString());
  for (size_t i = 0; i < all.size(); i += 50) {
    std::vector<v1::FeatureVector> part(
        all.begin() + static_cast<std::ptrdiff_t>(i),
        all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + 50)));
    const std::string payload = batch_of(part).SerializeAsString();
    ASSERT_TRUE(v1::is_feature_vector_batch(payload));
    batched.in.push(batched.topics.features, part[0].model_key(), payload);
  }
  while (single.loop.run_once() > 0) {
  }
  while (batched.loop.run_once() > 0) {
  }
  const auto a = single.out.on(single.topics.scores), b = batched.out.on(batched.topics.scores);
  ASSERT_EQ(a.size(), all.size());
  ASSERT_EQ(b.size(), all.size());
  for (size_t i = 0; i < a.size(); ++i) {
    v1::Score sa, sb;
    ASSERT_TRUE(sa.ParseFromString(a[i].payload));
    ASSERT_TRUE(sb.ParseFromString(b[i].payload));
    EXPECT_EQ(sa.record_id().seq(), sb.record_id().seq());
    EXPECT_DOUBLE_EQ(sa.combined_score(), sb.combined_score()) << i;
    EXPECT_EQ(sb.labels().at("trace"), std::to_string(sb.record_id().seq()));
  }
  ASSERT_FALSE(batched.out.on(batched.topics.alarms).empty());
  v1::Alarm alarm;
  ASSERT_TRUE(alarm.ParseFromString(batched.out.on(batched.topics.alarms).back().payload));
  EXPECT_EQ(alarm.record_id().seq(), 600u);
  EXPECT_FALSE(alarm.top_features(0).feature().empty());  // names from the cached schema
  EXPECT_TRUE(batched.out.on(batched.topics.deadletter).empty());

  // A batch with a row of the wrong width and a row that does not decode: both are
  // dead-lettered alone, with their own bytes; the three good rows are scored.
  auto mixed = batch_of({vec(700, 0.1, 0.2), vec(701, 0.3, 0.1), vec(702, 0.2, 0.2)});
  mixed.mutable_rows(1)->add_values(1.0);  // 9 values, 8 names
  std::string payload = mixed.SerializeAsString();
  auto add_row = [&](const std::string& bytes) {  // field 4 (rows), LEN, varint length
    payload += '\x22';
    for (size_t n = bytes.size();; n >>= 7) {
      payload += static_cast<char>((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
      if (n <= 0x7f) break;
    }
    payload += bytes;
  };
  const std::string broken("\x0a\x7f\x01", 3);  // a RecordId claiming 127 bytes, 1 present
  add_row(broken);
  add_row(batch_of({vec(703, 0.0, 0.1)}).rows(0).SerializeAsString());
  batched.in.push(batched.topics.features, "k", payload);
  batched.loop.run_once();
  const auto dls = batched.out.on(batched.topics.deadletter);
  ASSERT_EQ(dls.size(), 2u);
  std::set<std::string> dead;
  for (const auto& d : dls) {
    v1::DeadLetter dl;
    ASSERT_TRUE(dl.ParseFromString(d.payload));
    dead.insert(dl.payload());
    EXPECT_LT(dl.payload_length(), 200u) << "a row, not the batch";
  }
  EXPECT_TRUE(dead.count(broken));
  EXPECT_TRUE(dead.count(mixed.rows(1).SerializeAsString()));
  const auto scores = batched.out.on(batched.topics.scores);
  ASSERT_EQ(scores.size(), all.size() + 3);
  std::set<uint64_t> seqs;
  for (size_t i = all.size(); i < scores.size(); ++i) {
    v1::Score s;
    ASSERT_TRUE(s.ParseFromString(scores[i].payload));
    seqs.insert(s.record_id().seq());
  }
  EXPECT_EQ(seqs, (std::set<uint64_t>{700, 702, 703}));

  // A row with a NaN or an infinity is refused by the model (dead-lettered alone); the others
  // are scored, and the key's model goes on (before, a NaN among the grace period's vectors
  // hung analyze in its first fit).
  auto non_finite = batch_of({vec(710, 0.1, 0.2), vec(711, 0.3, 0.1), vec(712, 0.2, 0.2)});
  non_finite.mutable_rows(0)->set_values(3, std::numeric_limits<double>::quiet_NaN());
  non_finite.mutable_rows(2)->set_values(5, -std::numeric_limits<double>::infinity());
  batched.in.push(batched.topics.features, "k", non_finite.SerializeAsString());
  batched.loop.run_once();
  const auto dls2 = batched.out.on(batched.topics.deadletter);
  ASSERT_EQ(dls2.size(), 4u);
  for (size_t i = 2; i < 4; ++i) {
    v1::DeadLetter dl;
    ASSERT_TRUE(dl.ParseFromString(dls2[i].payload));
    EXPECT_EQ(dl.reason().rfind("model_rejected_vector: ", 0), 0u) << dl.reason();
    EXPECT_NE(dl.reason().find("must be finite"), std::string::npos) << dl.reason();
  }
  ASSERT_EQ(batched.out.on(batched.topics.scores).size(), all.size() + 4);
  v1::Score s711;
  ASSERT_TRUE(s711.ParseFromString(batched.out.on(batched.topics.scores).back().payload));
  EXPECT_EQ(s711.record_id().seq(), 711u);

  // An unknown batch format, or a schema that does not decode, loses the whole message.
  auto other = batch_of({vec(800, 0.1, 0.1)});
  other.set_batch_format(2);
  batched.in.push(batched.topics.features, "k", other.SerializeAsString());
  batched.loop.run_once();
  EXPECT_EQ(batched.out.on(batched.topics.deadletter).size(), 5u);
  EXPECT_EQ(batched.out.on(batched.topics.scores).size(), all.size() + 4);
}

TEST(AnalyzeConfig, RejectsBadValues) {
  EXPECT_THROW(
      analyze::AnalyzeConfig::from_config(common::Config::from_map({{"analyze.detector", "lof"}})),
      common::ConfigError);
  EXPECT_THROW(
      analyze::AnalyzeConfig::from_config(common::Config::from_map({{"analyze.risk", "2"}})),
      common::ConfigError);
}

// The stage setups of analyze and monitor take their restore wait from this helper.
TEST(AnalyzeConfig, RestoreSnapshotsKeyGivesTheRestoreWait) {
  using common::Config;
  using common::snapshot_restore_timeout;
  EXPECT_EQ(snapshot_restore_timeout(Config::from_map({}), "analyze"), std::chrono::seconds(30));
  EXPECT_EQ(snapshot_restore_timeout(Config::from_map({{"analyze.restore_snapshots", "false"}}),
                                     "analyze"),
            std::chrono::milliseconds(0));
  // Another stage's key is not this stage's.
  EXPECT_EQ(snapshot_restore_timeout(Config::from_map({{"monitor.restore_snapshots", "false"}}),
                                     "analyze"),
            std::chrono::seconds(30));
  EXPECT_THROW(snapshot_restore_timeout(Config::from_map({{"monitor.restore_snapshots", "maybe"}}),
                                        "monitor"),
               common::ConfigError);
}

// Format 3 writes ModelKeyState::snapshot() as it is (deflated once, inside its frame); format
// 2 (before) wrapped those same bytes in a second zlib stream, exactly zlib_compress(state).
// Both restore to the same model; an old-format snapshot that does not inflate is skipped.
// (Last in the file: vec()'s shared noise would otherwise shift the data of later tests.)
TEST(AnalyzeProcessor, SnapshotsAreDeflatedOnceAndTheFormerFormatRestores) {
  Fixture f;
  f.feed_normal(300, 10);
  f.proc.drain(f.out);
  f.out.flush({});
  const auto snaps = f.out.on(f.topics.models);
  ASSERT_EQ(snaps.size(), 1u);
  v1::ModelSnapshot s;
  ASSERT_TRUE(s.ParseFromString(snaps[0].payload));
  EXPECT_EQ(s.format_version(), 3u);
  EXPECT_EQ(s.state().substr(0, 4), "IMZS");  // the frame's magic, not a zlib header

  v1::ModelSnapshot old = s;
  old.set_format_version(2);
  old.set_state(common::zlib_compress(s.state()));
  Fixture g;
  ASSERT_EQ(g.proc.restore({{old.model_key(), old}}), 1u);
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

  // Old and new formats side by side; a format-2 state that is not zlib is skipped, as is
  // one of an unknown format.
  v1::ModelSnapshot broken = old, unknown = s;
  broken.set_model_key("other|k|");
  broken.set_state("not zlib");
  unknown.set_model_key("third|k|");
  unknown.set_format_version(7);
  Fixture h;
  EXPECT_EQ(h.proc.restore(
                {{s.model_key(), s}, {broken.model_key(), broken}, {unknown.model_key(), unknown}}),
            1u);
  EXPECT_EQ(h.proc.models().size(), 1u);
}
