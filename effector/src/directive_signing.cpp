#include "immunizer/effector/directive_signing.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace immunizer::effector {
namespace {

void put_u64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void put_str(std::string& out, std::string_view s) {
  const auto n = static_cast<uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(s);
}

bool hmac_sha256(std::string_view key, std::string_view data, unsigned char out[32]) noexcept {
  unsigned int len = 0;
  const unsigned char* r = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                                reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                                out, &len);
  return r != nullptr && len == 32;
}

}  // namespace

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

void sign(immunizer::v1::Directive& d, std::string_view key, std::string_view key_id) {
  if (key.empty()) throw std::invalid_argument("directive signing: empty signing key");
  if (!key_id.empty()) d.set_key_id(std::string(key_id));
  unsigned char mac[32];
  if (!hmac_sha256(key, canonical_bytes(d), mac))
    throw std::runtime_error("directive signing: HMAC-SHA256 failed");
  d.set_signature(reinterpret_cast<const char*>(mac), sizeof mac);
}

bool verify(const immunizer::v1::Directive& d, std::string_view key) noexcept {
  if (key.empty() || d.signature().size() != 32) return false;
  try {
    unsigned char mac[32];
    if (!hmac_sha256(key, canonical_bytes(d), mac)) return false;
    return CRYPTO_memcmp(mac, d.signature().data(), sizeof mac) == 0;
  } catch (...) {
    return false;  // allocation failure: treat as unverifiable
  }
}

}  // namespace immunizer::effector
