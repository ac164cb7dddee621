#include "immunizer/dashboard/service.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <utility>

#include "immunizer/common/stream_loop.hpp"
#include "immunizer/dashboard/api.hpp"
#include "immunizer/dashboard/processor.hpp"

namespace immunizer::dashboard {

namespace {
// Forwards to the Kafka producer the body creates, so nothing connects before
// the whole configuration is validated; until then feedback fails with a
// retryable 503.
class DeferredProducer final : public common::Producer {
 public:
  void set(std::unique_ptr<common::Producer> p) {
    std::lock_guard l(mu_);
    inner_ = std::move(p);
  }
  void produce(const std::string& topic, std::string_view key, std::string_view payload) override {
    std::lock_guard l(mu_);
    if (inner_) {
      inner_->produce(topic, key, payload);
    } else {
      ++lost_;
    }
  }
  common::FlushResult flush(std::chrono::milliseconds timeout) override {
    std::lock_guard l(mu_);
    if (!inner_) return {false, std::exchange(lost_, 0)};
    return inner_->flush(timeout);
  }

 private:
  std::mutex mu_;  // the API serialises feedback anyway; this only guards set()
  std::unique_ptr<common::Producer> inner_;
  uint64_t lost_ = 0;
};

// The data folder (created owner-only) and the database in it; ":memory:" stays
// in memory.
std::string database_path(const std::string& data_dir) {
  if (data_dir == ":memory:") return data_dir;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec)
    throw std::runtime_error("dashboard.data_dir: cannot create '" + data_dir +
                             "': " + ec.message());
  ::chmod(data_dir.c_str(), 0700);
  return (std::filesystem::path(data_dir) / "dashboard.db").string();
}

IncidentConfig incident_config(const DashboardConfig& c) {
  IncidentConfig i;
  i.key = c.incident_key;
  i.window_ms = c.incident_window_ms;
  i.ipv4_prefix = static_cast<int>(c.incident_ipv4_prefix);
  i.ipv6_prefix = static_cast<int>(c.incident_ipv6_prefix);
  i.retention.max_age_ms = c.retention_days * 24 * 3600 * 1000;
  i.retention.max_bytes = c.retention_max_mb * 1024 * 1024;
  return i;
}

NotifierConfig notifier_config(const DashboardConfig& c) {
  NotifierConfig n;
  n.webhook_urls = c.notify_webhook_urls;
  n.webhook_secret = c.notify_webhook_secret;
  n.jsonl_path = c.notify_jsonl_path;
  n.events = c.notify_events;
  n.queue = c.notify_queue;
  n.max_attempts = c.notify_max_attempts;
  n.backoff_ms = c.notify_backoff_ms;
  n.max_backoff_ms = c.notify_max_backoff_ms;
  n.timeout_ms = c.notify_timeout_ms;
  if (c.data_dir != ":memory:")
    n.deadletter_path = (std::filesystem::path(c.data_dir) / "notify-deadletters.jsonl").string();
  return n;
}

// Everything the running service owns; lives as long as the body.
struct Runtime {
  DashboardConfig cfg;
  common::SystemClock clock;
  common::KafkaMetrics metrics;
  DashboardState state;
  SseHub hub;
  DeferredProducer feedback_out;
  std::unique_ptr<OperationsClient> ops;
  IncidentEngine incidents;
  Notifier notifier;
  ExecuteView execute;
  TimeSeries series;
  DashboardApi api;
  Runtime(const DashboardConfig& c, common::ServiceContext& ctx)
      : cfg(c),
        metrics(*ctx.registry, "dashboard"),
        state(cfg, clock),
        hub(static_cast<size_t>(cfg.sse_max_clients), static_cast<size_t>(cfg.sse_queue),
            *ctx.registry),
        ops(make_grpc_operations_client(cfg.execute_address,
                                        std::chrono::milliseconds(cfg.execute_timeout_ms),
                                        cfg.execute_tls)),
        incidents(incident_config(cfg),
                  std::make_unique<IncidentStore>(database_path(cfg.data_dir)), clock,
                  *ctx.registry),
        notifier(notifier_config(cfg), *ctx.registry, clock),
        execute(*ops, std::chrono::milliseconds(cfg.execute_poll_ms), clock),
        series(cfg.timeseries_interval_ms * 1'000'000, static_cast<size_t>(cfg.timeseries_points)),
        api(cfg, state, hub, feedback_out, ctx.topics, *ops, clock, *ctx.registry, parts()) {}
  DashboardParts parts() { return {&incidents, &notifier, &execute, &series}; }
};
}  // namespace

std::function<void()> setup_service(common::ServiceContext& ctx) {
  // Read every key first, so bad configuration fails before any connection is
  // made.
  const auto cfg = DashboardConfig::from_config(ctx.config);
  auto rt = std::make_shared<Runtime>(cfg, ctx);
  rt->api.install(*ctx.http);
  return [&ctx, rt] {
    ctx.log->info(
        "consumer group '{}' (never commits: replays retained history on start); execute at {}",
        rt->cfg.group, rt->cfg.execute_address);
    if (rt->cfg.auth == "none") {
      ctx.log->warn(
          "dashboard.auth=none: NO AUTHENTICATION - anyone who reaches http port {} can block, "
          "unblock "
          "and give feedback",
          ctx.http->port());
    } else {
      ctx.log->info("authentication on: {} user(s) from {}", rt->api.user_count(),
                    rt->api.user_sources());
    }
    ctx.log->info(
        "incident history in {} (incidents per {}, window {} ms); {} "
        "notification destination(s)",
        database_path(rt->cfg.data_dir), rt->cfg.incident_key, rt->cfg.incident_window_ms,
        rt->notifier.destinations());
    rt->execute.start();
    rt->feedback_out.set(
        common::make_kafka_producer(ctx.kafka, "dashboard-feedback", &rt->metrics));
    auto out = common::make_kafka_producer(ctx.kafka, "dashboard", &rt->metrics);
    auto consumer = common::make_kafka_consumer(
        ctx.kafka, rt->cfg.group, {ctx.topics.alarms, ctx.topics.actions, ctx.topics.scores},
        &rt->metrics);
    NonCommittingConsumer in(*consumer);
    DashboardProcessor proc(rt->state, rt->hub, ctx.topics, rt->clock,
                            std::chrono::milliseconds(rt->cfg.stats_interval_ms), rt->parts());
    common::StreamLoop loop(in, *out, proc,
                            {.service = "dashboard", .deadletter_topic = ctx.topics.deadletter},
                            &rt->metrics, ctx.registry.get());
    // Release the browsers before run_service stops the HTTP server (it joins
    // their threads), also when the loop throws.
    struct CloseHub {
      SseHub& hub;
      ~CloseHub() { hub.close(); }
    } close_hub{rt->hub};
    ctx.ready();
    loop.run(ctx.stop);
    rt->feedback_out.flush(std::chrono::seconds(5));
    rt->execute.stop();
    rt->notifier.stop(std::chrono::seconds(3));
  };
}

}  // namespace immunizer::dashboard
