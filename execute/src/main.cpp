// immunizer-execute: plans -> signed directives to effectors, audit trail on <prefix>actions,
// gRPC EffectorControl + Operations. Wiring only; see execute/dispatcher.hpp.
#include "immunizer/common/service.hpp"
#include "immunizer/common/snapshots.hpp"
#include "immunizer/common/stream_loop.hpp"
#include "immunizer/execute/control_server.hpp"
#include "immunizer/execute/dispatcher.hpp"
#include "immunizer/execute/processor.hpp"

using namespace immunizer;

int main(int argc, char** argv) {
  return common::run_service(argc, argv, "execute", 9104, [](common::ServiceContext& ctx) {
    // Read every key first, so bad configuration fails before any connection is made.
    auto cfg = execute::ExecuteConfig::from_config(ctx.config);
    return [&ctx, cfg] {
      common::KafkaMetrics metrics(*ctx.registry, "execute");
      common::SystemClock clock;
      execute::Dispatcher dispatcher(cfg, ctx.topics, clock, *ctx.registry);
      // Take back what a previous run had in force before any effector connects and resyncs.
      if (cfg.restore_timeout_ms > 0) {
        ctx.starting("restoring active actions");
        dispatcher.restore(
            common::read_snapshots(ctx.kafka, ctx.topics.models, execute::kSnapshotKind,
                                   std::chrono::milliseconds(cfg.restore_timeout_ms)));
      }
      // Active-action state on its own producer: a manual Block answers once it is acknowledged.
      auto state_producer = common::make_kafka_producer(ctx.kafka, "execute-state", &metrics);
      dispatcher.set_state_sink(state_producer.get(), std::chrono::seconds(5));
      execute::ControlServer server(dispatcher, cfg, ctx.registry.get());
      server.start();
      auto producer = common::make_kafka_producer(ctx.kafka, "execute", &metrics);
      auto consumer =
          common::make_kafka_consumer(ctx.kafka, cfg.group, {ctx.topics.plans}, &metrics);
      execute::ExecuteProcessor proc(dispatcher);
      common::StreamLoop loop(*consumer, *producer, proc,
                              {.service = "execute", .deadletter_topic = ctx.topics.deadletter},
                              &metrics, ctx.registry.get());
      ctx.ready();
      loop.run(ctx.stop);  // the loop's tick() also expires TTLs
      server.stop();
      // Events from acks that arrived while the loop was draining.
      dispatcher.drain(*producer);
      if (!producer->flush(std::chrono::seconds(10)).ok())
        ctx.log->error("final flush of action events incomplete");
      if (!dispatcher.flush_state())
        ctx.log->error("final flush of active-action state incomplete");
    };
  });
}
