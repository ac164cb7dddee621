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

double roc_auc(std::span<const double> scores, std::span<const int> labels) {
  const std::size_t n = scores.size();
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(),
            [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  double rank_sum = 0, pos = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && scores[idx[j]] == scores[idx[i]]) ++j;
    const double avg_rank = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2;  // 1-based
    for (std::size_t k = i; k < j; ++k)
      if (labels[idx[k]]) {
        rank_sum += avg_rank;
        ++pos;
      }
    i = j;
  }
  const double neg = static_cast<double>(n) - pos;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

double r_precision(std::span<const double> scores, std::span<const int> labels) {
  const auto r = static_cast<std::size_t>(std::count(labels.begin(), labels.end(), 1));
  if (r == 0) return std::numeric_limits<double>::quiet_NaN();
  std::vector<std::size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(r), idx.end(),
                    [&](std::size_t a, std::size_t b) {
                      return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
                    });
  std::size_t hits = 0;
  for (std::size_t i = 0; i < r; ++i) hits += labels[idx[i]] == 1;
  return static_cast<double>(hits) / static_cast<double>(r);
}

}  // namespace immunizer::analyze
