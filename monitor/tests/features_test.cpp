#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <random>

#include "immunizer/monitor/features.hpp"
#include "immunizer/monitor/sketch.hpp"
#include "immunizer/v1/call_records.hpp"
#include "test_records.hpp"

namespace immunizer::monitor {
namespace {

using immunizer::v1::CallRecord;
using immunizer::v1::FeatureVector;
using testing::feature;
using testing::num;
using testing::record;
using testing::str;

const char* kNames[] = {"Vino Rioja", "Jamon Iberico", "Queso Manchego", "Aceite de oliva",
                        "Sidra"};

CallRecord normal(int i) {
  return record({{"id", str(std::to_string(1 + i % 3))},
                 {"nombre", str(kNames[i % 5])},
                 {"cantidad", str(std::to_string(10 + (i * 7) % 40))},
                 {"B1", str("Anadir al carrito")}},
                static_cast<uint64_t>(i));
}

class Features : public ::testing::Test {
 protected:
  void train(int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(fx.extract(normal(i), &out, &why)) << why;
  }
  FeatureVector run(const CallRecord& r) {
    FeatureVector v;
    EXPECT_TRUE(fx.extract(r, &v, &why)) << why;
    return v;
  }
  FeatureVector with_cantidad(const std::string& c, int i = 1001) {
    auto r = normal(i);
    r.mutable_arguments(2)->mutable_value()->set_string_value(c);
    return run(r);
  }
  FeatureExtractor fx;
  FeatureVector out;
  std::string why;
};

TEST_F(Features, ModelKeyJoinsAppCallContext) {
  auto r = normal(0);
  r.set_context("http.request");
  EXPECT_EQ(FeatureExtractor::model_key(r), "shop|buy|http.request");
}

TEST_F(Features, RejectsRecordsWithoutAppOrCall) {
  auto r = normal(0);
  r.mutable_id()->clear_app();
  EXPECT_FALSE(fx.extract(r, &out, &why));
  EXPECT_NE(why.find("app"), std::string::npos);
  r = normal(0);
  r.clear_call();
  EXPECT_FALSE(fx.extract(r, &out, &why));
  EXPECT_TRUE(fx.model_keys().empty());
}

TEST_F(Features, VectorCarriesIdentitySchemaAndLabels) {
  auto r = normal(0);
  r.mutable_principal()->set_session("S1");
  r.set_timestamp_unix_nanos(123);
  {
    auto* l = r.add_labels();
    l->set_key("trace");
    l->set_value("t-1");
  }
  auto v = run(r);
  EXPECT_EQ(v.model_key(), "shop|buy|");
  EXPECT_EQ(v.record_id().seq(), 0u);
  EXPECT_EQ(v.principal().session(), "S1");
  EXPECT_EQ(v.call(), "buy");
  EXPECT_EQ(v.timestamp_unix_nanos(), 123);
  EXPECT_EQ(v.labels().at("trace"), "t-1");
  EXPECT_EQ(v.schema().names_size(), v.values_size());
  EXPECT_GT(v.schema().version(), 0u);
  EXPECT_NO_THROW(feature(v, "arg:cantidad:charclass_divergence"));
}

TEST_F(Features, StringLengthDeviation) {
  train(300);
  auto ok = with_cantidad("25");
  auto longer = with_cantidad(std::string(300, '9'));
  EXPECT_LT(std::fabs(feature(ok, "arg:cantidad:length_deviation")), 3.0);
  EXPECT_GT(feature(longer, "arg:cantidad:length_deviation"), 50.0);
  EXPECT_GT(feature(longer, "any:length_deviation"), 50.0);
}

TEST_F(Features, CharacterClassDivergence) {
  train(300);
  auto ok = with_cantidad("31");
  auto sqli = with_cantidad("1' OR '1'='1");
  EXPECT_LT(feature(ok, "arg:cantidad:charclass_divergence"), 0.05);
  EXPECT_GT(feature(sqli, "arg:cantidad:charclass_divergence"), 3.0);
}

TEST_F(Features, RareNgrams) {
  train(300);
  auto ok = with_cantidad("22");
  auto odd = with_cantidad("2x2");
  EXPECT_GT(feature(odd, "arg:cantidad:rare_1gram"), feature(ok, "arg:cantidad:rare_1gram") + 5);
  EXPECT_GT(feature(odd, "arg:cantidad:rare_3gram"), feature(ok, "arg:cantidad:rare_3gram") + 2);
  EXPECT_DOUBLE_EQ(feature(ok, "arg:cantidad:unseen_3gram_frac"), 0.0);
  EXPECT_GT(feature(odd, "arg:cantidad:unseen_3gram_frac"), 0.5);
  EXPECT_EQ(feature(odd, "arg:cantidad:unseen_chars"), 1.0);
}

TEST_F(Features, NonPrintableCharacters) {
  train(300);
  auto crlf = with_cantidad("2\r\nSet-Cookie: x=1");
  EXPECT_EQ(feature(crlf, "arg:cantidad:nonprintable"), 2.0);
  EXPECT_EQ(feature(crlf, "any:nonprintable"), 2.0);
  EXPECT_EQ(feature(with_cantidad("23"), "any:nonprintable"), 0.0);
}

TEST_F(Features, EnumerationUnseenValue) {
  train(300);
  auto r = normal(1);
  EXPECT_LT(feature(run(r), "arg:id:enum_surprise"), 1.0);  // one of 3 equally frequent values
  r.mutable_arguments(0)->mutable_value()->set_string_value("7");
  EXPECT_GT(feature(run(r), "arg:id:enum_surprise"),
            6.0);  // unseen: log2(~100 + 1) bits below the mode
  // cantidad has 40 distinct values: above enum_max_values, so never an enumeration.
  EXPECT_EQ(feature(with_cantidad("99"), "arg:cantidad:enum_surprise"), 0.0);
}

// A request's body length: its first few hundred values are mostly GETs (length 0) with a
// handful of POST lengths, so it looks like an enumeration, but POSTs keep bringing lengths
// never seen. Once those are more than 1% of what it learned, it is no enumeration and a new
// length is no surprise (before: every later POST scored ~8 bits of enum_surprise forever,
// the demo's false positives on http.request).
TEST_F(Features, APathThatKeepsMissingItsEnumerationIsNone) {
  auto request = [](int i, int64_t length) {
    return record({{"method", str(length == 0 ? "GET" : "POST")}, {"body_length", num(length)}},
                  static_cast<uint64_t>(i), "http.request");
  };
  int i = 0;
  for (; i < 250; ++i)
    ASSERT_TRUE(fx.extract(request(i, i % 10 == 0 ? 60 + i % 40 : 0), &out, &why));
  // Judged an enumeration: an unseen length is surprising now.
  EXPECT_GT(feature(run(request(i++, 4321)), "arg:body_length:enum_surprise"), 4.0);
  // One request in five a POST of a length of its own: far more than 1% unseen values.
  for (; i < 1250; ++i)
    ASSERT_TRUE(fx.extract(request(i, i % 5 == 0 ? 100 + i : 0), &out, &why)) << why;
  EXPECT_EQ(feature(run(request(i++, 98765)), "arg:body_length:enum_surprise"), 0.0);
  // method, a true enumeration, still is one.
  auto put = request(i++, 0);
  put.mutable_arguments(0)->mutable_value()->set_string_value("PUT");
  EXPECT_GT(feature(run(put), "arg:method:enum_surprise"), 6.0);
}

TEST_F(Features, NumericDeviation) {
  train(300);
  EXPECT_LT(std::fabs(feature(with_cantidad("30"), "arg:cantidad:numeric_deviation")), 2.0);
  EXPECT_LT(feature(with_cantidad("-5000"), "arg:cantidad:numeric_deviation"), -100.0);
  EXPECT_GT(feature(with_cantidad("100000"), "arg:cantidad:numeric_deviation"), 100.0);
  EXPECT_EQ(feature(with_cantidad("abc"), "arg:cantidad:numeric_deviation"), 0.0);
}

TEST_F(Features, StructureUnseenAndMissingArgumentsAndCount) {
  train(300);
  auto base = run(normal(5));
  EXPECT_EQ(feature(base, "struct:unseen_args"), 0.0);
  EXPECT_EQ(feature(base, "struct:missing_args"), 0.0);
  EXPECT_EQ(feature(base, "struct:arg_count"), 4.0);

  auto extra = normal(6);
  auto* a = extra.add_arguments();
  a->set_name("idA");
  *a->mutable_value() = str("2");
  auto ve = run(extra);
  EXPECT_EQ(feature(ve, "struct:unseen_args"), 1.0);
  EXPECT_EQ(feature(ve, "struct:arg_count"), 5.0);
  EXPECT_GT(feature(ve, "struct:arg_count_deviation"), 1.0);
  EXPECT_EQ(ve.values_size(), base.values_size()) << "schema is frozen: no new columns";

  auto fewer = normal(7);
  fewer.mutable_arguments()->RemoveLast();
  auto vm = run(fewer);
  EXPECT_EQ(feature(vm, "struct:missing_args"), 1.0);
  EXPECT_EQ(feature(vm, "arg:B1:length_deviation"), 0.0);
}

TEST_F(Features, NestedValuesFlattenToPathsWithArrayIndicesCollapsed) {
  immunizer::v1::Value headers;
  {
    auto* f = headers.mutable_map_value()->add_fields();
    f->set_key("user-agent");
    *f->mutable_value() = str("Mozilla");
  }
  immunizer::v1::Value list;
  *list.mutable_list_value()->add_items() = str("a");
  *list.mutable_list_value()->add_items() = str("b");
  auto v = run(record({{"headers", headers}, {"tags", list}}));
  EXPECT_NO_THROW(feature(v, "arg:headers.user-agent:length_deviation"));
  EXPECT_NO_THROW(feature(v, "arg:tags[]:length_deviation"));
  EXPECT_EQ(feature(v, "struct:arg_count"), 2.0);
}

TEST_F(Features, OutcomeErrorAndDuration) {
  for (int i = 0; i < 300; ++i) {
    auto r = normal(i);
    r.set_duration_nanos(1'000'000 + (i % 10) * 10'000);
    r.mutable_result()->set_int_value(200);
    fx.extract(r, &out, &why);
  }
  auto r = normal(1);
  r.set_duration_nanos(1'050'000);
  r.mutable_result()->set_int_value(200);
  auto ok = run(r);
  EXPECT_EQ(feature(ok, "outcome:error"), 0.0);
  EXPECT_LT(std::fabs(feature(ok, "outcome:duration_deviation")), 3.0);
  EXPECT_LT(feature(ok, "arg:result:enum_surprise"), 0.1);

  r.set_duration_nanos(900'000'000);
  r.mutable_result()->set_int_value(500);
  auto slow = run(r);
  EXPECT_GT(feature(slow, "outcome:duration_deviation"), 10.0);
  EXPECT_GT(feature(slow, "arg:result:enum_surprise"), 8.0);

  r.mutable_error()->set_type("SQLException");
  EXPECT_EQ(feature(run(r), "outcome:error"), 1.0);
}

TEST_F(Features, PrincipalRatesAndIntervals) {
  const int64_t s = 1'000'000'000;
  auto at = [&](const std::string& session, int64_t t) {
    auto r = normal(1);
    r.mutable_principal()->set_session(session);
    r.set_timestamp_unix_nanos(t);
    return run(r);
  };
  auto first = at("alice", 100 * s);
  EXPECT_EQ(feature(first, "principal:new"), 1.0);
  EXPECT_EQ(feature(first, "principal:recent_calls"), 1.0);
  // One call every 10 s: steady rate, small interval deviation.
  FeatureVector v;
  for (int i = 1; i <= 20; ++i) v = at("alice", (100 + 10 * i) * s);
  EXPECT_EQ(feature(v, "principal:new"), 0.0);
  EXPECT_GT(feature(v, "principal:recent_calls"), 5.0);
  EXPECT_LT(std::fabs(feature(v, "principal:interval_deviation")), 1.0);
  // A burst: 50 calls within 50 ms raises the damped call count and the interval deviation.
  for (int i = 1; i <= 50; ++i) v = at("alice", 310 * s + i * 1'000'000);
  EXPECT_GT(feature(v, "principal:recent_calls"), 50.0);
  auto other = at("bob", 311 * s);
  EXPECT_EQ(feature(other, "principal:new"), 1.0);
}

TEST_F(Features, PrincipalTableIsBounded) {
  FeatureConfig cfg;
  cfg.max_principals = 64;
  FeatureExtractor small(cfg);
  for (int i = 0; i < 200; ++i) {
    auto r = normal(i);
    r.mutable_principal()->set_session("s" + std::to_string(i));
    r.set_timestamp_unix_nanos(1'000'000'000LL * (i + 1));
    ASSERT_TRUE(small.extract(r, &out, &why));
  }
  const size_t m = small.memory_bytes("shop|buy|");
  for (int i = 200; i < 2000; ++i) {
    auto r = normal(i);
    r.mutable_principal()->set_session("s" + std::to_string(i));
    r.set_timestamp_unix_nanos(1'000'000'000LL * (i + 1));
    ASSERT_TRUE(small.extract(r, &out, &why));
  }
  EXPECT_EQ(small.memory_bytes("shop|buy|"), m);
}

TEST_F(Features, SchemaGrowsWhileYoungThenFreezes) {
  FeatureConfig cfg;
  cfg.schema_freeze_records = 10;
  FeatureExtractor young(cfg);
  FeatureVector v;
  ASSERT_TRUE(young.extract(record({{"a", str("x")}}), &v, &why));
  const auto v1 = v.schema().version();
  const int n1 = v.values_size();
  ASSERT_TRUE(young.extract(record({{"a", str("x")}, {"b", str("y")}}), &v, &why));
  EXPECT_GT(v.schema().version(), v1);
  EXPECT_GT(v.values_size(), n1);
  EXPECT_EQ(feature(v, "struct:unseen_args"), 1.0);  // b was new when measured
  for (int i = 0; i < 20; ++i) young.extract(record({{"a", str("x")}, {"b", str("y")}}), &v, &why);
  const auto frozen_version = v.schema().version();
  const int frozen_len = v.values_size();
  EXPECT_TRUE(young.stats("shop|buy|").frozen);
  ASSERT_TRUE(young.extract(record({{"a", str("x")}, {"b", str("y")}, {"c", str("' OR 1=1 --")}}),
                            &v, &why));
  EXPECT_EQ(v.schema().version(), frozen_version);
  EXPECT_EQ(v.values_size(), frozen_len);
  EXPECT_EQ(feature(v, "struct:unseen_args"), 1.0);
  // The unseen path's value is still measured against the model-wide profile.
  EXPECT_GT(feature(v, "any:charclass_divergence"), 1.0);
  EXPECT_EQ(young.schema("shop|buy|").names_size(), frozen_len);
}

TEST_F(Features, MaxPathsPerModelCapsColumns) {
  FeatureConfig cfg;
  cfg.max_paths_per_model = 3;
  FeatureExtractor capped(cfg);
  FeatureVector v;
  auto r =
      record({{"a", str("1")}, {"b", str("2")}, {"c", str("3")}, {"d", str("4")}, {"e", str("5")}});
  ASSERT_TRUE(capped.extract(r, &v, &why));
  EXPECT_EQ(capped.stats("shop|buy|").paths, 3u);
  EXPECT_EQ(feature(v, "struct:unseen_args"), 5.0);
  ASSERT_TRUE(capped.extract(r, &v, &why));
  EXPECT_EQ(feature(v, "struct:unseen_args"), 2.0);
}

// Snapshots hold value hashes, so stable_hash must never change: compare it with the
// byte-at-a-time definition for every tail length.
TEST(StableHash, MatchesTheByteAtATimeDefinition) {
  auto reference = [](std::string_view s) {
    uint64_t h = 0x243F6A8885A308D3ull ^ (s.size() * 0x9E3779B97F4A7C15ull);
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t k = 0;
      for (size_t j = 0; j < 8; ++j)
        k |= static_cast<uint64_t>(static_cast<uint8_t>(s[i + j])) << (8 * j);
      k *= 0xC2B2AE3D27D4EB4Full;
      k ^= k >> 31;
      h = (h ^ k) * 0x9E3779B97F4A7C15ull;
    }
    uint64_t tail = 0;
    for (size_t j = 0; i < s.size(); ++i, j += 8)
      tail |= static_cast<uint64_t>(static_cast<uint8_t>(s[i])) << j;
    h = (h ^ (tail * 0xC2B2AE3D27D4EB4Full)) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
  };
  std::mt19937 rng(3);
  std::string s;
  for (size_t n = 0; n <= 70; ++n) {
    for (int trial = 0; trial < 20; ++trial) {
      s.resize(n);
      for (auto& c : s) c = static_cast<char>(rng());
      ASSERT_EQ(stable_hash(s), reference(s)) << "length " << n;
    }
  }
  EXPECT_EQ(stable_hash(""), reference(""));
}

// Paths are looked up by name whatever order the arguments come in (map fields have no
// fixed order), and hundreds of paths per model resolve to their own columns.
TEST_F(Features, ArgumentOrderAndManyPathsResolveToTheRightColumns) {
  FeatureConfig cfg;
  cfg.max_paths_per_model = 600;
  cfg.max_leaves_per_record = 1000;
  FeatureExtractor many(cfg);
  auto build = [](int i, bool reversed) {
    std::vector<std::pair<std::string, immunizer::v1::Value>> args;
    for (int p = 0; p < 500; ++p)
      args.emplace_back("p" + std::to_string(p), str(std::string(1 + p % 7, 'a')));
    args.emplace_back("n", num(100 + i % 3));
    if (reversed) std::reverse(args.begin(), args.end());
    return record(args, static_cast<uint64_t>(i));
  };
  FeatureVector v;
  for (int i = 0; i < 80; ++i) ASSERT_TRUE(many.extract(build(i, i % 2 == 1), &v, &why)) << why;
  EXPECT_EQ(many.stats("shop|buy|").paths, 501u);
  ASSERT_TRUE(many.extract(build(80, true), &v, &why));
  EXPECT_EQ(feature(v, "struct:unseen_args"), 0.0);
  EXPECT_EQ(feature(v, "struct:arg_count"), 501.0);
  EXPECT_EQ(feature(v, "arg:p499:length_deviation"), 0.0);  // each path kept its own length
  // A value that is wrong for its path shows in that path's columns only.
  auto odd = build(81, false);
  odd.mutable_arguments(3)->mutable_value()->set_string_value(std::string(40, 'a'));
  ASSERT_TRUE(many.extract(odd, &v, &why));
  EXPECT_GT(feature(v, "arg:p3:length_deviation"), 3.0);
  EXPECT_EQ(feature(v, "arg:p4:length_deviation"), 0.0);
  EXPECT_EQ(feature(v, "arg:p10:length_deviation"), 0.0);
}

TEST_F(Features, SnapshotRestoreContinuesIdentically) {
  std::mt19937 rng(7);
  auto make = [&](int i) {
    auto r = normal(i);
    r.mutable_principal()->set_session("s" + std::to_string(rng() % 50));
    r.set_timestamp_unix_nanos(1'000'000'000LL * 1000 + i * 37'000'000LL);
    r.set_duration_nanos(1000 + rng() % 5000);
    r.mutable_result()->set_int_value(rng() % 20 == 0 ? 404 : 200);
    if (i % 17 == 0)
      r.mutable_arguments(1)->mutable_value()->set_string_value("<script>" + std::to_string(i));
    return r;
  };
  std::vector<CallRecord> recs;
  for (int i = 0; i < 600; ++i) recs.push_back(make(i));
  FeatureExtractor a, b;
  FeatureVector va, vb;
  for (int i = 0; i < 350; ++i) {
    ASSERT_TRUE(a.extract(recs[i], &va, &why));
    ASSERT_TRUE(b.extract(recs[i], &vb, &why));
  }
  const std::string snap = a.snapshot("shop|buy|");
  ASSERT_FALSE(snap.empty());
  FeatureExtractor c;  // a fresh process
  c.restore("shop|buy|", snap);
  EXPECT_EQ(c.records_seen("shop|buy|"), 350u);
  EXPECT_EQ(c.snapshot("shop|buy|"), snap);
  FeatureVector vc;
  for (int i = 350; i < 600; ++i) {
    ASSERT_TRUE(b.extract(recs[i], &vb, &why));
    ASSERT_TRUE(c.extract(recs[i], &vc, &why));
    ASSERT_EQ(vb.schema().version(), vc.schema().version());
    ASSERT_EQ(vb.values_size(), vc.values_size());
    for (int k = 0; k < vb.values_size(); ++k)
      ASSERT_EQ(vb.values(k), vc.values(k)) << vb.schema().names(k);
  }
  EXPECT_EQ(b.snapshot("shop|buy|"), c.snapshot("shop|buy|"));
}

TEST_F(Features, RestoreRejectsCorruptOrIncompatibleInput) {
  train(50);
  std::string snap = fx.snapshot("shop|buy|");
  EXPECT_THROW(fx.restore("k", "garbage"), std::runtime_error);
  std::string cut = snap.substr(0, snap.size() / 2);
  EXPECT_THROW(fx.restore("k", cut), std::runtime_error);
  std::string flipped = snap;
  flipped[flipped.size() / 2] ^= 0x5a;
  EXPECT_THROW(fx.restore("k", flipped), std::runtime_error);
  FeatureConfig other;
  other.trigram_sketch_width = 256;
  FeatureExtractor narrow(other);
  EXPECT_THROW(narrow.restore("shop|buy|", snap), std::runtime_error);
  EXPECT_EQ(fx.records_seen("k"), 0u);
  EXPECT_EQ(fx.records_seen("shop|buy|"), 50u);
}

TEST_F(Features, UncompressedSnapshotsRoundTrip) {
  FeatureConfig cfg;
  cfg.compress_snapshots = false;
  FeatureExtractor raw(cfg);
  for (int i = 0; i < 20; ++i) raw.extract(normal(i), &out, &why);
  FeatureExtractor back(cfg);
  back.restore("shop|buy|", raw.snapshot("shop|buy|"));
  EXPECT_EQ(back.snapshot("shop|buy|"), raw.snapshot("shop|buy|"));
}

TEST_F(Features, ModelLimitRefusesNewKeys) {
  FeatureConfig cfg;
  cfg.max_models = 2;
  FeatureExtractor few(cfg);
  EXPECT_TRUE(few.extract(record({}, 0, "a"), &out, &why));
  EXPECT_TRUE(few.extract(record({}, 0, "b"), &out, &why));
  EXPECT_FALSE(few.extract(record({}, 0, "c"), &out, &why));
  EXPECT_NE(why.find("max_models"), std::string::npos);
  EXPECT_EQ(few.model_keys().size(), 2u);
  EXPECT_TRUE(few.drop("shop|a|"));
  EXPECT_TRUE(few.extract(record({}, 0, "c"), &out, &why));
}

TEST_F(Features, BadConfigIsRejected) {
  FeatureConfig cfg;
  cfg.trigram_sketch_depth = 9;
  EXPECT_THROW(FeatureExtractor{cfg}, std::invalid_argument);
}

TEST_F(Features, ReusedOutputVectorGetsTheRightSchemaPerModel) {
  FeatureVector v;
  ASSERT_TRUE(fx.extract(record({{"a", str("x")}}, 0, "one"), &v, &why));
  ASSERT_TRUE(fx.extract(record({{"b", str("x")}, {"c", str("y")}}, 0, "two"), &v, &why));
  EXPECT_EQ(v.model_key(), "shop|two|");
  EXPECT_EQ(v.schema().names_size(), v.values_size());
  EXPECT_NO_THROW(feature(v, "arg:c:rare_1gram"));
}

// Snapshot bytes of format 2 as the code before the common byte codec wrote them (60 records
// of shop|buy|): still readable, and written again to the byte.
TEST(FeatureSnapshots, ReadsAndRewritesSnapshotsOfEarlierBuilds) {
  std::ifstream in(
      std::string(IMMUNIZER_SOURCE_DIR) + "/monitor/tests/data/monitor_format2.snapshot",
      std::ios::binary);
  ASSERT_TRUE(in);
  const std::string old((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  FeatureExtractor fx;
  fx.restore("shop|buy|", old);
  EXPECT_EQ(fx.records_seen("shop|buy|"), 60u);
  EXPECT_EQ(fx.stats("shop|buy|").paths, 3u);
  EXPECT_EQ(fx.snapshot("shop|buy|"), old);
  FeatureVector v;
  std::string why;
  EXPECT_TRUE(fx.extract(normal(1), &v, &why)) << why;
  EXPECT_EQ(fx.records_seen("shop|buy|"), 61u);
}

}  // namespace
}  // namespace immunizer::monitor
