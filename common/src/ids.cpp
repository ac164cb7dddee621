#include "immunizer/common/ids.hpp"

#include <random>

#include "immunizer/crypto/ed25519.hpp"

namespace immunizer::common {

std::string random_id() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   static_cast<uint64_t>(now_unix_nanos())};
  static const char* hex = "0123456789abcdef";
  std::string s(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t v = rng();
    for (int i = 0; i < 16; ++i) {
      s[half * 16 + i] = hex[v & 0xf];
      v >>= 4;
    }
  }
  return s;
}

std::string derived_id(std::initializer_list<std::string_view> parts) {
  std::string buf;
  for (const auto p : parts) {
    buf += std::to_string(p.size());
    buf += ':';
    buf.append(p);
  }
  return crypto::sha256_hex(buf).substr(0, 32);
}

}  // namespace immunizer::common
