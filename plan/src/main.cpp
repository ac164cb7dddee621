// immunizer-plan: alarms -> plans under a policy. Wiring only; see plan/policy.hpp.
#include "immunizer/common/stream_service.hpp"
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
      common::run_stream_service(ctx, proc, metrics, group, {ctx.topics.alarms, ctx.topics.feedback});
    };
  });
}
