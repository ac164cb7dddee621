// Directives as the effector receives them on execute's Connect stream (ExecuteMessage
// bytes), through verification and the enforcer (Effector::apply verifies exactly like the
// stream), then allows() for the principal and call they name. Each framed message is one
// ExecuteMessage; tag bit 0 re-signs its directive with the effector's key (so the fuzzer
// also reaches what follows a valid signature), bit 1 makes it current (issued now).
#include <chrono>

#include "fuzz_effector.hpp"
#include "fuzz_util.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/effector/effector.hpp"

using namespace immunizer;

namespace {
// A fixed test-only Ed25519 key (the seeds are signed with it, fuzz_seeds.cpp): the effector
// trusts its public key only.
const crypto::SigningKey& fuzz_key() {
  static const crypto::SigningKey k = crypto::SigningKey::from_pem(R"PEM(-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHDn9OnDLQ25vTNUPskjs1vKX2Q3+gCn9Rz8xqcZ8LVh
-----END PRIVATE KEY-----
)PEM");
  return k;
}
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  effector::EffectorConfig cfg;
  cfg.app = "fuzz";
  cfg.instance = "fuzz-1";
  cfg.directive_public_keys = {fuzz_key().public_pem()};
  cfg.tls = "none";  // never started: no connection
  cfg.replay_cache_size = 64;
  auto eff = effector::Effector::create(cfg);  // never started: no connection
  for (const auto& f : fuzz::split(data, size, 32)) {
    v1::ExecuteMessage msg;
    if (!msg.ParseFromArray(f.bytes.data(), static_cast<int>(f.bytes.size())) ||
        !msg.has_directive())
      continue;
    v1::Directive d = msg.directive();
    (void)effector::canonical_bytes(d);
    static const crypto::KeyRing ring = [] {
      crypto::KeyRing r;
      r.add(crypto::VerifyingKey::from_pem(fuzz_key().public_pem()));
      return r;
    }();
    (void)effector::verify(d, ring);
    if (f.tag & 2) {
      const int64_t ttl = d.expires_unix_nanos() - d.issued_unix_nanos();
      d.set_issued_unix_nanos(now_ns());
      if (d.expires_unix_nanos() != 0)
        d.set_expires_unix_nanos(now_ns() + (ttl > 0 ? ttl % 3'600'000'000'000 : 1));
    }
    if (f.tag & 1) effector::sign(d, fuzz_key());
    std::string reason;
    (void)eff->apply(d, &reason);
    fuzz::probe_allows(*eff, d.action());
  }
  (void)eff->stats();
  return 0;
}
