// immunizer-monitor: call records -> feature vectors. Wiring only; see monitor/service.hpp.
#include "immunizer/common/service.hpp"
#include "immunizer/common/snapshots.hpp"
#include "immunizer/monitor/service.hpp"

using namespace immunizer;

int main(int argc, char** argv) {
  return common::run_service(argc, argv, "monitor", 9101, [](common::ServiceContext& ctx) {
    auto cfg = monitor::MonitorConfig::from_config(ctx.config);
    const bool restore = ctx.config.get_bool("monitor.restore_snapshots", true);
    return [&ctx, cfg, restore] {
      common::KafkaMetrics metrics(*ctx.registry, "monitor");
      common::SystemClock clock;
      monitor::MonitorProcessor proc(cfg, ctx.topics, clock, *ctx.registry);
      if (restore) {
        const auto snaps = common::read_snapshots(ctx.kafka, ctx.topics.models, "monitor", std::chrono::seconds(30));
        ctx.log->info("restored {} of {} monitor snapshots", proc.restore(snaps), snaps.size());
      }
      auto producer = common::make_kafka_producer(ctx.kafka, "monitor", &metrics);
      auto snapshots = common::make_kafka_producer(ctx.kafka, "monitor-snapshots", &metrics, {{"message.max.bytes", "16000000"}});
      proc.set_snapshot_producer(snapshots.get());
      auto consumer = common::make_kafka_consumer(ctx.kafka, cfg.group, {ctx.topics.calls}, &metrics);
      common::StreamLoop loop(*consumer, *producer, proc,
                              {.service = "monitor", .deadletter_topic = ctx.topics.deadletter}, &metrics,
                              ctx.registry.get());
      loop.run(ctx.stop);
    };
  });
}
