// How long a stage that keeps snapshots (monitor, analyze) waits at start-up to read them back,
// from its `<stage>.restore_snapshots` key (default true): StageSetup::restore_timeout.
// A pure function of the configuration; safe from any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "immunizer/common/config.hpp"

namespace immunizer::common {

// 30 s when `<stage>.restore_snapshots` is true, 0 (start without snapshots) when false; a
// malformed value is a ConfigError naming the key (recorded instead in checking mode).
inline std::chrono::milliseconds snapshot_restore_timeout(const Config& config,
                                                          std::string_view stage) {
  constexpr std::chrono::seconds kRestoreWait{30};
  const bool restore = config.get_bool(std::string(stage) + ".restore_snapshots", true);
  return restore ? std::chrono::milliseconds(kRestoreWait) : std::chrono::milliseconds(0);
}

}  // namespace immunizer::common
