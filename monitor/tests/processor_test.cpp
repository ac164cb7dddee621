#include "immunizer/monitor/processor.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>

#include "immunizer/common/stage.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "immunizer/testing/manual_clock.hpp"
#include "immunizer/v1/call_records.hpp"
#include "immunizer/v1/feature_batches.hpp"
#include "immunizer/v1/text.hpp"

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
  common::StreamLoop loop{
      in, out, proc, {.service = "monitor", .deadletter_topic = topics.deadletter}, nullptr};
  // Every vector produced so far, in order, unpacked from the FeatureVectorBatch messages
  // (each message: one model key, its schema once, its key as the Kafka key).
  std::vector<v1::FeatureVector> vectors() const {
    std::vector<v1::FeatureVector> all;
    for (const auto& m : out.on(topics.features)) {
      v1::FeatureVectorBatch b;
      std::vector<v1::UndecodableRecord> bad;
      std::string reason;
      EXPECT_TRUE(v1::is_feature_vector_batch(m.payload));
      EXPECT_TRUE(v1::parse_feature_batch(m.payload, &b, &bad, &reason)) << reason;
      EXPECT_TRUE(bad.empty());
      EXPECT_EQ(m.key, b.model_key());
      EXPECT_GT(b.rows_size(), 0);
      for (const auto& row : b.rows()) {
        v1::FeatureVector v;
        v.set_model_key(b.model_key());
        *v.mutable_schema() = b.schema();
        *v.mutable_record_id() = row.record_id();
        *v.mutable_values() = row.values();
        *v.mutable_principal() = row.principal();
        v.set_call(row.call());
        v.set_timestamp_unix_nanos(row.timestamp_unix_nanos());
        *v.mutable_labels() = row.labels();
        all.push_back(std::move(v));
      }
    }
    return all;
  }
};
}  // namespace

TEST(MonitorProcessor, OneVectorPerRecordKeyedByModelKey) {
  Fixture f;
  for (uint64_t i = 0; i < 50; ++i)
    f.in.push(f.topics.calls, "k", record(i, std::to_string(i % 9 + 1)).SerializeAsString());
  f.loop.run_once();
  const auto msgs = f.out.on(f.topics.features);
  ASSERT_FALSE(msgs.empty());
  EXPECT_EQ(msgs[0].key, "shop|/tienda1/publico/anadir.jsp|http.request");
  const auto vecs = f.vectors();
  ASSERT_EQ(vecs.size(), 50u);
  for (size_t i = 0; i < vecs.size(); ++i) EXPECT_EQ(vecs[i].record_id().seq(), i);
  const auto& v = vecs.back();
  EXPECT_EQ(v.values_size(), v.schema().names_size());
  EXPECT_GT(v.values_size(), 0);
  EXPECT_EQ(v.principal().session(), "S0");  // 49 % 7
}

// Issue 13 / 11: the names travel once per message, not with every vector. One consumed
// batch of one model key becomes one message (a message per schema version while the schema
// still grows, and at most max_vectors_per_message rows each), several keys one message each.
TEST(MonitorProcessor, VectorsOfAKeyShareOneMessageAndTheSchemaTravelsOnce) {
  monitor::MonitorConfig cfg;
  cfg.features.schema_freeze_records = 5;
  cfg.max_vectors_per_message = 40;
  common::ManualClock clock;
  prometheus::Registry reg;
  const auto topics = common::Topics::with_prefix("t.");
  monitor::MonitorProcessor proc{cfg, topics, clock, reg};
  common::FakeConsumer in;
  common::FakeProducer out;
  common::StreamLoop loop{
      in, out, proc, {.service = "monitor", .deadletter_topic = topics.deadletter}, nullptr};
  for (uint64_t i = 0; i < 20; ++i)  // the schema freezes within these
    in.push(topics.calls, "k", record(i, std::to_string(i % 9 + 1)).SerializeAsString());
  loop.run_once();
  for (uint64_t i = 20; i < 120; ++i) {
    auto r = record(i, std::to_string(i % 9 + 1));
    if (i % 2) r.set_call("/tienda1/publico/pagar.jsp");
    in.push(topics.calls, "k", r.SerializeAsString());
  }
  loop.run_once();
  const auto msgs = out.on(topics.features);
  size_t rows = 0, second_round = 0, names_bytes = 0, total_bytes = 0;
  std::map<std::string, size_t> per_key;
  for (size_t i = 0; i < msgs.size(); ++i) {
    v1::FeatureVectorBatch b;
    ASSERT_TRUE(b.ParseFromString(msgs[i].payload));
    rows += static_cast<size_t>(b.rows_size());
    EXPECT_LE(b.rows_size(), 40);
    for (const auto& n : b.schema().names()) names_bytes += n.size();
    total_bytes += msgs[i].payload.size();
    for (const auto& row : b.rows()) {
      EXPECT_EQ(row.values_size(), b.schema().names_size());
      if (row.record_id().seq() >= 20) ++second_round;
    }
    ++per_key[b.model_key()];
  }
  EXPECT_EQ(rows, 120u);
  EXPECT_EQ(second_round, 100u);
  // 50 + 50 rows of two keys at 40 a message: 2 messages each; the first round at most one
  // message per schema version (5 records to freeze).
  ASSERT_EQ(per_key.size(), 2u);
  EXPECT_EQ(per_key["shop|/tienda1/publico/pagar.jsp|http.request"], 2u);
  EXPECT_LE(per_key["shop|/tienda1/publico/anadir.jsp|http.request"], 2u + 6u);
  EXPECT_LT(names_bytes * 4, total_bytes * 3) << "names are not repeated per vector";
}

// The rows are serialised from one reused FeatureRow: each must carry exactly what extract()
// gives for its record (a field left over from the record before would show here), with
// records of two keys interleaved, principals and labels present or not, one batch message.
TEST(MonitorProcessor, RowsCarryWhatExtractGivesForEachRecord) {
  Fixture f;
  monitor::FeatureExtractor reference;
  v1::CallRecordBatch batch;
  batch.set_batch_format(1);
  std::vector<v1::FeatureVector> want;
  for (uint64_t i = 0; i < 300; ++i) {
    auto r = record(i, i % 50 == 7 ? "' OR 1=1 --" : std::to_string(i % 9 + 1));
    if (i % 3 == 0) r.set_call("/tienda1/publico/pagar.jsp");
    if (i % 4 == 0) r.clear_principal();
    if (i % 5 == 0) r.mutable_principal()->set_ip("10.0.0." + std::to_string(i % 11));
    if (i % 6 == 0) {
      auto* l = r.add_labels();
      l->set_key("trace");
      l->set_value(std::to_string(i));
    }
    *batch.add_records() = r;
    v1::FeatureVector v;
    std::string reason;
    ASSERT_TRUE(reference.extract(r, &v, &reason)) << reason;
    want.push_back(std::move(v));
  }
  f.in.push(f.topics.calls, "k", batch.SerializeAsString());
  f.loop.run_once();
  // Each message is what FeatureVectorBatch's own serialiser writes for it (rows are written
  // field by field from the record and the model: same bytes, same order).
  for (const auto& m : f.out.on(f.topics.features)) {
    v1::FeatureVectorBatch b;
    ASSERT_TRUE(b.ParseFromString(m.payload));
    EXPECT_EQ(b.SerializeAsString(), m.payload);
  }
  auto got = f.vectors();
  ASSERT_EQ(got.size(), want.size());
  // Messages are per key: order both by record id.
  auto by_seq = [](const v1::FeatureVector& a, const v1::FeatureVector& b) {
    return a.record_id().seq() < b.record_id().seq();
  };
  std::sort(got.begin(), got.end(), by_seq);
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got[i].SerializeAsString(), want[i].SerializeAsString());
  }
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
  auto vecs = f.vectors();
  ASSERT_EQ(vecs.size(), 20u);
  EXPECT_EQ(vecs.back().record_id().seq(), 19u);
  EXPECT_TRUE(f.out.on(f.topics.deadletter).empty());

  // One unusable record (no app): the others still become vectors, the batch is kept.
  v1::CallRecordBatch mixed;
  mixed.set_batch_format(1);
  *mixed.add_records() = record(20, "3");
  *mixed.add_records() = v1::CallRecord();
  *mixed.add_records() = record(21, "4");
  f.in.push(f.topics.calls, "k", mixed.SerializeAsString());
  f.loop.run_once();
  EXPECT_EQ(f.vectors().size(), 22u);
  ASSERT_EQ(f.out.on(f.topics.deadletter).size(), 1u);

  // An unknown batch format is refused as a whole.
  mixed.set_batch_format(2);
  f.in.push(f.topics.calls, "k", mixed.SerializeAsString());
  f.loop.run_once();
  EXPECT_EQ(f.vectors().size(), 22u);
  EXPECT_EQ(f.out.on(f.topics.deadletter).size(), 2u);
}

TEST(MonitorProcessor, CallsDeniedByTheEffectorAreNeitherScoredNorLearned) {
  Fixture f;
  auto r = record(1, "5");
  {
    auto* l = r.add_labels();
    l->set_key("immunizer.denied");
    l->set_value("effector");
  }
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
  for (uint64_t i = 0; i < 300; ++i)
    f.in.push(f.topics.calls, "k", record(i, std::to_string(i % 9 + 1)).SerializeAsString());
  while (f.loop.run_once() > 0) {
  }
  f.proc.drain(f.out);
  f.out.flush({});
  auto snaps = f.out.on(f.topics.models);
  ASSERT_EQ(snaps.size(), 1u);
  v1::ModelSnapshot s;
  ASSERT_TRUE(s.ParseFromString(snaps[0].payload));
  // A restarted monitor restored from the snapshot produces the same vector as one that never
  // stopped.
  Fixture g;
  ASSERT_EQ(g.proc.restore({{s.model_key(), s}}), 1u);
  const auto next = record(300, "' OR 1=1 --").SerializeAsString();
  f.in.push(f.topics.calls, "k", next);
  g.in.push(g.topics.calls, "k", next);
  f.loop.run_once();
  g.loop.run_once();
  const v1::FeatureVector vf = f.vectors().back(), vg = g.vectors().back();
  ASSERT_EQ(vf.values_size(), vg.values_size());
  for (int i = 0; i < vf.values_size(); ++i)
    EXPECT_DOUBLE_EQ(vf.values(i), vg.values(i)) << vf.schema().names(i);
}

TEST(MonitorConfig, ReadsEveryKeyAndRejectsBadValuesByName) {
  using common::Config;
  const auto m = monitor::MonitorConfig::from_config(
      Config::from_map({{"monitor.outlier_novelty", "5.5"},
                        {"monitor.outlier_learn_every", "64"},
                        {"monitor.principal_features", "false"},
                        {"monitor.max_paths_per_model", "12"}}));
  EXPECT_DOUBLE_EQ(m.features.outlier_novelty, 5.5);
  EXPECT_EQ(m.features.outlier_learn_every, 64u);
  EXPECT_FALSE(m.features.principal_features);
  EXPECT_EQ(m.features.max_paths_per_model, 12u);
  for (const auto& [key, bad] :
       std::vector<std::pair<std::string, std::string>>{{"monitor.outlier_novelty", "0"},
                                                        {"monitor.outlier_learn_every", "0"},
                                                        {"monitor.max_paths_per_model", "x"},
                                                        {"monitor.trigram_sketch_depth", "9"}}) {
    try {
      monitor::MonitorConfig::from_config(Config::from_map({{key, bad}}));
      ADD_FAILURE() << key << "=" << bad << " accepted";
    } catch (const common::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key.substr(key.find('.') + 1)), std::string::npos)
          << e.what();
    }
  }
}

// Issue 13: batch size, poll timeout, linger and fetch wait are per-service keys, checked.
TEST(StreamTuning, ReadsTheServicesOwnKeysAndRejectsBadValuesByName) {
  using common::Config;
  const auto t =
      common::StreamTuning::from_config(Config::from_map({{"monitor.max_batch", "2000"},
                                                          {"monitor.poll_timeout_ms", "5"},
                                                          {"monitor.linger_ms", "0"},
                                                          {"monitor.fetch_wait_max_ms", "50"},
                                                          {"analyze.max_batch", "7"}}),
                                        "monitor");
  EXPECT_EQ(t.max_batch, 2000u);
  EXPECT_EQ(t.poll_timeout_ms, 5);
  EXPECT_EQ(t.linger_ms, 0);
  EXPECT_EQ(t.fetch_wait_max_ms, 50);
  const auto d = common::StreamTuning::from_config(Config::from_map({}), "analyze");
  EXPECT_EQ(d.max_batch, 500u);
  EXPECT_EQ(d.linger_ms, 5);
  for (const auto& [key, bad] :
       std::vector<std::pair<std::string, std::string>>{{"monitor.max_batch", "0"},
                                                        {"monitor.max_batch", "0x10"},
                                                        {"monitor.poll_timeout_ms", "-1"},
                                                        {"monitor.linger_ms", "99999"},
                                                        {"monitor.fetch_wait_max_ms", " 5"}}) {
    try {
      common::StreamTuning::from_config(Config::from_map({{key, bad}}), "monitor");
      ADD_FAILURE() << key << "=" << bad << " accepted";
    } catch (const common::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

namespace {
// Index of a feature by name in a vector's schema, or -1.
int feature_index(const v1::FeatureVector& v, const std::string& name) {
  for (int i = 0; i < v.schema().names_size(); ++i)
    if (v.schema().names(i) == name) return i;
  return -1;
}
}  // namespace

// Issue 11: a request with an attack in its query and a session cookie `JSESSIONID=\xff...`
// used to lose its whole batch (proto3 strings reject invalid UTF-8). Hostile bytes anywhere
// in a record are recorded and scored; the others of its batch are untouched.
TEST(MonitorProcessor, InvalidUtf8AnywhereIsScoredNotDeadLettered) {
  Fixture f;
  v1::CallRecordBatch b;
  b.set_batch_format(1);
  for (uint64_t i = 0; i < 5; ++i) *b.add_records() = record(i, std::to_string(i + 1));
  auto hostile = record(5, "1' OR '1'='1 \xc0\xaf");
  hostile.mutable_principal()->set_session("\xff\xfe\xfd-session");
  hostile.mutable_principal()->set_ip("\xc0\xaf");
  hostile.mutable_arguments(0)->set_name("cant\xe9idad");
  auto* l = hostile.add_labels();
  l->set_key("trace");
  l->set_value("t\xff");
  *b.add_records() = hostile;
  for (uint64_t i = 6; i < 10; ++i) *b.add_records() = record(i, std::to_string(i + 1));
  f.in.push(f.topics.calls, "k", b.SerializeAsString());
  f.loop.run_once();
  EXPECT_TRUE(f.out.on(f.topics.deadletter).empty());
  const auto vecs = f.vectors();  // downstream parsers accept it
  ASSERT_EQ(vecs.size(), 10u);
  const auto& v = vecs[5];
  EXPECT_EQ(v.record_id().seq(), 5u);
  EXPECT_EQ(v.principal().session(), "\xff\xfe\xfd-session");  // carried as it was
  EXPECT_EQ(v.labels().at("trace"), "t\\xff");                 // escaped into a string field
  const int inv = feature_index(v, "encoding:invalid_utf8");
  ASSERT_GE(inv, 0);
  // The value, the argument name, the session, the address and the label.
  EXPECT_EQ(v.values(inv), 5.0);
  for (const auto& name : v.schema().names()) EXPECT_TRUE(v1::is_valid_utf8(name)) << name;
  const auto& normal = vecs[4];
  EXPECT_EQ(normal.values(feature_index(normal, "encoding:invalid_utf8")), 0.0);
}

// A record of a batch that cannot be decoded at all is dead-lettered alone: its own bytes,
// not the batch; the other records become vectors.
TEST(MonitorProcessor, AnUndecodableRecordIsDeadLetteredAloneAndItsBatchProcessed) {
  Fixture f;
  std::string payload("\x08\x01", 2);
  auto add = [&](const std::string& rec) {
    payload.push_back('\x12');  // field 2, LEN
    payload.push_back(static_cast<char>(rec.size()));
    payload.append(rec);
  };
  add(record(1, "1").SerializeAsString());
  const std::string broken("\x0a\x7f\x01", 3);  // RecordId claiming 127 bytes, 1 present
  add(broken);
  add(record(2, "2").SerializeAsString());
  ASSERT_LT(payload.size(), 250u);
  f.in.push(f.topics.calls, "k", payload);
  f.loop.run_once();
  EXPECT_EQ(f.vectors().size(), 2u);
  const auto dls = f.out.on(f.topics.deadletter);
  ASSERT_EQ(dls.size(), 1u);
  v1::DeadLetter dl;
  ASSERT_TRUE(dl.ParseFromString(dls[0].payload));
  EXPECT_EQ(dl.payload(), broken);
  EXPECT_EQ(dl.payload_length(), broken.size());
  EXPECT_NE(dl.reason().find("undecodable_call_record"), std::string::npos);
}

// What the sensor cut is measured: the value's original length feeds the length feature,
// and the truncation itself is a feature.
TEST(MonitorProcessor, TruncatedValuesAndRecordsAreScored) {
  Fixture f;
  for (uint64_t i = 0; i < 100; ++i)
    f.in.push(f.topics.calls, "k", record(i, std::to_string(i % 9 + 1)).SerializeAsString());
  auto cut = record(100, std::string(64, 'a'));
  cut.mutable_arguments(0)->mutable_value()->set_truncated(true);
  cut.mutable_arguments(0)->mutable_value()->set_original_length(1 << 20);
  cut.set_truncated(true);
  cut.set_dropped_arguments(3);
  f.in.push(f.topics.calls, "k", cut.SerializeAsString());
  auto same_len = record(101, std::string(64, 'a'));  // the same bytes, not cut
  f.in.push(f.topics.calls, "k", same_len.SerializeAsString());
  while (f.loop.run_once() > 0) {
  }
  const auto vecs = f.vectors();
  ASSERT_EQ(vecs.size(), 102u);
  const auto &a = vecs[100], &b = vecs[101];
  EXPECT_EQ(a.values(feature_index(a, "size:truncated_values")), 1.0);
  EXPECT_EQ(a.values(feature_index(a, "size:record_truncated")), 1.0);
  EXPECT_EQ(b.values(feature_index(b, "size:truncated_values")), 0.0);
  const int len = feature_index(a, "arg:cantidad:length_deviation");
  ASSERT_GE(len, 0);
  EXPECT_GT(a.values(len), 10 * b.values(len));
}
