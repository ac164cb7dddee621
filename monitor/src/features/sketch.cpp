#include "immunizer/monitor/sketch.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace immunizer::monitor {

uint64_t stable_hash(std::string_view s) noexcept {
  // 8 bytes at a time multiply-xorshift; stable (snapshots hold these hashes).
  uint64_t h = 0x243F6A8885A308D3ull ^ (s.size() * 0x9E3779B97F4A7C15ull);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t k;
    std::memcpy(&k, s.data() + i, 8);
    k *= 0xC2B2AE3D27D4EB4Full;
    k ^= k >> 31;
    h = (h ^ k) * 0x9E3779B97F4A7C15ull;
  }
  // The remaining 0-7 bytes as a little-endian integer, from at most three loads (overlapping
  // loads repeat bytes at the same positions, so OR-ing them gives the same value).
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  const size_t rem = s.size() - i;
  uint64_t tail = 0;
  if (rem >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + rem - 4, 4);
    tail = lo | (static_cast<uint64_t>(hi) << ((rem - 4) * 8));
  } else if (rem > 0) {
    tail = p[0] | (static_cast<uint64_t>(p[rem / 2]) << ((rem / 2) * 8)) |
           (static_cast<uint64_t>(p[rem - 1]) << ((rem - 1) * 8));
  }
  h = (h ^ (tail * 0xC2B2AE3D27D4EB4Full)) * 0x9E3779B97F4A7C15ull;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

CountMinSketch::CountMinSketch(size_t width, size_t depth) {
  width_ = std::bit_ceil(std::max<size_t>(width, 16));
  depth_ = std::clamp<size_t>(depth, 1, 4);
  shift_ = 64u - static_cast<unsigned>(std::countr_zero(width_));
  cells_.assign(width_ * depth_, 0);
}

}  // namespace immunizer::monitor
