#include "immunizer/common/ids.hpp"

#include <random>

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

}  // namespace immunizer::common
