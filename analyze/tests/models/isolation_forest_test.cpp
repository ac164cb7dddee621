#include "immunizer/analyze/models/isolation_forest.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace immunizer::analyze {
namespace {

Matrix gaussian(std::size_t rows, std::size_t cols, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> nd;
  Matrix m(rows, cols);
  for (auto& v : m.values) v = nd(gen);
  return m;
}

double exact_c(int n) {  // 2 H(n-1) - 2 (n-1) / n with the harmonic number summed exactly
  double h = 0;
  for (int i = 1; i < n; ++i) h += 1.0 / i;
  return 2 * h - 2.0 * (n - 1) / n;
}

TEST(AveragePathLength, MatchesDefinition) {
  EXPECT_EQ(average_path_length(0), 0.0);
  EXPECT_EQ(average_path_length(1), 0.0);
  EXPECT_EQ(average_path_length(2), 1.0);
  EXPECT_NEAR(average_path_length(3), exact_c(3), 1e-12);  // 2 * 1.5 - 4/3
  for (int n : {10, 17, 100, 256, 1000, 4096})
    EXPECT_NEAR(average_path_length(n), exact_c(n), 1e-9) << n;
  // The paper's H(i) ~ ln(i) + 0.5772 is within 0.005 of the exact value at psi = 256.
  EXPECT_NEAR(average_path_length(256), 2 * (std::log(255.0) + 0.5772156649) - 2 * 255.0 / 256,
              0.005);
}

TEST(IsolationForest, SingleTreePathLengthsAreExactForTwoPoints) {
  Matrix m(2, 1);
  m.at(0, 0) = 0.0;
  m.at(1, 0) = 1.0;
  const auto f = IsolationForest::fit(m, {.trees = 1, .sample_size = 256});
  // psi = 2, height limit 1: the root splits the two points and each leaf holds one.
  const double lo[] = {0.0}, hi[] = {1.0};
  EXPECT_DOUBLE_EQ(f.mean_path_length(lo), 1.0);
  EXPECT_DOUBLE_EQ(f.mean_path_length(hi), 1.0);
  EXPECT_DOUBLE_EQ(f.score(lo), 0.5);  // 2^(-1 / c(2))
}

TEST(IsolationForest, HeightLimitBoundsPathLengths) {
  const auto data = gaussian(2000, 3, 1);
  const auto f = IsolationForest::fit(data, {.trees = 50, .sample_size = 64});
  // Depth limit ceil(log2 64) = 6; a leaf adds at most c(64 - 6).
  // Splits fall inside the training range, so a far point follows the most extreme training
  // points: short paths, but not below one split.
  const double far[] = {50, 50, 50};
  EXPECT_LT(f.mean_path_length(far), 5.0);
  EXPECT_GE(f.mean_path_length(far), 1.0);
  double inliers = 0;
  for (std::size_t r = 0; r < 100; ++r) {
    inliers += f.mean_path_length(data.row(r)) / 100;
    const double h = f.mean_path_length(data.row(r));
    EXPECT_GT(h, 0.0);
    EXPECT_LE(h, 6 + average_path_length(64));
  }
  EXPECT_GT(inliers, f.mean_path_length(far) + 1.5);
}

TEST(IsolationForest, OutlierScoresHigherThanInliers) {
  auto data = gaussian(1000, 4, 2);
  const auto f = IsolationForest::fit(data, {});
  const double out[] = {6, -6, 6, -6};
  const double in[] = {0, 0, 0, 0};
  EXPECT_GT(f.score(out), 0.7);
  EXPECT_LT(f.score(in), 0.5);
}

TEST(IsolationForest, DeterministicPerSeedAndThreadCount) {
  const auto data = gaussian(3000, 5, 3);
  const auto a = IsolationForest::fit(data, {.seed = 7, .threads = 1});
  const auto b = IsolationForest::fit(data, {.seed = 7, .threads = 2});
  const auto c = IsolationForest::fit(data, {.seed = 8});
  EXPECT_EQ(a.serialize(), b.serialize());
  EXPECT_NE(a.serialize(), c.serialize());
}

TEST(IsolationForest, BatchEqualsSingle) {
  const auto data = gaussian(777, 6, 4);
  const auto f = IsolationForest::fit(data, {});
  std::vector<double> batch(data.rows);
  f.score_batch(data, batch, 2);
  for (std::size_t r = 0; r < data.rows; ++r) ASSERT_DOUBLE_EQ(batch[r], f.score(data.row(r)));
}

TEST(IsolationForest, ConstantFeaturesAndTiesNeverSplit) {
  Matrix m(500, 3);
  for (std::size_t r = 0; r < m.rows; ++r) {
    m.at(r, 0) = 5.0;                         // constant
    m.at(r, 1) = static_cast<double>(r % 2);  // two tied values
    m.at(r, 2) = 1.0;                         // constant
  }
  const auto f = IsolationForest::fit(m, {});
  // Only feature 1 can split; then every leaf holds tied points: path = 1 + c(size).
  const double x0[] = {5, 0, 1};
  const double h = f.mean_path_length(x0);
  EXPECT_GT(h, 1.0 + average_path_length(100));
  const auto attr = f.attribution(x0);
  EXPECT_EQ(attr[0], 0.0);
  EXPECT_EQ(attr[2], 0.0);
  EXPECT_GT(attr[1], 0.0);
  // All points identical: the root is a leaf of c(psi).
  Matrix same(300, 2);
  const auto g = IsolationForest::fit(same, {});
  const double z[] = {0, 0};
  EXPECT_NEAR(g.mean_path_length(z), average_path_length(256), 1e-12);
  EXPECT_NEAR(g.score(z), 0.5, 1e-12);
}

TEST(IsolationForest, AttributionNamesThePlantedFeature) {
  const auto data = gaussian(2000, 6, 5);
  const auto f = IsolationForest::fit(data, {});
  const double x[] = {0.1, -0.2, 0.0, 9.0, 0.3, -0.1};
  const auto a = f.attribution(x);
  EXPECT_EQ(std::max_element(a.begin(), a.end()) - a.begin(), 3);
}

TEST(IsolationForest, SerialisationRoundTripAndCorruption) {
  const auto data = gaussian(1000, 3, 6);
  const auto f = IsolationForest::fit(data, {});
  const auto bytes = f.serialize();
  const auto g = IsolationForest::deserialize(bytes);
  for (std::size_t r = 0; r < 50; ++r) EXPECT_EQ(f.score(data.row(r)), g.score(data.row(r)));
  EXPECT_THROW(IsolationForest::deserialize(bytes.substr(0, bytes.size() / 2)), std::runtime_error);
  auto bad = bytes;
  bad[40] ^= 0x7f;  // inside the first node
  bad[44] ^= 0x7f;
  try {
    const auto h = IsolationForest::deserialize(bad);
    (void)h.score(data.row(0));  // validated: must not crash either way
  } catch (const std::runtime_error&) {
  }
}

TEST(IsolationForest, DefaultForestFitsInOneMebibyte) {
  const auto data = gaussian(50000, 9, 7);
  const auto f = IsolationForest::fit(data, {});
  EXPECT_LE(f.memory_bytes(), 1u << 20);
  EXPECT_EQ(f.trees(), 100u);
  EXPECT_EQ(f.sample_size(), 256u);
}

}  // namespace
}  // namespace immunizer::analyze
