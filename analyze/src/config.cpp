#include "immunizer/analyze/config.hpp"

#include <cstdint>

namespace immunizer::analyze {

AnalyzeConfig AnalyzeConfig::from_config(const common::Config& c) {
  AnalyzeConfig a;
  auto& d = a.detector;
  const auto det =
      c.get_enum("analyze.detector", to_string(d.detector), {"iforest", "autoencoder", "ensemble"});
  d.detector = *parse_detector(det);
  d.trees = static_cast<int>(c.get_int("analyze.trees", d.trees, 1, 10'000));
  d.sample_size = static_cast<int>(c.get_int("analyze.sample_size", d.sample_size, 2, 1 << 20));
  d.seed =
      static_cast<uint64_t>(c.get_int("analyze.seed", static_cast<int64_t>(d.seed), 0, INT64_MAX));
  d.grace_records = static_cast<size_t>(
      c.get_int("analyze.grace_records", static_cast<int64_t>(d.grace_records), 16, 100'000'000));
  d.refit_every = static_cast<size_t>(
      c.get_int("analyze.refit_every", static_cast<int64_t>(d.refit_every), 0, 1'000'000'000));
  d.reservoir_size = static_cast<size_t>(
      c.get_int("analyze.reservoir_size", static_cast<int64_t>(d.reservoir_size), 16, 10'000'000));
  d.risk = c.get_double("analyze.risk", d.risk, 1e-12, 0.5);
  if (c.has("analyze.fixed_threshold"))
    d.fixed_threshold = c.get_double("analyze.fixed_threshold", 0, 0, 1e9);
  d.feedback_share = c.get_double("analyze.feedback_share", d.feedback_share, 0, 0.5);
  d.top_features = static_cast<size_t>(
      c.get_int("analyze.top_features", static_cast<int64_t>(d.top_features), 1, 100));
  d.background_refit = c.get_bool("analyze.background_refit", d.background_refit);
  a.threads =
      static_cast<size_t>(c.get_int("analyze.threads", static_cast<int64_t>(a.threads), 1, 256));
  a.snapshot_interval_ms =
      c.get_int("analyze.snapshot_interval_ms", a.snapshot_interval_ms, 1000, 86'400'000);
  a.group = c.get_string("analyze.group", a.group);
  return a;
}

}  // namespace immunizer::analyze
