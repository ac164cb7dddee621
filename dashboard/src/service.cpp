#include "immunizer/dashboard/service.hpp"

#include <mutex>
#include <utility>

#include "immunizer/common/stream_loop.hpp"
#include "immunizer/dashboard/api.hpp"
#include "immunizer/dashboard/processor.hpp"

namespace immunizer::dashboard {

namespace {
// Forwards to the Kafka producer the body creates, so nothing connects before the whole
// configuration is validated; until then feedback fails with a retryable 503.
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

// Everything the running service owns; lives as long as the body.
struct Runtime {
  DashboardConfig cfg;
  common::SystemClock clock;
  common::KafkaMetrics metrics;
  DashboardState state;
  SseHub hub;
  DeferredProducer feedback_out;
  std::unique_ptr<OperationsClient> ops;
  DashboardApi api;
  Runtime(const DashboardConfig& c, common::ServiceContext& ctx)
      : cfg(c),
        metrics(*ctx.registry, "dashboard"),
        state(cfg, clock),
        hub(static_cast<size_t>(cfg.sse_max_clients), static_cast<size_t>(cfg.sse_queue), *ctx.registry),
        ops(make_grpc_operations_client(cfg.execute_address,
                                        std::chrono::milliseconds(cfg.execute_timeout_ms))),
        api(cfg, state, hub, feedback_out, ctx.topics, *ops, clock, *ctx.registry) {}
};
}  // namespace

std::function<void()> setup_service(common::ServiceContext& ctx) {
  // Read every key first, so bad configuration fails before any connection is made.
  const auto cfg = DashboardConfig::from_config(ctx.config);
  auto rt = std::make_shared<Runtime>(cfg, ctx);
  rt->api.install(*ctx.http);
  return [&ctx, rt] {
    ctx.log->info("consumer group '{}' (never commits: replays retained history on start); execute at {}{}",
                  rt->cfg.group, rt->cfg.execute_address, rt->cfg.auth_user.empty() ? "" : "; basic auth on");
    rt->feedback_out.set(common::make_kafka_producer(ctx.kafka, "dashboard-feedback", &rt->metrics));
    auto out = common::make_kafka_producer(ctx.kafka, "dashboard", &rt->metrics);
    auto consumer = common::make_kafka_consumer(
        ctx.kafka, rt->cfg.group, {ctx.topics.alarms, ctx.topics.actions, ctx.topics.scores}, &rt->metrics);
    NonCommittingConsumer in(*consumer);
    DashboardProcessor proc(rt->state, rt->hub, ctx.topics, rt->clock,
                            std::chrono::milliseconds(rt->cfg.stats_interval_ms));
    common::StreamLoop loop(in, *out, proc,
                            {.service = "dashboard", .deadletter_topic = ctx.topics.deadletter}, &rt->metrics,
                            ctx.registry.get());
    // Release the browsers before run_service stops the HTTP server (it joins their
    // threads), also when the loop throws.
    struct CloseHub {
      SseHub& hub;
      ~CloseHub() { hub.close(); }
    } close_hub{rt->hub};
    ctx.ready();
    loop.run(ctx.stop);
    rt->feedback_out.flush(std::chrono::seconds(5));
  };
}

}  // namespace immunizer::dashboard
