// immunizer.alarms (Alarm) and immunizer.feedback (Feedback) payloads through the plan
// processor as the plan service runs them: evidence per principal, thresholds, plans.
#include "fuzz_util.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/plan/processor.hpp"
#include "immunizer/testing/manual_clock.hpp"

#include <prometheus/registry.h>

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const common::Topics topics = common::Topics::with_prefix("f.");
  common::ManualClock clock;
  prometheus::Registry registry;
  static const auto key = std::make_shared<const crypto::SigningKey>(
      crypto::SigningKey::from_pem(crypto::generate_ed25519().private_pem));
  plan::PlanProcessor proc(plan::PolicyConfig{}, topics, clock, registry, key);
  fuzz::NullProducer out;
  fuzz::run_processor(proc, {topics.alarms, topics.feedback}, data, size, out);
  return 0;
}
