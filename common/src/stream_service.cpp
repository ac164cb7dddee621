#include "immunizer/common/stream_service.hpp"

#include "immunizer/common/snapshots.hpp"

namespace immunizer::common {

StreamTuning StreamTuning::from_config(const Config& c, const std::string& service) {
  StreamTuning t;
  t.max_batch = static_cast<size_t>(
      c.get_int(service + ".max_batch", static_cast<int64_t>(t.max_batch), 1, 100'000));
  t.poll_timeout_ms = c.get_int(service + ".poll_timeout_ms", t.poll_timeout_ms, 0, 10'000);
  t.linger_ms = c.get_int(service + ".linger_ms", t.linger_ms, 0, 10'000);
  t.fetch_wait_max_ms = c.get_int(service + ".fetch_wait_max_ms", t.fetch_wait_max_ms, 0, 10'000);
  return t;
}

void run_stream_service(ServiceContext& ctx, Processor& proc, KafkaMetrics& metrics,
                        const std::string& group, const std::vector<std::string>& topics,
                        const SnapshotHooks* snapshots, const StreamTuning& tuning) {
  std::unique_ptr<Producer> snapshot_producer;
  if (snapshots) {
    if (snapshots->restore) {
      ctx.starting("restoring " + snapshots->kind + " snapshots");
      const auto snaps =
          read_snapshots(ctx.kafka, ctx.topics.models, snapshots->kind, std::chrono::seconds(30));
      ctx.log->info("restored {} of {} {} snapshots", snapshots->apply(snaps), snaps.size(),
                    snapshots->kind);
    }
    snapshot_producer = make_kafka_producer(ctx.kafka, ctx.name + "-snapshots", &metrics,
                                            {{"message.max.bytes", "16000000"}});
    snapshots->attach(snapshot_producer.get());
  }
  auto producer = make_kafka_producer(ctx.kafka, ctx.name, &metrics,
                                      {{"linger.ms", std::to_string(tuning.linger_ms)}});
  auto consumer =
      make_kafka_consumer(ctx.kafka, group, topics, &metrics,
                          {{"fetch.wait.max.ms", std::to_string(tuning.fetch_wait_max_ms)}});
  StreamLoop loop(*consumer, *producer, proc,
                  {.service = ctx.name,
                   .deadletter_topic = ctx.topics.deadletter,
                   .max_batch = tuning.max_batch,
                   .poll_timeout = std::chrono::milliseconds(tuning.poll_timeout_ms)},
                  &metrics, ctx.registry.get());
  ctx.ready();
  loop.run(ctx.stop);
}

size_t restore_each(
    const std::map<std::string, v1::ModelSnapshot>& snaps, const std::string& kind,
    const std::function<void(const std::string&, const v1::ModelSnapshot&)>& restore_one) {
  size_t n = 0;
  for (const auto& [key, snap] : snaps) {
    try {
      restore_one(key, snap);
      ++n;
    } catch (const std::exception& e) {
      logger(kind)->warn("snapshot of {} skipped: {}", key, e.what());
    }
  }
  return n;
}

}  // namespace immunizer::common
