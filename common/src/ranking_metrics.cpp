#include "immunizer/common/ranking_metrics.hpp"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <numeric>
#include <vector>

namespace immunizer::common {
namespace {
// Indices of the scores in ascending score order.
std::vector<size_t> ascending(std::span<const double> scores) {
  std::vector<size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  return idx;
}
}  // namespace

double roc_auc(std::span<const double> scores, std::span<const int> labels) {
  const size_t n = scores.size();
  const std::vector<size_t> idx = ascending(scores);
  double rank_sum = 0, pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[idx[j]] == scores[idx[i]]) ++j;
    const double avg_rank = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2;  // 1-based
    for (size_t k = i; k < j; ++k) {
      if (labels[idx[k]] == 1) {
        rank_sum += avg_rank;
        ++pos;
      }
    }
    i = j;
  }
  const double neg = static_cast<double>(n) - pos;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

double r_precision(std::span<const double> scores, std::span<const int> labels) {
  const auto r = static_cast<size_t>(std::count(labels.begin(), labels.end(), 1));
  if (r == 0 || r > scores.size()) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> sorted(scores.begin(), scores.end());
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(r - 1),
                   sorted.end(), std::greater<>());
  const double cut = sorted[r - 1];  // the R-th highest score
  size_t above = 0, above_a = 0, tie = 0, tie_a = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const bool a = labels[i] == 1;
    if (scores[i] > cut) {
      ++above;
      above_a += a;
    } else if (scores[i] == cut) {
      ++tie;
      tie_a += a;
    }
  }
  const double take = static_cast<double>(r - above);  // places left for the tied scores
  return (static_cast<double>(above_a) +
          take * static_cast<double>(tie_a) / static_cast<double>(tie)) /
         static_cast<double>(r);
}

}  // namespace immunizer::common
