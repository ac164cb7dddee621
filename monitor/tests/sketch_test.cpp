#include <gtest/gtest.h>

#include "immunizer/monitor/features.hpp"
#include "immunizer/monitor/sketch.hpp"
#include "test_records.hpp"

namespace immunizer::monitor {
namespace {

TEST(CountMinSketch, NeverUndercountsAndKeepsFixedMemory) {
  CountMinSketch s(1024, 2);
  const size_t before = s.memory_bytes();
  for (uint32_t k = 0; k < 100000; ++k) s.add(k % 5000);
  EXPECT_EQ(s.memory_bytes(), before);
  EXPECT_EQ(s.total(), 100000u);
  for (uint32_t k = 0; k < 5000; k += 97) EXPECT_GE(s.estimate(k), 20u);
  EXPECT_EQ(s.width(), 1024u);
}

TEST(CountMinSketch, UnseenKeysMostlyEstimateZeroWhenSparse) {
  CountMinSketch s(1024, 2);
  for (uint32_t k = 0; k < 50; ++k) s.add(k * 7919u);
  int zero = 0;
  for (uint32_t k = 1000000; k < 1001000; ++k) zero += s.estimate(k) == 0;
  EXPECT_GT(zero, 950);
}

TEST(StableHash, IsDeterministicAndSpreads) {
  EXPECT_EQ(stable_hash("abc"), stable_hash(std::string("abc")));
  EXPECT_NE(stable_hash("abc"), stable_hash("abd"));
  EXPECT_NE(stable_hash(""), stable_hash(std::string_view("\0", 1)));
}

// Model memory stays bounded however many distinct values and paths arrive.
TEST(FeatureMemory, BoundedPerModelAfterManyDistinctValues) {
  FeatureConfig cfg;
  cfg.schema_freeze_records = 50;
  FeatureExtractor fx(cfg);
  immunizer::v1::FeatureVector out;
  std::string why;
  size_t at_freeze = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string junk(40 + i % 200, 'a');
    for (size_t j = 0; j < junk.size(); ++j)
      junk[j] = static_cast<char>(33 + (i * 31 + j * 7) % 90);
    auto r = testing::record(
        {{"p" + std::to_string(i % 500), testing::str(junk)}, {"x", testing::str(junk)}});
    ASSERT_TRUE(fx.extract(r, &out, &why)) << why;
    if (i == 1000) at_freeze = fx.memory_bytes("shop|buy|");
  }
  const ModelStats st = fx.stats("shop|buy|");
  EXPECT_LE(st.paths, cfg.max_paths_per_model);
  EXPECT_LE(fx.memory_bytes("shop|buy|"), at_freeze);
  // ~10 KiB per path with the default sketch, plus the model-wide profile and principals.
  EXPECT_LT(fx.memory_bytes("shop|buy|"), (cfg.max_paths_per_model + 2) * 11 * 1024 + 64 * 1024);
}

}  // namespace
}  // namespace immunizer::monitor
