// immunizer.alarms (Alarm) and immunizer.feedback (Feedback) payloads through the plan
// processor as the plan service runs them: evidence per principal, thresholds, plans.
#include "fuzz_processor.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/plan/processor.hpp"

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ProcessorHarness h;
  static const auto key = std::make_shared<const crypto::SigningKey>(
      crypto::SigningKey::from_pem(crypto::generate_ed25519().private_pem));
  plan::PlanProcessor proc(plan::PolicyConfig{}, h.topics, h.clock, h.registry, key);
  fuzz::run_processor(proc, {h.topics.alarms, h.topics.feedback}, data, size, h.out);
  return 0;
}
