// immunizer-plan: alarms -> plans under a policy. Wiring only; see plan/policy.hpp.
#include "immunizer/common/service.hpp"
#include "immunizer/plan/service.hpp"

using namespace immunizer;

int main(int argc, char** argv) {
  return common::run_service(argc, argv, "plan", 9103, [](common::ServiceContext& ctx) {
    auto cfg = plan::PolicyConfig::from_config(ctx.config);
    const std::string group = ctx.config.get_string("plan.group", "immunizer-plan");
    auto metrics = std::make_shared<common::KafkaMetrics>(*ctx.registry, "plan");
    auto clock = std::make_shared<common::SystemClock>();
    auto proc = std::make_shared<plan::PlanProcessor>(cfg, ctx.topics, *clock, *ctx.registry);
    auto producer = std::shared_ptr<common::Producer>(common::make_kafka_producer(ctx.kafka, "plan", metrics.get()));
    auto consumer = std::shared_ptr<common::Consumer>(
        common::make_kafka_consumer(ctx.kafka, group, {ctx.topics.alarms, ctx.topics.feedback}, metrics.get()));
    return [&ctx, metrics, clock, proc, producer, consumer] {
      common::StreamLoop loop(*consumer, *producer, *proc,
                              {.service = "plan", .deadletter_topic = ctx.topics.deadletter}, metrics.get(),
                              ctx.registry.get());
      loop.run(ctx.stop);
    };
  });
}
