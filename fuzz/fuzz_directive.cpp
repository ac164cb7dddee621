// Directives as the effector receives them on execute's Connect stream (ExecuteMessage
// bytes), through verification and the enforcer (Effector::apply verifies exactly like the
// stream), then allows() for the principal and call they name. Each framed message is one
// ExecuteMessage; tag bit 0 re-signs its directive with the effector's key (so the fuzzer
// also reaches what follows a valid signature), bit 1 makes it current (issued now).
#include "fuzz_effector.hpp"
#include "fuzz_util.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/effector/effector.hpp"

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto eff = fuzz::fuzz_effector();
  for (const auto& f : fuzz::split(data, size, 32)) {
    v1::ExecuteMessage msg;
    if (!msg.ParseFromArray(f.bytes.data(), static_cast<int>(f.bytes.size())) ||
        !msg.has_directive())
      continue;
    v1::Directive d = msg.directive();
    (void)effector::canonical_bytes(d);
    (void)effector::verify(d, fuzz::directive_ring());
    if (f.tag & 2) {
      const int64_t ttl = d.expires_unix_nanos() - d.issued_unix_nanos();
      d.set_issued_unix_nanos(fuzz::now_ns());
      if (d.expires_unix_nanos() != 0)
        d.set_expires_unix_nanos(fuzz::now_ns() + (ttl > 0 ? ttl % 3'600'000'000'000 : 1));
    }
    if (f.tag & 1) effector::sign(d, fuzz::directive_key());
    std::string reason;
    (void)eff->apply(d, &reason);
    fuzz::probe_allows(*eff, d.action());
  }
  (void)eff->stats();
  return 0;
}
