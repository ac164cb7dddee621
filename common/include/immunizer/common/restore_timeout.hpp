// How long a stage that keeps snapshots (monitor, analyze) waits at start-up to read them back,
// from its `<stage>.restore_snapshots` key (default true): StageSetup::restore_timeout; and the
// setup such a stage shares (snapshotting_setup). Pure functions of the configuration.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "immunizer/common/config.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/common/stage.hpp"

namespace immunizer::common {

// 30 s when `<stage>.restore_snapshots` is true, 0 (start without snapshots) when false; a
// malformed value is a ConfigError naming the key (recorded instead in checking mode).
inline std::chrono::milliseconds snapshot_restore_timeout(const Config& config,
                                                          std::string_view stage) {
  constexpr std::chrono::seconds kRestoreWait{30};
  const bool restore = config.get_bool(std::string(stage) + ".restore_snapshots", true);
  return restore ? std::chrono::milliseconds(kRestoreWait) : std::chrono::milliseconds(0);
}

// Stage::setup of a stage that keeps snapshots: its Config read (Config::from_config) with
// `<stage>.restore_snapshots`, nothing built when checking the configuration found errors,
// then Processor(cfg, topics, clock, registry) consuming as cfg.group.
template <typename StageConfig, typename Processor>
StageSetup snapshotting_setup(ServiceContext& ctx, std::string_view stage) {
  const auto cfg = StageConfig::from_config(ctx.config);
  const auto restore = snapshot_restore_timeout(ctx.config, stage);
  ctx.config.stop_if_errors();  // --check-config: build nothing on a bad value
  return StageSetup{std::make_unique<Processor>(cfg, ctx.topics, ctx.clock, *ctx.registry),
                    cfg.group, restore};
}

}  // namespace immunizer::common
