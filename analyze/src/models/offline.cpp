#include "immunizer/analyze/models/offline.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "immunizer/analyze/models/calibration.hpp"

namespace immunizer::analyze {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

std::vector<double> score_offline(const Matrix& train, const Matrix& test, const OfflineParams& p,
                                  OfflineTimings* timings) {
  using clock = std::chrono::steady_clock;
  OfflineTimings t;
  std::vector<double> out(test.rows, 0.0);
  const bool forest = p.detector != DetectorKind::kAutoencoder;
  const bool ae = p.detector != DetectorKind::kIForest;
  const bool calibrate = forest && ae;

  std::vector<double> tmp(train.rows), s(test.rows);
  auto start = clock::now();
  auto fp = p.forest;
  fp.seed = p.seed;
  fp.mixed_sample_size = calibrate ? p.ensemble_mixed_sample_size : 0;
  IsolationForest f;
  TailCalibrator fcal, acal;
  if (forest) {
    f = IsolationForest::fit(train, fp);
    if (calibrate) {
      f.score_batch(train, tmp, fp.threads);
      fcal.fit(tmp);
    }
  }
  AutoencoderEnsemble a;
  if (ae) {
    auto ap = p.autoencoder;
    ap.seed = p.seed;
    a = AutoencoderEnsemble::fit(train, ap);
    if (calibrate) {
      a.score_batch(train, tmp);
      acal.fit(tmp);
    }
  }
  t.fit_seconds = since(start);

  start = clock::now();
  if (forest) {
    f.score_batch(test, s, fp.threads);
    for (std::size_t i = 0; i < s.size(); ++i)
      out[i] = calibrate ? -(1 - p.ae_weight) * std::log10(fcal.tail(s[i])) : s[i];
  }
  if (ae) {
    a.score_batch(test, s);
    for (std::size_t i = 0; i < s.size(); ++i)
      out[i] += calibrate ? -p.ae_weight * std::log10(acal.tail(s[i])) : s[i];
  }
  t.score_seconds = since(start);
  if (timings) *timings = t;
  return out;
}

}  // namespace immunizer::analyze
