// Shared by the effector's fuzz targets (fuzz_directive, fuzz_directive_batch): the fixed
// directive key, the effector under test and the allows() probes. Header-only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/effector.hpp"

namespace immunizer::fuzz {

// A fixed test-only Ed25519 key (the seeds are signed with it, fuzz_seeds.cpp): the effector
// trusts its public key only.
inline const crypto::SigningKey& directive_key() {
  static const crypto::SigningKey k = crypto::SigningKey::from_pem(R"PEM(-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHDn9OnDLQ25vTNUPskjs1vKX2Q3+gCn9Rz8xqcZ8LVh
-----END PRIVATE KEY-----
)PEM");
  return k;
}

// The ring of directive_key's public key: what the effector verifies against.
inline const crypto::KeyRing& directive_ring() {
  static const crypto::KeyRing r = [] {
    crypto::KeyRing k;
    k.add(crypto::VerifyingKey::from_pem(directive_key().public_pem()));
    return k;
  }();
  return r;
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// An effector trusting directive_key only, never started (no connection): directives reach
// it through apply().
inline std::shared_ptr<effector::Effector> fuzz_effector() {
  effector::EffectorConfig cfg;
  cfg.app = "fuzz";
  cfg.instance = "fuzz-1";
  cfg.directive_public_keys = {directive_key().public_pem()};
  cfg.tls = "none";
  cfg.replay_cache_size = 64;
  return effector::Effector::create(cfg);
}

// Asks the effector about the principal an action names, in each principal field, for the
// action's call and a common one (the lookups a host app makes after a directive was applied
// or refused).
template <class Action>
void probe_allows(effector::Effector& eff, const Action& a) {
  const std::string v = a.target_value();
  for (const auto& call : {a.call(), std::string("http.request")}) {
    (void)eff.allows(effector::PrincipalView{v, "", ""}, call);
    (void)eff.allows(effector::PrincipalView{"", v, ""}, call);
    (void)eff.allows(effector::PrincipalView{"", "", v}, call);
  }
}

}  // namespace immunizer::fuzz
