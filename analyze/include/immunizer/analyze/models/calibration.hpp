// Calibration of raw detector scores into tail probabilities, and extreme-value thresholds:
// the body of the training distribution is kept as quantile knots, the tail above a high
// quantile u is a generalised Pareto fit (peaks over threshold, probability-weighted moments).
// Immutable after fit(): const methods are safe from many threads. Owns its knots.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "immunizer/common/byte_codec.hpp"

namespace immunizer::analyze {

// Model snapshots are encoded with the common snapshot codec (little-endian, bounds-checked).
using common::ByteReader;
using common::ByteWriter;

// Generalised Pareto distribution of the excesses over u: P(S > u + y | S > u).
struct GpdFit {
  double u = 0;      // peak threshold (a high empirical quantile of the training scores)
  double sigma = 1;  // scale > 0
  double xi = 0;     // shape, clamped to [-0.5, 0.9]
  double zeta = 0;   // fraction of training scores above u
  std::size_t peaks = 0;
  bool valid = false;  // false when there were too few distinct peaks to fit

  // Fits the excesses of the scores above their peak_quantile (at least min_peaks points).
  static GpdFit fit(std::span<const double> scores, double peak_quantile,
                    std::size_t min_peaks = 10);
  // P(S > u + y | S > u) for y >= 0 under the fitted shape.
  double survival(double y) const;
  // The score exceeded with probability risk (risk < zeta); from the fitted shape.
  double quantile(double risk) const;
};

class TailCalibrator {
 public:
  static constexpr std::size_t kMaxKnots = 512;

  // scores: the detector's scores of its own training data (any order, not empty).
  void fit(std::span<const double> scores, double peak_quantile = 0.98);
  bool fitted() const { return !knots_.empty(); }

  // Tail probability P(S >= raw) under the training distribution, continuous and strictly
  // decreasing above u (extrapolated with shape max(xi, 0) so rankings never saturate).
  double tail(double raw) const;
  // Threshold with P(S >= t) = risk: EVT quantile in the tail, empirical in the body.
  double threshold(double risk) const;
  const GpdFit& gpd() const { return gpd_; }

  std::size_t memory_bytes() const { return sizeof(*this) + knots_.capacity() * sizeof(double); }
  void write(ByteWriter& w) const;
  void read(ByteReader& r);  // throws on corrupt input

 private:
  std::vector<double> knots_;  // sorted quantiles at probabilities k / (K - 1)
  GpdFit gpd_;
};

// Combines calibrated evidence: the weighted mean over detectors of -log10(tail); 3 means
// "as rare as one in a thousand training vectors". Weights need not sum to one; empty
// weights mean equal weights.
double combine_tails(std::span<const double> tails, std::span<const double> weights = {});

}  // namespace immunizer::analyze
