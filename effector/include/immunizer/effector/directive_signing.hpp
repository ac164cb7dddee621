// Signing and verification of control-plane Directives: execute signs with its Ed25519
// private key, effectors verify with a KeyRing of trusted public keys (several during a key
// rotation), so a host that holds an effector cannot forge directives for any other host.
// Pure functions over const keys, thread-safe. The signature covers a canonical byte string
// of every Directive field except `signature` (layout in docs/effector.md). A DirectiveBatch
// (execute's replay) is signed once over the digests of its directives.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/v1/control.pb.h"

namespace immunizer::effector {

// Domain tag that opens the canonical byte string; bump it if the layout or scheme changes
// (v1 was HMAC-SHA256 with a shared key).
inline constexpr std::string_view kDirectiveDomain = "immunizer.directive.v2";

// The exact bytes the signature covers: every field of `d` but `signature`, in a fixed
// order, each string length-prefixed (u32 big-endian), each integer u64 big-endian,
// doubles by their IEEE-754 bits, booleans one byte. Independent of protobuf encoding.
std::string canonical_bytes(const immunizer::v1::Directive& d);

// Domain tag of a DirectiveBatch's signed bytes, and the capability an effector lists in its
// hello when it takes batches (execute then replays in batches of at most kReplayBatch).
inline constexpr std::string_view kBatchDomain = "immunizer.directive_batch.v1";
inline constexpr std::string_view kBatchCapability = "DIRECTIVE_BATCH";
inline constexpr size_t kReplayBatch = 256;

// Lowercase hex SHA-256 of canonical_bytes(d) followed by d.signature: the exact bytes of a
// signed directive (canonical bytes are self-delimiting).
std::string directive_digest(const immunizer::v1::Directive& d);

// The bytes a DirectiveBatch's signature covers, from the digests of its directives in order:
// str kBatchDomain, str key_id, u64 count, then str digest for each (layout as above).
std::string batch_bytes(std::string_view key_id, const std::vector<std::string>& digests);

// Sets b.key_id and b.signature over batch_bytes of b's directives (each already signed).
// Throws std::runtime_error if OpenSSL fails.
void sign(immunizer::v1::DirectiveBatch& b, const crypto::SigningKey& key);

// True when b.key_id names a key of `trusted` and b.signature is its signature of
// batch_bytes(b.key_id, digests), `digests` being directive_digest of each directive of b, in
// order (the caller computes them once). Never throws.
bool verify(const immunizer::v1::DirectiveBatch& b, const std::vector<std::string>& digests,
            const crypto::KeyRing& trusted) noexcept;

// Sets d.key_id = key.key_id() and d.signature = Ed25519(key, canonical_bytes(d)) (64 bytes).
// Throws std::runtime_error if OpenSSL fails.
void sign(immunizer::v1::Directive& d, const crypto::SigningKey& key);

// True when d.key_id names a key of `trusted` and d.signature is that key's Ed25519
// signature of canonical_bytes(d). False for an unsigned directive or an unknown key id.
// Never throws.
bool verify(const immunizer::v1::Directive& d, const crypto::KeyRing& trusted) noexcept;

}  // namespace immunizer::effector
