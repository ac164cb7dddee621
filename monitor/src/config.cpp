#include "immunizer/monitor/config.hpp"

#include <stdexcept>

namespace immunizer::monitor {

MonitorConfig MonitorConfig::from_config(const common::Config& c) {
  MonitorConfig m;
  auto& f = m.features;
  auto sz = [&](const char* key, size_t def, int64_t lo, int64_t hi) {
    return static_cast<size_t>(c.get_int(key, static_cast<int64_t>(def), lo, hi));
  };
  f.schema_freeze_records = static_cast<uint64_t>(
      c.get_int("monitor.schema_freeze_records", static_cast<int64_t>(f.schema_freeze_records), 1,
                1'000'000'000));
  f.max_paths_per_model = sz("monitor.max_paths_per_model", f.max_paths_per_model, 1, 4096);
  f.max_models = sz("monitor.max_models", f.max_models, 1, 10'000'000);
  f.max_value_bytes = sz("monitor.max_value_bytes", f.max_value_bytes, 16, 1 << 24);
  f.trigram_sketch_width = sz("monitor.trigram_sketch_width", f.trigram_sketch_width, 64, 1 << 20);
  f.trigram_sketch_depth = sz("monitor.trigram_sketch_depth", f.trigram_sketch_depth, 1, 4);
  f.enum_max_values = sz("monitor.enum_max_values", f.enum_max_values, 1, 1024);
  f.max_principals = sz("monitor.max_principals", f.max_principals, 16, 1'000'000);
  f.principal_features = c.get_bool("monitor.principal_features", f.principal_features);
  f.outlier_novelty = c.get_double("monitor.outlier_novelty", f.outlier_novelty, 0.5, 1e6);
  f.outlier_learn_every = static_cast<uint64_t>(
      c.get_int("monitor.outlier_learn_every", static_cast<int64_t>(f.outlier_learn_every), 1,
                1'000'000'000));
  f.principal_half_life_seconds = c.get_double("monitor.principal_half_life_seconds",
                                               f.principal_half_life_seconds, 0.1, 86400);
  try {
    m.features = sanitize(f);
  } catch (const std::invalid_argument& e) {
    c.error(std::string("monitor: ") + e.what());
  }
  m.snapshot_interval_ms =
      c.get_int("monitor.snapshot_interval_ms", m.snapshot_interval_ms, 1000, 86'400'000);
  m.group = c.get_string("monitor.group", m.group);
  m.max_vectors_per_message =
      static_cast<size_t>(c.get_int("monitor.max_vectors_per_message",
                                    static_cast<int64_t>(m.max_vectors_per_message), 1, 100'000));
  m.max_message_bytes = static_cast<size_t>(c.get_int(
      "monitor.max_message_bytes", static_cast<int64_t>(m.max_message_bytes), 16 << 10, 64 << 20));
  return m;
}

}  // namespace immunizer::monitor
