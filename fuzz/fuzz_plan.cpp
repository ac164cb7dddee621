// immunizer.plans (Plan) payloads through execute's processor and dispatcher as the execute
// service runs them: plan signature check, actions to signed directives, folding, TTLs,
// audit events, state. Tag bit 0 re-signs the plan with plan's key (execute trusts its public
// key), so the fuzzer also reaches what follows a valid signature.
#include "fuzz_execute.hpp"
#include "fuzz_processor.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/execute/processor.hpp"
#include "immunizer/plan/plan_signing.hpp"

using namespace immunizer;

namespace {
const crypto::KeyPair& plan_pair() {
  static const crypto::KeyPair p = crypto::generate_ed25519();
  return p;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ProcessorHarness h;
  const execute::ExecuteConfig cfg = fuzz::execute_config(plan_pair().public_pem);
  static const crypto::SigningKey plan_key = crypto::SigningKey::from_pem(plan_pair().private_pem);
  execute::Dispatcher dispatcher(cfg, h.topics, h.clock, h.registry);
  execute::ExecuteProcessor proc(dispatcher);
  // Re-sign the plans tagged so (the topic is execute's plans topic either way).
  std::string input;
  for (const auto& f : fuzz::split(data, size)) {
    v1::Plan p;
    if ((f.tag & 1) && p.ParseFromArray(f.bytes.data(), static_cast<int>(f.bytes.size()))) {
      plan::sign(p, plan_key);
      fuzz::append_frame(input, 0, p.SerializeAsString());
    } else {
      fuzz::append_frame(input, 0, f.bytes);
    }
  }
  fuzz::run_processor(proc, {h.topics.plans}, reinterpret_cast<const uint8_t*>(input.data()),
                      input.size(), h.out);
  h.clock.advance(std::chrono::hours(24 * 31));  // every TTL runs out
  proc.tick(h.out);
  return 0;
}
