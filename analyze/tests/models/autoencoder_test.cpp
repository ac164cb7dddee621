#include "immunizer/analyze/models/autoencoder.hpp"

#include <gtest/gtest.h>

#include <random>

namespace immunizer::analyze {
namespace {

// Three blocks of features, strongly correlated within a block, independent across blocks.
Matrix blocks(std::size_t rows, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> nd;
  Matrix m(rows, 9);
  for (std::size_t r = 0; r < rows; ++r)
    for (int b = 0; b < 3; ++b) {
      const double z = nd(gen);
      for (int k = 0; k < 3; ++k) m.at(r, b * 3 + k) = (k + 1) * z + 0.05 * nd(gen) + 10 * b;
    }
  return m;
}

TEST(FeatureMapper, GroupsCorrelatedFeaturesWithinTheBound) {
  const auto g = map_features(blocks(2000, 1), 3);
  ASSERT_EQ(g.size(), 3u);
  for (const auto& group : g) {
    ASSERT_EQ(group.size(), 3u);
    EXPECT_EQ(group[0] / 3, group[2] / 3);  // all from one block
  }
  for (const auto& group : map_features(blocks(500, 2), 2)) EXPECT_LE(group.size(), 2u);
}

TEST(AutoencoderEnsemble, BrokenCorrelationScoresHigh) {
  const auto data = blocks(3000, 3);
  AutoencoderParams p;
  p.max_group_size = 3;
  const auto ae = AutoencoderEnsemble::fit(data, p);
  EXPECT_EQ(ae.groups().size(), 3u);
  std::vector<double> s(data.rows);
  ae.score_batch(data, s);
  std::sort(s.begin(), s.end());
  const double p99 = s[s.size() * 99 / 100];
  // Each value is within its usual range but the block-1 correlation is broken.
  std::vector<double> odd(data.row(0).begin(), data.row(0).end());
  odd[3] = 10 + 1.0, odd[4] = 10 - 2.0, odd[5] = 10 + 3.0;
  EXPECT_GT(ae.score(odd), p99);
  const auto attr = ae.attribution(odd);
  const auto top = std::max_element(attr.begin(), attr.end()) - attr.begin();
  EXPECT_GE(top, 3);
  EXPECT_LE(top, 5);
}

TEST(AutoencoderEnsemble, DeterministicAndRoundTrips) {
  const auto data = blocks(800, 4);
  AutoencoderParams p;
  p.min_updates = 4000;
  p.seed = 5;
  const auto a = AutoencoderEnsemble::fit(data, p), b = AutoencoderEnsemble::fit(data, p);
  EXPECT_EQ(a.serialize(), b.serialize());
  const auto c = AutoencoderEnsemble::deserialize(a.serialize());
  for (std::size_t r = 0; r < 20; ++r) EXPECT_EQ(a.score(data.row(r)), c.score(data.row(r)));
  const auto bytes = a.serialize();
  EXPECT_THROW(AutoencoderEnsemble::deserialize(bytes.substr(0, bytes.size() - 9)),
               std::runtime_error);
}

// Issue 13: a refit starts from the current model (its groups and weights) and takes
// warm_updates SGD steps; it still catches a broken correlation, and is deterministic.
TEST(AutoencoderEnsemble, WarmStartedRefitKeepsGroupsAndDetects) {
  AutoencoderParams p;
  p.max_group_size = 3;
  p.warm_updates = 2000;
  const auto first = AutoencoderEnsemble::fit(blocks(2048, 7), p);
  const auto data = blocks(2048, 8);
  const auto refit = AutoencoderEnsemble::fit(data, p, &first);
  EXPECT_EQ(refit.groups(), first.groups());
  EXPECT_EQ(refit.serialize(), AutoencoderEnsemble::fit(data, p, &first).serialize());
  EXPECT_NE(refit.serialize(), AutoencoderEnsemble::fit(data, p).serialize());
  std::vector<double> s(data.rows);
  refit.score_batch(data, s);
  std::sort(s.begin(), s.end());
  std::vector<double> odd(data.row(0).begin(), data.row(0).end());
  odd[3] = 10 + 1.0, odd[4] = 10 - 2.0, odd[5] = 10 + 3.0;
  EXPECT_GT(refit.score(odd), s[s.size() * 99 / 100]);
  // warm_updates 0: the earlier model is ignored, the fit starts afresh.
  p.warm_updates = 0;
  EXPECT_EQ(AutoencoderEnsemble::fit(data, p, &first).serialize(),
            AutoencoderEnsemble::fit(data, p).serialize());
}

TEST(AutoencoderEnsemble, ConstantFeaturesAreHarmless) {
  Matrix m(500, 3);
  std::mt19937_64 gen(6);
  std::normal_distribution<double> nd;
  for (std::size_t r = 0; r < m.rows; ++r) m.at(r, 0) = 7, m.at(r, 1) = nd(gen), m.at(r, 2) = 7;
  const auto ae = AutoencoderEnsemble::fit(m, {});
  const double usual[] = {7, 0, 7}, odd[] = {8, 0, 7};
  EXPECT_TRUE(std::isfinite(ae.score(usual)));
  EXPECT_GT(ae.score(odd), ae.score(usual));
}

}  // namespace
}  // namespace immunizer::analyze
