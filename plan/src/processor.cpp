#include "immunizer/plan/processor.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>

#include "immunizer/common/service.hpp"
#include "immunizer/plan/config.hpp"

#include "immunizer/common/logging.hpp"
#include "immunizer/plan/plan_signing.hpp"
#include "immunizer/v1/principal.hpp"

namespace immunizer::plan {

PlanProcessor::PlanProcessor(PolicyConfig cfg, const common::Topics& topics,
                             const common::Clock& clock, prometheus::Registry& registry,
                             std::shared_ptr<const crypto::SigningKey> key)
    : policy_(std::move(cfg), clock),
      topics_(topics),
      key_(std::move(key)),
      outcomes_(common::counter_family(registry, "immunizer_plans_total",
                                       "Alarms handled by the policy, by outcome")),
      duplicates_(common::register_counter(
          registry, "immunizer_duplicates_dropped_total",
          "Inputs read again (a replay after a crash or rebalance) and dropped, by what",
          {{"what", "alarm"}})) {
  if (!key_)
    throw std::invalid_argument("plan: a signing key is required (execute refuses unsigned plans)");
}

void PlanProcessor::process(const common::Message& m, common::Producer& out) {
  if (m.topic == topics_.feedback) {
    v1::Feedback f;
    if (!f.ParseFromString(m.payload))
      throw common::BadMessage("unparsable_feedback", "not a Feedback");
    policy_.on_feedback(f);
    return;
  }
  v1::Alarm alarm;
  if (!alarm.ParseFromString(m.payload))
    throw common::BadMessage("unparsable_alarm", "not an Alarm");
  if (alarm.id().empty()) throw common::BadMessage("alarm_without_id", "alarm has no id");
  if (!seen_alarms_.insert(alarm.id()).second) {
    duplicates_.Increment();
    outcomes_.Add({{"outcome", "duplicate"}}).Increment();
    return;
  }
  seen_order_.push_back(alarm.id());
  if (seen_order_.size() > kRecentAlarms) {
    seen_alarms_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  Decision d = policy_.decide(alarm);
  outcomes_.Add({{"outcome", std::string(outcome_name(d.outcome))}}).Increment();
  if (!d.plan) return;
  sign(*d.plan, *key_);
  const auto& p = alarm.principal();
  out.produce(topics_.plans, v1::partition_key(p), d.plan->SerializeAsString());
  if (d.enforcing())
    common::logger("plan")->info("alarm {} ({} score {:.3f}, session '{}', ip {}): plan {} rule {}",
                                 alarm.id(), alarm.call(), alarm.combined_score(), p.session(),
                                 p.ip(), d.plan->id(), d.plan->policy_rule());
}

const common::Stage kStage{
    .name = "plan",
    .default_port = 9103,
    .inputs = {&common::Topics::alarms, &common::Topics::feedback},
    .outputs = {&common::Topics::plans},
    .tunable = true,
    .setup =
        [](common::ServiceContext& ctx) {
          const auto cfg = PlanConfig::from_config(ctx.config);
          ctx.config.stop_if_errors();  // --check-config: build nothing on a bad value
          ctx.log->info("signing plans with key {} ({})", cfg.signing_key->key_id(),
                        cfg.signing_key_file);
          return common::StageSetup{
              std::make_unique<PlanProcessor>(cfg.policy, ctx.topics, ctx.clock, *ctx.registry,
                                              cfg.signing_key),
              cfg.group};
        },
};

}  // namespace immunizer::plan
