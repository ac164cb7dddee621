// immunizer-monitor: call records -> feature vectors. Wiring only; see monitor/processor.hpp.
#include "immunizer/common/service.hpp"
#include "immunizer/common/stream_service.hpp"
#include "immunizer/monitor/processor.hpp"

using namespace immunizer;

int main(int argc, char** argv) {
  return common::run_service(argc, argv, "monitor", 9101, [](common::ServiceContext& ctx) {
    auto cfg = monitor::MonitorConfig::from_config(ctx.config);
    const bool restore = ctx.config.get_bool("monitor.restore_snapshots", true);
    const auto tuning = common::StreamTuning::from_config(ctx.config, "monitor");
    return [&ctx, cfg, restore, tuning] {
      common::KafkaMetrics metrics(*ctx.registry, "monitor");
      common::SystemClock clock;
      monitor::MonitorProcessor proc(cfg, ctx.topics, clock, *ctx.registry);
      const common::SnapshotHooks snapshots{
          "monitor", restore, [&](const auto& snaps) { return proc.restore(snaps); },
          [&](common::Producer* p) { proc.set_snapshot_producer(p); }};
      common::run_stream_service(ctx, proc, metrics, cfg.group, {ctx.topics.calls}, &snapshots,
                                 tuning);
    };
  });
}
