#include "immunizer/analyze/models/calibration.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace immunizer::analyze {

namespace {
constexpr double kTailFloor = 1e-300;
}

GpdFit GpdFit::fit(std::span<const double> scores, double peak_quantile, std::size_t min_peaks) {
  GpdFit g;
  std::vector<double> s(scores.begin(), scores.end());
  std::sort(s.begin(), s.end());
  const std::size_t n = s.size();
  if (n == 0) return g;
  std::size_t k =
      static_cast<std::size_t>(std::ceil((1.0 - peak_quantile) * static_cast<double>(n)));
  k = std::min(std::max(k, min_peaks), n / 2);
  if (k == 0) {
    g.u = s.back();
    return g;
  }
  g.u = s[n - k - 1];
  std::vector<double> y;
  for (std::size_t i = n - k; i < n; ++i)
    if (s[i] > g.u) y.push_back(s[i] - g.u);
  g.peaks = y.size();
  g.zeta = static_cast<double>(y.size()) / static_cast<double>(n);
  if (y.size() < std::max<std::size_t>(min_peaks / 2, 3)) return g;
  // Probability-weighted moments (Hosking & Wallis 1987): robust for a few dozen peaks.
  const double m = static_cast<double>(y.size());
  double a0 = 0, a1 = 0;
  for (std::size_t j = 0; j < y.size(); ++j) {
    a0 += y[j];
    a1 += y[j] * (m - 1 - static_cast<double>(j)) / (m - 1);
  }
  a0 /= m;
  a1 /= m;
  if (!(a0 > 0)) return g;
  const double d = a0 - 2 * a1;
  if (d > 0) {
    g.xi = std::clamp(2.0 - a0 / d, -0.5, 0.9);
    g.sigma = a0 * (1 - g.xi);  // mean excess of a GPD is sigma / (1 - xi)
  } else {
    g.xi = 0.9;
    g.sigma = a0 * 0.1;
  }
  g.valid = g.sigma > 0;
  return g;
}

double GpdFit::survival(double y) const {
  if (y <= 0) return 1.0;
  if (std::abs(xi) < 1e-9) return std::exp(-y / sigma);
  const double b = 1 + xi * y / sigma;
  if (b <= 0) return 0.0;
  return std::pow(b, -1.0 / xi);
}

double GpdFit::quantile(double risk) const {
  const double r = risk / zeta;  // conditional exceedance probability
  if (std::abs(xi) < 1e-9) return u - sigma * std::log(r);
  return u + sigma / xi * (std::pow(r, -xi) - 1);
}

void TailCalibrator::fit(std::span<const double> scores, double peak_quantile) {
  if (scores.empty()) throw std::invalid_argument("calibrator: no scores");
  std::vector<double> s(scores.begin(), scores.end());
  std::sort(s.begin(), s.end());
  const std::size_t k = std::min(kMaxKnots, s.size());
  knots_.resize(k);
  for (std::size_t i = 0; i < k; ++i) {
    const std::size_t at = k == 1 ? 0 : (i * (s.size() - 1) + (k - 1) / 2) / (k - 1);
    knots_[i] = s[at];
  }
  gpd_ = GpdFit::fit(s, peak_quantile);
}

double TailCalibrator::tail(double raw) const {
  if (knots_.empty()) return 1.0;
  if (gpd_.valid && raw > gpd_.u) {
    GpdFit g = gpd_;
    g.xi = std::max(g.xi, 0.0);
    return std::max(g.zeta * g.survival(raw - g.u), kTailFloor);
  }
  if (raw <= knots_.front()) return 1.0;
  const std::size_t k = knots_.size();
  if (raw >= knots_.back()) return 1.0 / static_cast<double>(std::max<std::size_t>(k, 2));
  // F(raw) by linear interpolation between the knots around raw.
  const auto it = std::upper_bound(knots_.begin(), knots_.end(), raw);
  const std::size_t hi = static_cast<std::size_t>(it - knots_.begin());
  const std::size_t lo = hi - 1;
  const double step = 1.0 / static_cast<double>(k - 1);
  const double frac =
      knots_[hi] > knots_[lo] ? (raw - knots_[lo]) / (knots_[hi] - knots_[lo]) : 0.0;
  const double cdf = (static_cast<double>(lo) + frac) * step;
  return std::max(1.0 - cdf, 1.0 / static_cast<double>(k));
}

double TailCalibrator::threshold(double risk) const {
  if (knots_.empty()) return 0.0;
  if (gpd_.valid && risk < gpd_.zeta) return gpd_.quantile(risk);
  const double p = std::clamp(1.0 - risk, 0.0, 1.0) * static_cast<double>(knots_.size() - 1);
  const auto lo = static_cast<std::size_t>(p);
  if (lo + 1 >= knots_.size()) return knots_.back();
  return knots_[lo] + (p - static_cast<double>(lo)) * (knots_[lo + 1] - knots_[lo]);
}

void TailCalibrator::write(ByteWriter& w) const {
  w.put_vector(knots_);
  w.put(gpd_.u);
  w.put(gpd_.sigma);
  w.put(gpd_.xi);
  w.put(gpd_.zeta);
  w.put<uint64_t>(gpd_.peaks);
  w.put<uint8_t>(gpd_.valid ? 1 : 0);
}

void TailCalibrator::read(ByteReader& r) {
  knots_ = r.get_vector<double>();
  gpd_.u = r.get<double>();
  gpd_.sigma = r.get<double>();
  gpd_.xi = r.get<double>();
  gpd_.zeta = r.get<double>();
  gpd_.peaks = r.get<uint64_t>();
  gpd_.valid = r.get<uint8_t>() != 0;
  if (!std::is_sorted(knots_.begin(), knots_.end()) || (gpd_.valid && !(gpd_.sigma > 0)))
    throw std::runtime_error("calibrator: corrupt");
}

double combine_tails(std::span<const double> tails, std::span<const double> weights) {
  double s = 0, wsum = 0;
  for (std::size_t i = 0; i < tails.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights[i];
    s += -w * std::log10(std::max(tails[i], kTailFloor));
    wsum += w;
  }
  return wsum > 0 ? s / wsum : 0.0;
}

}  // namespace immunizer::analyze
