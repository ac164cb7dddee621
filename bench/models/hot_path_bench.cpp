// bench/models/hot_path_bench: analyze's per-record model cost without Kafka. Ten model keys
// of 154 features (the pipeline benchmark's shape) learn their grace period, then are scored
// in turn, a block of rows per key as the processor does (ModelKeyState::precompute, then
// observe() per row), with refits off; then the cost of one refit of a full reservoir.
// Prints thread CPU time per vector for the whole observe() and for each detector alone, the
// refit cost amortised over DetectorConfig::refit_every, and a checksum of the verdicts (the
// same binary inputs give the same checksum: a change of it means the scores changed).
// Usage: hot_path_bench [--keys 10] [--features 154] [--rows 20000] [--block 50] [--fits 3]
#include <time.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "immunizer/analyze/models/model_key_state.hpp"

using namespace immunizer::analyze;

namespace {

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Args {
  std::size_t keys = 10, features = 154, rows = 20000, block = 50, fits = 3;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    std::size_t* field = k == "--keys"       ? &a.keys
                         : k == "--features" ? &a.features
                         : k == "--rows"     ? &a.rows
                         : k == "--block"    ? &a.block
                         : k == "--fits"     ? &a.fits
                                             : nullptr;
    if (field == nullptr || i + 1 >= argc) {
      std::fprintf(stderr,
                   "usage: hot_path_bench [--keys N] [--features N] [--rows N per key] "
                   "[--block N] [--fits N]\n");
      std::exit(2);
    }
    *field = std::strtoull(argv[++i], nullptr, 10);
  }
  if (a.keys == 0 || a.features < 4 || a.rows == 0 || a.block == 0) std::exit(2);
  return a;
}

// A key's traffic: the kinds of features the monitor writes (continuous surprises, small
// counts, rare flags, features that never vary), correlated in small groups through a shared
// latent value, and one row in 200 far off (a would-be attack).
class Traffic {
 public:
  Traffic(std::size_t features, uint64_t seed) : rng_(seed), width_(features) {}
  void next(double* out) {
    const double latent = gauss_(rng_);
    const bool odd = uni_(rng_) < 0.005;
    for (std::size_t j = 0; j < width_; ++j) {
      const std::size_t kind = j % 8;
      double v = 0;
      if (kind < 3)
        v = 0.6 * latent + gauss_(rng_) + static_cast<double>(j % 5);
      else if (kind < 5)
        v = std::floor(std::exp(0.5 * gauss_(rng_) + 0.3 * latent) * 3.0);
      else if (kind == 5)
        v = uni_(rng_) < 0.02 ? 1.0 : 0.0;
      if (odd && j % 17 == 0) v += 25.0 + 10.0 * uni_(rng_);
      out[j] = v;
    }
  }

 private:
  std::mt19937_64 rng_;
  std::normal_distribution<double> gauss_;
  std::uniform_real_distribution<double> uni_;
  std::size_t width_;
};

struct Run {
  double cpu_s = 0;
  double checksum = 0;
  std::size_t alarms = 0;
};

// Scores rows x keys vectors, blocks of `block` rows per key in turn, as analyze does.
Run score_all(std::vector<ModelKeyState>& keys, std::vector<Traffic>& traffic, const Args& a,
              const FeatureNames& names) {
  std::vector<double> buf(a.block * a.features);
  std::vector<const double*> rows(a.block);
  Run r;
  for (std::size_t done = 0; done < a.rows; done += a.block) {
    const std::size_t n = std::min(a.block, a.rows - done);
    for (std::size_t k = 0; k < keys.size(); ++k) {
      for (std::size_t i = 0; i < n; ++i) {
        rows[i] = buf.data() + i * a.features;
        traffic[k].next(buf.data() + i * a.features);
      }
      const double t0 = thread_cpu_s();
      keys[k].precompute({rows.data(), n}, a.features, 1);
      for (std::size_t i = 0; i < n; ++i) {
        const Verdict v = keys[k].observe({rows[i], a.features}, names, 1);
        r.checksum += v.combined;
        r.alarms += v.alarm ? 1 : 0;
      }
      r.cpu_s += thread_cpu_s() - t0;
    }
  }
  return r;
}

// Detector alone: CPU seconds to score `rows` fresh vectors with `fn` (one call per row).
template <typename Fn>
double detector_only(Traffic& traffic, const Args& a, Fn&& fn) {
  std::vector<double> x(a.features);
  double cpu = 0;
  volatile double sink = 0;
  for (std::size_t i = 0; i < a.rows; ++i) {
    traffic.next(x.data());
    const double t0 = thread_cpu_s();
    sink = sink + fn(x);
    cpu += thread_cpu_s() - t0;
  }
  return cpu;
}

Matrix reservoir(Traffic& traffic, const Args& a, std::size_t rows) {
  Matrix m(rows, a.features);
  for (std::size_t r = 0; r < rows; ++r) traffic.next(m.values.data() + r * a.features);
  // The reservoir holds float values: fits see exactly those.
  for (double& v : m.values) v = static_cast<float>(v);
  return m;
}

void print_fits(const Args& a, const DetectorConfig& cfg) {
  Traffic traffic(a.features, 999);
  const Matrix data = reservoir(traffic, a, cfg.reservoir_size);
  double forest_s = 0, ae_s = 0;
  for (std::size_t f = 0; f < a.fits; ++f) {
    double t0 = thread_cpu_s();
    const auto forest = IsolationForest::fit(data, {cfg.trees, cfg.sample_size, 0, 0, f, 1});
    std::vector<double> s(data.rows);
    forest.score_batch(data, s);
    forest_s += thread_cpu_s() - t0;
    t0 = thread_cpu_s();
    const auto ae = AutoencoderEnsemble::fit(
        data,
        {cfg.ae_max_group, cfg.ae_hidden_ratio, cfg.ae_learning_rate, cfg.ae_min_updates, 50, f});
    ae.score_batch(data, s);
    ae_s += thread_cpu_s() - t0;
  }
  const double fits = static_cast<double>(a.fits);
  const double per_fit = (forest_s + ae_s) / fits;
  std::printf(
      "fit afresh of %zu rows x %zu features (%zu fits): forest %.1f ms, autoencoder %.1f ms, "
      "together %.1f ms = %.2f us a record at refit_every %zu\n",
      data.rows, a.features, a.fits, forest_s / fits * 1e3, ae_s / fits * 1e3, per_fit * 1e3,
      per_fit * 1e6 / static_cast<double>(cfg.refit_every), cfg.refit_every);
  // A refit as the service makes it: the autoencoders start from the last fit's (on a new
  // sample of the same traffic), ae_refit_updates SGD steps.
  AutoencoderParams ap{
      cfg.ae_max_group,    cfg.ae_hidden_ratio, cfg.ae_learning_rate, cfg.ae_min_updates, 50, 0,
      cfg.ae_refit_updates};
  AutoencoderEnsemble last = AutoencoderEnsemble::fit(data, ap);
  double warm_s = 0;
  for (std::size_t f = 0; f < a.fits; ++f) {
    const Matrix next = reservoir(traffic, a, cfg.reservoir_size);
    std::vector<double> s(next.rows);
    const double t0 = thread_cpu_s();
    ap.seed = f + 1;
    last = AutoencoderEnsemble::fit(next, ap, &last);
    last.score_batch(next, s);
    warm_s += thread_cpu_s() - t0;
  }
  std::printf(
      "refit (autoencoders warm-started, %d SGD steps): autoencoder %.1f ms, with the "
      "forest %.1f ms = %.2f us a record at refit_every %zu\n",
      cfg.ae_refit_updates, warm_s / fits * 1e3, (forest_s + warm_s) / fits * 1e3,
      (forest_s + warm_s) / fits * 1e6 / static_cast<double>(cfg.refit_every), cfg.refit_every);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  DetectorConfig cfg;
  DetectorConfig scoring = cfg;
  scoring.refit_every = 0;  // scoring alone; the refit cost is measured separately
  auto names_vec = std::make_shared<std::vector<std::string>>();
  for (std::size_t j = 0; j < a.features; ++j) names_vec->push_back("f" + std::to_string(j));
  const FeatureNames names = names_vec;

  std::vector<ModelKeyState> keys;
  std::vector<Traffic> traffic;
  std::vector<double> x(a.features);
  for (std::size_t k = 0; k < a.keys; ++k) {
    keys.emplace_back(scoring);
    traffic.emplace_back(a.features, 1000 + k);
    while (keys[k].state() != ModelState::kActive) {
      traffic[k].next(x.data());
      keys[k].observe(x, names, 1);
    }
  }
  const Run run = score_all(keys, traffic, a, names);
  const double n = static_cast<double>(a.rows * a.keys);
  std::printf(
      "%zu keys x %zu features, blocks of %zu rows: observe() %.3f us a vector (%zu "
      "alarms), checksum %.17g\n",
      a.keys, a.features, a.block, run.cpu_s * 1e6 / n, run.alarms, run.checksum);

  // Each detector of key 0 alone, one row at a time (no tree-major blocks).
  IsolationForest forest;
  AutoencoderEnsemble ae;
  {
    Traffic t(a.features, 77);
    const Matrix data = reservoir(t, a, cfg.grace_records);
    forest = IsolationForest::fit(data, {cfg.trees, cfg.sample_size, 0, 0, 0, 1});
    ae = AutoencoderEnsemble::fit(data, {cfg.ae_max_group, cfg.ae_hidden_ratio,
                                         cfg.ae_learning_rate, cfg.ae_min_updates, 50, 0});
  }
  Traffic t1(a.features, 5), t2(a.features, 5);
  const double forest_s = detector_only(t1, a, [&](const auto& v) { return forest.score(v); });
  const double ae_s = detector_only(t2, a, [&](const auto& v) { return ae.score(v); });
  std::printf(
      "one key's detectors alone, row by row: iforest %.3f us, autoencoder %.3f us a "
      "vector\n",
      forest_s * 1e6 / static_cast<double>(a.rows), ae_s * 1e6 / static_cast<double>(a.rows));
  if (a.fits > 0) print_fits(a, cfg);
  return 0;
}
