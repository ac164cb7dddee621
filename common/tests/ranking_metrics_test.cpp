#include "immunizer/common/ranking_metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace immunizer::common {
namespace {

TEST(RankingMetrics, SeparatedScores) {
  const std::vector<double> s = {0.1, 0.2, 0.9, 0.8};
  const std::vector<int> l = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(roc_auc(s, l), 1.0);
  EXPECT_DOUBLE_EQ(r_precision(s, l), 1.0);
}

TEST(RankingMetrics, TiesCountHalfInTheAuc) {
  // The anomalous 0.5 ties one normal 0.5 and beats the 0.1: (1 + 0.5) / 2.
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<double>{0.1, 0.5, 0.5}, std::vector<int>{0, 0, 1}), 0.75);
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<double>{1, 1, 1, 1}, std::vector<int>{0, 1, 0, 1}), 0.5);
}

TEST(RankingMetrics, TiesAtTheCutAreSharedInProportionWhateverTheirOrder) {
  // R = 1; two scores tie for the top place, one of them anomalous: 1/2, in either order.
  EXPECT_DOUBLE_EQ(r_precision(std::vector<double>{5, 5, 0}, std::vector<int>{0, 1, 0}), 0.5);
  EXPECT_DOUBLE_EQ(r_precision(std::vector<double>{5, 5, 0}, std::vector<int>{1, 0, 0}), 0.5);
  // R = 2: one anomalous clearly on top, the second place shared by three scores of which one
  // is anomalous: (1 + 1/3) / 2.
  EXPECT_DOUBLE_EQ(r_precision(std::vector<double>{9, 3, 3, 3, 1}, std::vector<int>{1, 0, 0, 1, 0}),
                   (1.0 + 1.0 / 3.0) / 2.0);
}

TEST(RankingMetrics, UndefinedWithoutBothClasses) {
  EXPECT_TRUE(std::isnan(roc_auc(std::vector<double>{1, 2}, std::vector<int>{0, 0})));
  EXPECT_TRUE(std::isnan(roc_auc(std::vector<double>{1, 2}, std::vector<int>{1, 1})));
  EXPECT_TRUE(std::isnan(r_precision(std::vector<double>{1, 2}, std::vector<int>{0, 0})));
}

}  // namespace
}  // namespace immunizer::common
