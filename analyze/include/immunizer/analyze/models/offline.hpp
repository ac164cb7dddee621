// Offline (batch) use of the detectors: fit on a training matrix, score another, and the
// evaluation metrics. Used by the `score` command and bench/models.
// Pure functions; no shared state; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "immunizer/analyze/models/autoencoder.hpp"
#include "immunizer/analyze/models/isolation_forest.hpp"
#include "immunizer/analyze/models/matrix.hpp"
#include "immunizer/analyze/models/model_key_state.hpp"
#include "immunizer/common/ranking_metrics.hpp"

namespace immunizer::analyze {

// The detector a user gets without choosing one (score command and bench).
inline constexpr DetectorKind kDefaultOfflineDetector = DetectorKind::kEnsemble;

struct OfflineParams {
  DetectorKind detector = kDefaultOfflineDetector;
  uint64_t seed = 0;
  ForestParams forest;  // seed is taken from above; mixed_sample_size ignored for kIForest
  int ensemble_mixed_sample_size = DetectorConfig{}.mixed_sample_size;
  double ae_weight = DetectorConfig{}.ae_weight;  // ensemble: share of the autoencoder
  AutoencoderParams autoencoder;                  // seed is taken from above
};

struct OfflineTimings {
  double fit_seconds = 0;    // fitting (and, for the ensemble, calibrating on the training data)
  double score_seconds = 0;  // scoring the test matrix
};

// Scores of test's rows, higher = more anomalous: the raw score of a single detector, or
// for the ensemble the weighted mean -log10 tail probability of both (calibrated on train),
// exactly as ModelKeyState combines them.
std::vector<double> score_offline(const Matrix& train, const Matrix& test, const OfflineParams& p,
                                  OfflineTimings* timings = nullptr);

// The evaluation metrics every evaluation shares (common/ranking_metrics.hpp): AUC with ties
// counted half, R-precision with ties at the cut shared in proportion.
using common::r_precision;
using common::roc_auc;

}  // namespace immunizer::analyze
