// Settings of the monitor service (monitor.* keys), parsed and range-checked once at start-up.
// A plain value type; copy freely.
#pragma once

#include <cstdint>
#include <string>

#include "immunizer/common/config.hpp"
#include "immunizer/monitor/features.hpp"

namespace immunizer::monitor {

struct MonitorConfig {
  FeatureConfig features;
  int64_t snapshot_interval_ms = 30'000;
  std::string group = "immunizer-monitor";
  static MonitorConfig from_config(const common::Config& c);
};

}  // namespace immunizer::monitor
