#include "immunizer/v1/text.hpp"

#include <cstdint>
#include <cstring>

namespace immunizer::v1 {
namespace {

// Length of the valid UTF-8 sequence starting at p[0] (RFC 3629), or 0 if it is not one.
size_t valid_sequence(const uint8_t* p, size_t left) noexcept {
  const uint8_t b = p[0];
  if (b < 0x80) return 1;
  auto cont = [&](size_t i) { return i < left && (p[i] & 0xC0) == 0x80; };
  if (b >= 0xC2 && b <= 0xDF) return cont(1) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (b == 0xE0 && p[1] < 0xA0) return 0;  // overlong
    if (b == 0xED && p[1] > 0x9F) return 0;  // UTF-16 surrogates
    return 3;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (b == 0xF0 && p[1] < 0x90) return 0;  // overlong
    if (b == 0xF4 && p[1] > 0x8F) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// Whether every byte is ASCII, in whole-word loads: the last word overlaps the one before, a
// string under eight bytes takes two overlapping four-byte loads (or its bytes, under four).
bool all_ascii(const uint8_t* p, size_t n) noexcept {
  if (n >= 8) {
    uint64_t acc = 0, w;
    for (size_t i = 0; i + 8 <= n; i += 8) {
      std::memcpy(&w, p + i, 8);
      acc |= w;
    }
    std::memcpy(&w, p + n - 8, 8);
    return ((acc | w) & 0x8080808080808080ull) == 0;
  }
  if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    return ((a | b) & 0x80808080u) == 0;
  }
  uint32_t x = 0;
  for (size_t i = 0; i < n; ++i) x |= p[i];
  return (x & 0x80u) == 0;
}
}  // namespace

size_t invalid_utf8_count(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  if (all_ascii(p, n)) return 0;  // most text: no byte needs a closer look
  size_t bad = 0;
  for (size_t i = 0; i < n;) {
    // Eight ASCII bytes at a time: most text is ASCII, and every ASCII byte is valid alone.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i == n) break;
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const size_t k = valid_sequence(p + i, n - i);
    if (k == 0) {
      ++bad;
      ++i;
    } else {
      i += k;
    }
  }
  return bad;
}

void append_escaped_utf8(std::string& out, std::string_view s) {
  if (is_valid_utf8(s)) {
    out.append(s);
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    if (p[i] == '\\') {
      out.append("\\\\");
      ++i;
      continue;
    }
    const size_t k = p[i] < 0x80 ? 1 : valid_sequence(p + i, n - i);
    if (k == 0) {
      out.append("\\x");
      out.push_back(kHex[p[i] >> 4]);
      out.push_back(kHex[p[i] & 15]);
      ++i;
    } else {
      out.append(s.substr(i, k));
      i += k;
    }
  }
}

std::string escape_invalid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  append_escaped_utf8(out, s);
  return out;
}

}  // namespace immunizer::v1
