#include <gtest/gtest.h>

#include <cmath>

#include "immunizer/tools/eval.hpp"

using immunizer::tools::combine_fisher;
using immunizer::tools::compute_metrics;

TEST(EvalMetrics, PerfectSeparation) {
  std::vector<double> n, a;
  for (int i = 0; i < 200; ++i) n.push_back(i * 0.01);
  for (int i = 0; i < 100; ++i) a.push_back(10 + i);
  const auto m = compute_metrics(n, a, std::vector<bool>(200, false), std::vector<bool>(100, true));
  EXPECT_DOUBLE_EQ(m.auc, 1.0);
  EXPECT_DOUBLE_EQ(m.detection_at_1fp, 1.0);
  EXPECT_LE(m.fp_rate_at_1fp, 0.01);
  EXPECT_DOUBLE_EQ(m.precision, 1.0);
  EXPECT_DOUBLE_EQ(m.recall, 1.0);
  EXPECT_DOUBLE_EQ(m.r_precision, 1.0);
}

TEST(EvalMetrics, TiesCountHalf) {
  const auto m = compute_metrics({1, 1, 1, 1}, {1, 1}, {false, false, false, false}, {false, true});
  EXPECT_DOUBLE_EQ(m.auc, 0.5);
  EXPECT_DOUBLE_EQ(m.detection_at_1fp, 0.0);   // nothing is strictly above the tied normal scores
  EXPECT_DOUBLE_EQ(m.r_precision, 1.0 / 3.0);  // 2 of the 6 tied scores are anomalous
  EXPECT_DOUBLE_EQ(m.recall, 0.5);
  EXPECT_EQ(m.tp, 1u);
  EXPECT_EQ(m.fn, 1u);
}

TEST(EvalMetrics, DetectionAtOnePercentFalsePositives) {
  // 1000 normal scores 0..999: 1% = 10 may exceed the threshold, so t = 989.
  std::vector<double> n, a;
  for (int i = 0; i < 1000; ++i) n.push_back(i);
  a = {995, 990, 989, 500};
  const auto m = compute_metrics(n, a, std::vector<bool>(1000, false), std::vector<bool>(4, false));
  EXPECT_DOUBLE_EQ(m.threshold_at_1fp, 989);
  EXPECT_DOUBLE_EQ(m.fp_rate_at_1fp, 0.01);
  EXPECT_DOUBLE_EQ(m.detection_at_1fp, 0.5);
  // AUC: 995 beats 995 normal scores and ties 1 (995.5), 990 -> 990.5, 989 -> 989.5, 500 -> 500.5.
  EXPECT_NEAR(m.auc, (995.5 + 990.5 + 989.5 + 500.5) / 4000.0, 1e-12);
}

TEST(EvalMetrics, FisherCombination) {
  EXPECT_DOUBLE_EQ(combine_fisher({3.0}), 3.0);
  // Two records at p = 0.1 each: X = -2 ln 0.01, P(chi2_4 >= X) = 0.01 (1 + ln 100).
  EXPECT_NEAR(combine_fisher({1.0, 1.0}), -std::log10(0.01 * (1 + std::log(100.0))), 1e-12);
  EXPECT_GT(combine_fisher({3.0, 3.0}), combine_fisher({3.0, 0.0}));
  EXPECT_LT(combine_fisher({3.0, 0.0}), 3.0);  // a second, unsurprising record costs a little
}
