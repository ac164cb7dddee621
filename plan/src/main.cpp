// immunizer-plan: alarms -> plans under a policy. Wiring only; see plan/policy.hpp.
#include "immunizer/common/service.hpp"
#include "immunizer/plan/service.hpp"

using namespace immunizer;

int main(int argc, char** argv) {
  return common::run_service(argc, argv, "plan", 9103, [](common::ServiceContext& ctx) {
    // Read every key first, so bad configuration fails before any connection is made.
    auto cfg = plan::PolicyConfig::from_config(ctx.config);
    const std::string group = ctx.config.get_string("plan.group", "immunizer-plan");
    return [&ctx, cfg, group] {
      common::KafkaMetrics metrics(*ctx.registry, "plan");
      common::SystemClock clock;
      plan::PlanProcessor proc(cfg, ctx.topics, clock, *ctx.registry);
      auto producer = common::make_kafka_producer(ctx.kafka, "plan", &metrics);
      auto consumer = common::make_kafka_consumer(ctx.kafka, group, {ctx.topics.alarms, ctx.topics.feedback}, &metrics);
      common::StreamLoop loop(*consumer, *producer, proc,
                              {.service = "plan", .deadletter_topic = ctx.topics.deadletter}, &metrics,
                              ctx.registry.get());
      loop.run(ctx.stop);
    };
  });
}
