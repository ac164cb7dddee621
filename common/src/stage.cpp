#include "immunizer/common/stage.hpp"

#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>

#include "immunizer/common/config.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/common/snapshots.hpp"
#include "immunizer/common/stream_loop.hpp"

namespace immunizer::common {

namespace {

// What one run of a stage owns. The processor is declared last so that it goes first: a
// processor's servers (execute's gRPC server) may still write to the producers while they
// stop.
struct StageRun {
  std::string group;
  std::chrono::milliseconds restore_timeout{0};
  std::optional<StreamTuning> tuning;  // set for tunable stages
  std::unique_ptr<Producer> snapshot_out;
  std::unique_ptr<Producer> out;
  std::unique_ptr<Consumer> in;
  std::unique_ptr<StageProcessor> processor;
};

std::string topic_list(const std::vector<std::string Topics::*>& which, const Topics& topics) {
  std::string s;
  for (const auto t : which) s += (s.empty() ? "" : ", ") + topics.*t;
  return s.empty() ? "nothing" : s;
}

void run_stream(ServiceContext& ctx, const Stage& stage, StageRun& run) {
  StageProcessor& proc = *run.processor;
  KafkaMetrics& metrics = *ctx.kafka_metrics;
  const std::string kind(stage.snapshots.kind);
  if (!kind.empty()) {
    if (run.restore_timeout.count() > 0) {
      ctx.starting("restoring " + kind + " snapshots");
      const auto snaps = read_snapshots(ctx.kafka, ctx.topics.models, kind, run.restore_timeout);
      ctx.log->info("restored {} of {} {} snapshots", proc.restore(snaps), snaps.size(), kind);
    }
    run.snapshot_out = make_kafka_producer(ctx.kafka, ctx.name + "-snapshots", &metrics,
                                           {{"message.max.bytes", "16000000"}});
    proc.set_snapshot_producer(run.snapshot_out.get());
  }
  proc.start(ctx);
  std::map<std::string, std::string> producer_props, consumer_props;
  StreamLoopOptions options{.service = ctx.name, .deadletter_topic = ctx.topics.deadletter};
  if (run.tuning) {
    producer_props["linger.ms"] = std::to_string(run.tuning->linger_ms);
    consumer_props["fetch.wait.max.ms"] = std::to_string(run.tuning->fetch_wait_max_ms);
    options.max_batch = run.tuning->max_batch;
    options.poll_timeout = std::chrono::milliseconds(run.tuning->poll_timeout_ms);
  }
  run.out = make_kafka_producer(ctx.kafka, ctx.name, &metrics, producer_props);
  std::vector<std::string> inputs;
  for (const auto t : stage.inputs) inputs.push_back(ctx.topics.*t);
  run.in = make_kafka_consumer(ctx.kafka, run.group, inputs, &metrics, consumer_props);
  if (!stage.commits) run.in = std::make_unique<NonCommittingConsumer>(std::move(run.in));
  if (!kind.empty() && run.restore_timeout.count() > 0)
    options.on_partitions_gained = [&ctx, &proc, &run, kind] {
      // A rebalance moved keys here: their latest snapshots (written by the member that held
      // them) replace nothing this member changed since.
      const auto snaps = read_snapshots(ctx.kafka, ctx.topics.models, kind, run.restore_timeout);
      ctx.log->info("partitions gained in a rebalance: restored {} of {} {} snapshots",
                    proc.restore(snaps), snaps.size(), kind);
    };
  StreamLoop loop(*run.in, *run.out, proc, options, &metrics, ctx.registry.get());
  ctx.log->info("consuming {} as group '{}'{}; writing {}", topic_list(stage.inputs, ctx.topics),
                run.group, stage.commits ? "" : " (never committed)",
                topic_list(stage.outputs, ctx.topics));
  ctx.ready();
  loop.run(ctx.stop);
  proc.stop(*run.out);
}

}  // namespace

StreamTuning StreamTuning::from_config(const Config& c, const std::string& service) {
  StreamTuning t;
  t.max_batch = static_cast<size_t>(
      c.get_int(service + ".max_batch", static_cast<int64_t>(t.max_batch), 1, 100'000));
  t.poll_timeout_ms = c.get_int(service + ".poll_timeout_ms", t.poll_timeout_ms, 0, 10'000);
  t.linger_ms = c.get_int(service + ".linger_ms", t.linger_ms, 0, 10'000);
  t.fetch_wait_max_ms = c.get_int(service + ".fetch_wait_max_ms", t.fetch_wait_max_ms, 0, 10'000);
  return t;
}

int run_stage(int argc, char** argv, const Stage& stage) {
  if (argc > 1) {
    for (const auto& c : stage.commands)
      if (c.name == argv[1]) return c.run(argc - 1, argv + 1);
    if (std::strcmp(argv[1], "run") == 0) {
      argv[1] = argv[0];
      --argc;
      ++argv;
    }
  }
  return run_service(
      argc, argv, std::string(stage.name), stage.default_port, [&stage](ServiceContext& ctx) {
        auto run = std::make_shared<StageRun>();
        // Read before the stage's own keys: a --check-config stopped by the stage's errors
        // must not report the tuning keys as unknown.
        if (stage.tunable) run->tuning = StreamTuning::from_config(ctx.config, ctx.name);
        StageSetup s = stage.setup(ctx);
        if (!s.processor)
          throw std::logic_error(std::string(stage.name) + ": the stage's setup made no processor");
        run->processor = std::move(s.processor);
        run->group = std::move(s.group);
        run->restore_timeout = s.restore_timeout;
        return [&ctx, &stage, run] { run_stream(ctx, stage, *run); };
      });
}

}  // namespace immunizer::common
