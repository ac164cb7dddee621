#include "immunizer/analyze/models/calibration.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace immunizer::analyze {
namespace {

std::vector<double> exponential(std::size_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::exponential_distribution<double> d(1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

// GPD(sigma = 1, xi) by inversion: P(X > x) = (1 + xi x)^(-1/xi).
std::vector<double> pareto(std::size_t n, double xi, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = (std::pow(1.0 - u(gen), -xi) - 1.0) / xi;
  return v;
}

TEST(Gpd, RecoversExponentialShape) {
  const auto g = GpdFit::fit(exponential(200000, 1), 0.98);
  ASSERT_TRUE(g.valid);
  EXPECT_NEAR(g.xi, 0.0, 0.08);
  EXPECT_NEAR(g.sigma, 1.0, 0.1);
  EXPECT_NEAR(g.zeta, 0.02, 0.001);
}

TEST(EvtThreshold, ExponentialTailQuantile) {
  TailCalibrator c;
  c.fit(exponential(100000, 2));
  // True quantile: P(X > t) = e^-t = 1e-5 -> t = 11.51, beyond every training point but a few.
  EXPECT_NEAR(c.threshold(1e-5), std::log(1e5), 1.0);
  EXPECT_NEAR(c.threshold(1e-3), std::log(1e3), 0.3);
  EXPECT_NEAR(c.tail(std::log(1e3)), 1e-3, 3e-4);
}

TEST(EvtThreshold, HeavyTailQuantile) {
  TailCalibrator c;
  c.fit(pareto(100000, 0.5, 3));
  const double truth = (std::pow(1e-4, -0.5) - 1.0) / 0.5;  // 198
  EXPECT_NEAR(c.threshold(1e-4), truth, 0.25 * truth);
  EXPECT_GT(c.gpd().xi, 0.3);
}

TEST(EvtThreshold, BeatsTheEmpiricalMaximumOnSmallSamples) {
  // With 1000 training scores the empirical quantile cannot go past the maximum; EVT can.
  const auto s = exponential(1000, 4);
  TailCalibrator c;
  c.fit(s);
  EXPECT_GT(c.threshold(1e-5), *std::max_element(s.begin(), s.end()));
  EXPECT_NEAR(c.threshold(1e-5), std::log(1e5), 6.0);  // 20 peaks: a rough but finite guess
}

TEST(TailCalibrator, MonotoneAndNeverSaturates) {
  TailCalibrator c;
  c.fit(exponential(5000, 5));
  double prev = 2.0;
  for (double x = -1; x < 60; x += 0.25) {
    const double t = c.tail(x);
    EXPECT_LE(t, prev) << x;
    EXPECT_GT(t, 0.0);
    prev = t;
  }
  EXPECT_LT(c.tail(40), c.tail(30));  // far beyond the data, still ordered
  EXPECT_DOUBLE_EQ(c.tail(-5), 1.0);
  EXPECT_NEAR(c.tail(1.0), std::exp(-1.0), 0.03);
}

TEST(TailCalibrator, ConstantScores) {
  TailCalibrator c;
  const std::vector<double> s(100, 0.5);
  c.fit(s);
  EXPECT_DOUBLE_EQ(c.tail(0.4), 1.0);
  EXPECT_LT(c.tail(0.6), 0.1);
  EXPECT_GE(c.threshold(1e-3), 0.5);
}

TEST(TailCalibrator, WriteReadRoundTrip) {
  TailCalibrator c, d;
  c.fit(exponential(3000, 6));
  ByteWriter w;
  c.write(w);
  ByteReader r(w.bytes());
  d.read(r);
  for (double x : {0.1, 1.0, 5.0, 20.0}) EXPECT_EQ(c.tail(x), d.tail(x));
  EXPECT_EQ(c.threshold(1e-4), d.threshold(1e-4));
}

TEST(CombineTails, MeanSurprise) {
  const double t[] = {1e-2, 1e-4};
  EXPECT_DOUBLE_EQ(combine_tails(t), 3.0);
  EXPECT_DOUBLE_EQ(combine_tails({}), 0.0);
}

}  // namespace
}  // namespace immunizer::analyze
