// The execute service's stream processor: Plans from <prefix>plans into the Dispatcher; the
// Dispatcher's ActionEvents out to <prefix>actions. tick() also expires TTLs, so the stream
// loop thread doubles as the TTL timer. Called from the StreamLoop thread only.
#pragma once

#include "immunizer/common/stage.hpp"
#include "immunizer/execute/dispatcher.hpp"

namespace immunizer::execute {

class ExecuteProcessor final : public common::Processor {
 public:
  explicit ExecuteProcessor(Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  // Throws common::BadMessage for a payload that is not a Plan, or a Plan without a valid
  // signature by a trusted plan key (it becomes a dead letter; nothing of it is enforced).
  void process(const common::Message& m, common::Producer& out) override;
  // process() per plan, then waits for the dispatcher's state records (a plan's blocks) to be
  // acknowledged; throws when they are not, so the batch is read again and not committed.
  // Then hands the batch's action events to `out` (after their state, see Dispatcher::drain).
  void process_batch(const std::vector<common::Message>& batch, common::Producer& out,
                     const Reject& reject) override;
  void tick(common::Producer& out) override;
  void drain(common::Producer& out) override;

 private:
  Dispatcher& dispatcher_;
};

// The execute stage: plans in; action events, active-action state (kind "execute") and
// directives to effectors (gRPC EffectorControl, with Operations for operators) out. Its
// processor owns the Dispatcher and the ControlServer around an ExecuteProcessor. main()
// runs it.
extern const common::Stage kStage;

}  // namespace immunizer::execute
