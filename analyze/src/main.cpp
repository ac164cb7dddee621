// immunizer-analyze: `run` (the default) is the analyze service; `score` scores a file
// offline with the same detectors. Wiring only; see analyze/processor.hpp.
#include <cstring>

#include "immunizer/analyze/models/score_command.hpp"
#include "immunizer/analyze/processor.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/common/stream_service.hpp"

using namespace immunizer;

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "score") == 0)
    return analyze::score_command(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "run") == 0) {
    argv[1] = argv[0];
    --argc;
    ++argv;
  }
  return common::run_service(argc, argv, "analyze", 9102, [](common::ServiceContext& ctx) {
    auto cfg = analyze::AnalyzeConfig::from_config(ctx.config);
    const bool restore = ctx.config.get_bool("analyze.restore_snapshots", true);
    const auto tuning = common::StreamTuning::from_config(ctx.config, "analyze");
    return [&ctx, cfg, restore, tuning] {
      common::KafkaMetrics metrics(*ctx.registry, "analyze");
      common::SystemClock clock;
      analyze::AnalyzeProcessor proc(cfg, ctx.topics, clock, *ctx.registry);
      const common::SnapshotHooks snapshots{
          "analyze", restore, [&](const auto& snaps) { return proc.restore(snaps); },
          [&](common::Producer* p) { proc.set_snapshot_producer(p); }};
      common::run_stream_service(ctx, proc, metrics, cfg.group,
                                 {ctx.topics.features, ctx.topics.feedback}, &snapshots, tuning);
    };
  });
}
