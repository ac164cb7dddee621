// immunizer.plans (Plan) payloads through execute's processor and dispatcher as the execute
// service runs them: plan signature check, actions to signed directives, folding, TTLs,
// audit events, state. Tag bit 0 re-signs the plan with plan's key (execute trusts its public
// key), so the fuzzer also reaches what follows a valid signature.
#include "fuzz_util.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/execute/processor.hpp"
#include "immunizer/plan/plan_signing.hpp"
#include "immunizer/testing/manual_clock.hpp"

#include <prometheus/registry.h>

using namespace immunizer;

namespace {
const crypto::KeyPair& plan_pair() {
  static const crypto::KeyPair p = crypto::generate_ed25519();
  return p;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const common::Topics topics = common::Topics::with_prefix("f.");
  common::ManualClock clock;
  prometheus::Registry registry;
  execute::ExecuteConfig cfg;
  cfg.grpc_listen = "127.0.0.1:0";
  cfg.signing_key = std::make_shared<const crypto::SigningKey>(
      crypto::SigningKey::from_pem(R"PEM(-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHDn9OnDLQ25vTNUPskjs1vKX2Q3+gCn9Rz8xqcZ8LVh
-----END PRIVATE KEY-----
)PEM"));
  cfg.plan_public_keys_pem = {plan_pair().public_pem};
  static const crypto::SigningKey plan_key = crypto::SigningKey::from_pem(plan_pair().private_pem);
  execute::Dispatcher dispatcher(cfg, topics, clock, registry);
  execute::ExecuteProcessor proc(dispatcher);
  fuzz::NullProducer out;
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
  fuzz::run_processor(proc, {topics.plans}, reinterpret_cast<const uint8_t*>(input.data()),
                      input.size(), out);
  clock.advance(std::chrono::hours(24 * 31));  // every TTL runs out
  proc.tick(out);
  return 0;
}
