// Ranking metrics of anomaly scores (higher = more anomalous) against labels (1 = anomalous),
// shared by every evaluation (`immunizer-analyze score`, `immunizer eval csic`, bench/models)
// so that they agree on the same scores. Tied scores are ranked as the average over every
// order of the tie: they count one half in the AUC and in proportion at the R-precision cut.
// Pure functions; thread-safe.
#pragma once

#include <span>

namespace immunizer::common {

// Area under the ROC curve (Mann-Whitney U / (anomalous * normal)). NaN without both classes.
double roc_auc(std::span<const double> scores, std::span<const int> labels);
// Share of anomalous among the R highest scores, R = number of anomalous; scores tied at the
// R-th highest share the remaining places in proportion. NaN without anomalous labels.
double r_precision(std::span<const double> scores, std::span<const int> labels);

}  // namespace immunizer::common
