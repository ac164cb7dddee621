// Signing and verification of control-plane Directives (execute signs, effectors verify).
// Pure functions, thread-safe, no state. HMAC-SHA256 over a canonical byte string of every
// Directive field except `signature` (layout in docs/effector.md); compare is constant-time.
#pragma once

#include <string>
#include <string_view>

#include "immunizer/v1/control.pb.h"

namespace immunizer::effector {

// Domain tag that opens the canonical byte string; bump it if the layout ever changes.
inline constexpr std::string_view kDirectiveDomain = "immunizer.directive.v1";

// The exact bytes the signature covers: every field of `d` but `signature`, in a fixed
// order, each string length-prefixed (u32 big-endian), each integer u64 big-endian,
// doubles by their IEEE-754 bits, booleans one byte. Independent of protobuf encoding.
std::string canonical_bytes(const immunizer::v1::Directive& d);

// Sets d.key_id (when `key_id` is not empty) and d.signature = HMAC-SHA256(key, canonical).
// Throws std::invalid_argument if `key` is empty.
void sign(immunizer::v1::Directive& d, std::string_view key, std::string_view key_id = {});

// True when d.signature is HMAC-SHA256(key, canonical_bytes(d)). Constant-time compare.
// False for an empty key or an unsigned directive. Never throws.
bool verify(const immunizer::v1::Directive& d, std::string_view key) noexcept;

}  // namespace immunizer::effector
