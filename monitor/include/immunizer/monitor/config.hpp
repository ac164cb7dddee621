// Settings of the monitor service (monitor.* keys), parsed and range-checked once at start-up.
// A plain value type; copy freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "immunizer/common/config.hpp"
#include "immunizer/monitor/features.hpp"

namespace immunizer::monitor {

struct MonitorConfig {
  FeatureConfig features;
  // A FeatureVectorBatch holds at most this many rows and about this many bytes (a model key
  // with more vectors in one consumed batch gets several messages).
  size_t max_vectors_per_message = 500;
  size_t max_message_bytes = 512 << 10;
  int64_t snapshot_interval_ms = 30'000;
  std::string group = "immunizer-monitor";
  static MonitorConfig from_config(const common::Config& c);
};

}  // namespace immunizer::monitor
