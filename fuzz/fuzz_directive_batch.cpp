// Signed directive batches as the effector receives them in execute's replay (ExecuteMessage
// bytes carrying a DirectiveBatch), through the batch decoding and verification
// (directive_digest of each directive, batch_bytes, one Ed25519 check of the batch signature,
// each directive verified alone when it fails) and the enforcer (Effector::apply(batch)
// verifies exactly like the stream), then allows() for every principal the batch names.
// Each framed message is one ExecuteMessage (a bare Directive is wrapped in a batch of one).
// Tag bits: bit 1 makes every directive current (issued now) and re-signs it, bit 0 re-signs
// the batch with the effector's key (so the fuzzer reaches the path after a valid batch
// signature: directives decided without their own signature), bit 2 re-signs each directive
// but not the batch (the fallback path with real per-directive signatures).
// Invariants checked (a violation aborts): one result per directive, no more accepted than
// sent, and a batch re-signed by the trusted key verifies.
#include <cstdlib>

#include "fuzz_effector.hpp"
#include "fuzz_util.hpp"
#include "immunizer/agent/logging.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/effector/effector.hpp"

using namespace immunizer;

namespace {
// The effector's logger, registered first and off (as an app may): its per-input warning
// (plaintext stream) would otherwise cost more than the code under test.
const bool kQuietEffector = [] {
  immunizer::agent::make_logger("immunizer.effector", spdlog::level::off);
  return true;
}();
// A replay batch is at most kReplayBatch directives; a fuzz input may carry more (bounded by
// the frame size), which the effector must take as well.
constexpr int kMaxDirectives = 2 * static_cast<int>(effector::kReplayBatch);
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto eff = fuzz::fuzz_effector();
  for (const auto& f : fuzz::split(data, size, 8)) {
    v1::ExecuteMessage msg;
    if (!msg.ParseFromArray(f.bytes.data(), static_cast<int>(f.bytes.size()))) continue;
    v1::DirectiveBatch b;
    if (msg.has_batch())
      b = msg.batch();
    else if (msg.has_directive())
      *b.add_directives() = msg.directive();
    else
      continue;
    if (b.directives_size() > kMaxDirectives) continue;
    // The decoding and verification as received.
    std::vector<std::string> digests;
    for (const auto& d : b.directives()) digests.push_back(effector::directive_digest(d));
    (void)effector::batch_bytes(b.key_id(), digests);
    (void)effector::verify(b, digests, fuzz::directive_ring());
    if (f.tag & 2) {
      const int64_t now = fuzz::now_ns();
      for (auto& d : *b.mutable_directives()) {
        const int64_t ttl = d.expires_unix_nanos() - d.issued_unix_nanos();
        d.set_issued_unix_nanos(now);
        if (d.expires_unix_nanos() != 0)
          d.set_expires_unix_nanos(now + (ttl > 0 ? ttl % 3'600'000'000'000 : 1));
      }
    }
    if (f.tag & 6)
      for (auto& d : *b.mutable_directives()) effector::sign(d, fuzz::directive_key());
    if (f.tag & 1) {
      effector::sign(b, fuzz::directive_key());
      digests.clear();
      for (const auto& d : b.directives()) digests.push_back(effector::directive_digest(d));
      if (!effector::verify(b, digests, fuzz::directive_ring())) std::abort();  // its own signature
    }
    std::vector<std::string> reasons;
    const size_t accepted = eff->apply(b, &reasons);
    if (reasons.size() != static_cast<size_t>(b.directives_size()) || accepted > reasons.size())
      std::abort();
    for (const auto& d : b.directives()) fuzz::probe_allows(*eff, d.action());
  }
  (void)eff->stats();
  return 0;
}
