// The plan service's stream processor: alarms and feedback in, plans out, each signed with
// plan's Ed25519 key (execute refuses unsigned plans). Runs on the StreamLoop thread only.
#pragma once

#include <deque>
#include <string>
#include <unordered_set>

#include "immunizer/common/kafka.hpp"
#include "immunizer/common/metrics.hpp"
#include "immunizer/common/stage.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/plan/policy.hpp"

namespace immunizer::plan {

class PlanProcessor final : public common::StageProcessor {
 public:
  PlanProcessor(PolicyConfig cfg, const common::Topics& topics, const common::Clock& clock,
                prometheus::Registry& registry, std::shared_ptr<const crypto::SigningKey> key);
  void process(const common::Message& m, common::Producer& out) override;
  Policy& policy() { return policy_; }
  // Alarm ids remembered to drop an alarm read again (oldest forgotten first).
  static constexpr size_t kRecentAlarms = 100'000;

 private:
  Policy policy_;
  common::Topics topics_;
  std::shared_ptr<const crypto::SigningKey> key_;
  prometheus::Family<prometheus::Counter>& outcomes_;
  prometheus::Counter& duplicates_;
  std::unordered_set<std::string> seen_alarms_;
  std::deque<std::string> seen_order_;
};

// The plan stage: alarms and feedback in, signed plans out. main() runs it.
extern const common::Stage kStage;

}  // namespace immunizer::plan
