// The encoding of the bytes a signature covers (plans, directives): unsigned 64-bit integers
// in big-endian order and strings prefixed by their length as a big-endian u32, so that no two
// different messages encode to the same bytes. Header-only pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace immunizer::crypto {

inline void put_u64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

inline void put_str(std::string& out, std::string_view s) {
  const auto n = static_cast<uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(s);
}

}  // namespace immunizer::crypto
