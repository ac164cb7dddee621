#include "immunizer/effector/directive_signing.hpp"

#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "immunizer/crypto/signed_bytes.hpp"

namespace immunizer::effector {

using crypto::put_str;
using crypto::put_u64;

std::string canonical_bytes(const immunizer::v1::Directive& d) {
  std::string out;
  out.reserve(256);
  put_str(out, kDirectiveDomain);
  put_str(out, d.id());
  const auto& a = d.action();
  put_str(out, a.id());
  put_u64(out, static_cast<uint64_t>(static_cast<int64_t>(a.kind())));
  put_u64(out, static_cast<uint64_t>(static_cast<int64_t>(a.target_field())));
  put_str(out, a.target_value());
  put_str(out, a.call());
  put_u64(out, static_cast<uint64_t>(a.ttl_millis()));
  put_u64(out, std::bit_cast<uint64_t>(a.rate_per_second()));
  put_u64(out, std::bit_cast<uint64_t>(a.burst()));
  put_u64(out, static_cast<uint64_t>(d.issued_unix_nanos()));
  put_u64(out, static_cast<uint64_t>(d.expires_unix_nanos()));
  out.push_back(d.revoke() ? 1 : 0);
  put_str(out, d.key_id());
  put_str(out, d.plan_id());
  return out;
}

void sign(immunizer::v1::Directive& d, const crypto::SigningKey& key) {
  d.set_key_id(key.key_id());
  d.set_signature(key.sign(canonical_bytes(d)));
}

std::string directive_digest(const immunizer::v1::Directive& d) {
  std::string bytes = canonical_bytes(d);
  bytes.append(d.signature());
  return crypto::sha256_hex(bytes);
}

std::string batch_bytes(std::string_view key_id, const std::vector<std::string>& digests) {
  std::string out;
  out.reserve(64 + digests.size() * 68);
  put_str(out, kBatchDomain);
  put_str(out, key_id);
  put_u64(out, digests.size());
  for (const auto& g : digests) put_str(out, g);
  return out;
}

void sign(immunizer::v1::DirectiveBatch& b, const crypto::SigningKey& key) {
  std::vector<std::string> digests;
  digests.reserve(static_cast<size_t>(b.directives_size()));
  for (const auto& d : b.directives()) digests.push_back(directive_digest(d));
  b.set_key_id(key.key_id());
  b.set_signature(key.sign(batch_bytes(b.key_id(), digests)));
}

bool verify(const immunizer::v1::DirectiveBatch& b, const std::vector<std::string>& digests,
            const crypto::KeyRing& trusted) noexcept {
  if (b.signature().empty() || digests.size() != static_cast<size_t>(b.directives_size()))
    return false;
  try {
    return trusted.verify(b.key_id(), batch_bytes(b.key_id(), digests), b.signature());
  } catch (...) {
    return false;  // allocation failure: treat as unverifiable
  }
}

bool verify(const immunizer::v1::Directive& d, const crypto::KeyRing& trusted) noexcept {
  if (d.signature().empty()) return false;
  try {
    return trusted.verify(d.key_id(), canonical_bytes(d), d.signature());
  } catch (...) {
    return false;  // allocation failure: treat as unverifiable
  }
}

}  // namespace immunizer::effector
