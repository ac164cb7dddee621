// Signing and verification of Plans (plan signs with its own Ed25519 key, execute verifies
// against the public keys it trusts). Pure functions over immunizer::crypto; thread-safe.
// The signature covers canonical_bytes(), a fixed layout independent of protobuf encoding.
#pragma once

#include <string>
#include <string_view>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::plan {

// Domain tag that opens the canonical byte string; bump it if the layout ever changes.
inline constexpr std::string_view kPlanDomain = "immunizer.plan.v1";

// The exact bytes the signature covers: every Plan field but `signature` (key_id included),
// in field order, each string length-prefixed (u32 big-endian), each integer u64 big-endian,
// doubles by their IEEE-754 bits, booleans one byte, repeated actions preceded by their count.
std::string canonical_bytes(const v1::Plan& p);

// Sets p.key_id to the key's id and p.signature to its Ed25519 signature of canonical_bytes.
void sign(v1::Plan& p, const crypto::SigningKey& key);

// Empty when the plan carries a valid signature by a key in `trusted`; else why not:
// "unsigned_plan" (no signature or no key id), "untrusted_plan_key" (key id not trusted),
// "bad_plan_signature" (does not verify: forged or altered). Never throws.
std::string verify(const v1::Plan& p, const crypto::KeyRing& trusted) noexcept;

}  // namespace immunizer::plan
