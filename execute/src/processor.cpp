#include "immunizer/execute/processor.hpp"

namespace immunizer::execute {

void ExecuteProcessor::process(const common::Message& m, common::Producer& out) {
  v1::Plan plan;
  if (!plan.ParseFromString(m.payload)) throw common::BadMessage("unparsable_plan", "not a Plan");
  if (plan.id().empty()) throw common::BadMessage("plan_without_id", "plan has no id");
  // Anyone with write access to the topic could have written it: only plan's key is trusted.
  if (std::string why = dispatcher_.admit(plan); !why.empty())
    throw common::BadMessage(why, "plan " + plan.id().substr(0, 64) + " (key id '" +
                                      plan.key_id().substr(0, 64) + "') refused, nothing enforced");
  dispatcher_.on_plan(plan);
  // Written in the same batch, so the plan's offset is committed only once its DISPATCHED
  // events are acknowledged by the broker.
  dispatcher_.drain(out);
}

void ExecuteProcessor::process_batch(const std::vector<common::Message>& batch,
                                     common::Producer& out, const Reject& reject) {
  common::Processor::process_batch(batch, out, reject);
  if (!dispatcher_.flush_state())
    throw std::runtime_error("state of the batch's actions not acknowledged by Kafka");
}

void ExecuteProcessor::tick(common::Producer& out) {
  dispatcher_.expire();
  dispatcher_.drain(out);
}

void ExecuteProcessor::drain(common::Producer& out) {
  dispatcher_.expire();
  dispatcher_.drain(out);
}

}  // namespace immunizer::execute
