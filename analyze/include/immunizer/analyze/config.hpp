// Settings of the analyze service (analyze.* keys), parsed and range-checked once at start-up.
// A plain value type; copy freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "immunizer/analyze/models/model_key_state.hpp"
#include "immunizer/common/config.hpp"

namespace immunizer::analyze {

struct AnalyzeConfig {
  DetectorConfig detector;
  size_t threads = 2;                     // scoring threads across model keys
  int64_t snapshot_interval_ms = 30'000;  // how often changed models are snapshotted
  std::string group = "immunizer-analyze";
  static AnalyzeConfig from_config(const common::Config& c);
};

}  // namespace immunizer::analyze
