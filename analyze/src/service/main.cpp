// immunizer-analyze: `run` (the default) is the analyze service; `score` scores a file
// offline with the same detectors. Wiring only; see analyze/service.hpp.
#include <cstring>

#include "immunizer/analyze/models/score_command.hpp"
#include "immunizer/analyze/service.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/common/snapshots.hpp"

using namespace immunizer;

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "score") == 0) return analyze::score_command(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "run") == 0) {
    argv[1] = argv[0];
    --argc;
    ++argv;
  }
  return common::run_service(argc, argv, "analyze", 9102, [](common::ServiceContext& ctx) {
    auto cfg = analyze::AnalyzeConfig::from_config(ctx.config);
    const bool restore = ctx.config.get_bool("analyze.restore_snapshots", true);
    return [&ctx, cfg, restore] {
      common::KafkaMetrics metrics(*ctx.registry, "analyze");
      common::SystemClock clock;
      analyze::AnalyzeProcessor proc(cfg, ctx.topics, clock, *ctx.registry);
      if (restore) {
        const auto snaps = common::read_snapshots(ctx.kafka, ctx.topics.models, "analyze", std::chrono::seconds(30));
        ctx.log->info("restored {} of {} model snapshots", proc.restore(snaps), snaps.size());
      }
      auto producer = common::make_kafka_producer(ctx.kafka, "analyze", &metrics);
      auto snapshots = common::make_kafka_producer(ctx.kafka, "analyze-snapshots", &metrics, {{"message.max.bytes", "16000000"}});
      proc.set_snapshot_producer(snapshots.get());
      auto consumer = common::make_kafka_consumer(ctx.kafka, cfg.group, {ctx.topics.features, ctx.topics.feedback}, &metrics);
      common::StreamLoop loop(*consumer, *producer, proc,
                              {.service = "analyze", .deadletter_topic = ctx.topics.deadletter}, &metrics,
                              ctx.registry.get());
      loop.run(ctx.stop);
    };
  });
}
