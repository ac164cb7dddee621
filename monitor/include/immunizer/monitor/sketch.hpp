// Fixed-memory frequency sketches used by the feature extractor (count-min for n-grams).
// Not thread-safe; a sketch belongs to one argument path of one model.
// Memory is allocated once at construction and never grows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace immunizer::monitor {

// 64-bit hash that is stable across processes and platforms (snapshots store hashes).
uint64_t stable_hash(std::string_view s) noexcept;

// Count-min sketch over 32-bit keys: `depth` rows of `width` saturating 32-bit counters.
// Estimates never under-count; width is rounded up to a power of two.
class CountMinSketch {
 public:
  CountMinSketch() = default;
  CountMinSketch(size_t width, size_t depth);

  void add(uint32_t key) noexcept {
    for (size_t d = 0; d < depth_; ++d) {
      uint32_t& c = cells_[d * width_ + slot(key, d)];
      if (c != UINT32_MAX) ++c;
    }
    ++total_;
  }
  uint32_t estimate(uint32_t key) const noexcept {
    uint32_t m = UINT32_MAX;
    for (size_t d = 0; d < depth_; ++d) {
      const uint32_t c = cells_[d * width_ + slot(key, d)];
      if (c < m) m = c;
    }
    return depth_ == 0 ? 0 : m;
  }
  uint64_t total() const noexcept { return total_; }
  size_t width() const noexcept { return width_; }
  size_t depth() const noexcept { return depth_; }
  size_t memory_bytes() const noexcept {
    return cells_.capacity() * sizeof(uint32_t) + sizeof(*this);
  }

  // Raw access for (de)serialisation.
  const std::vector<uint32_t>& cells() const noexcept { return cells_; }
  std::vector<uint32_t>& mutable_cells() noexcept { return cells_; }
  void set_total(uint64_t t) noexcept { total_ = t; }

 private:
  size_t slot(uint32_t key, size_t row) const noexcept {
    // Multiply-shift hashing with one odd multiplier per row.
    static constexpr uint64_t kMul[4] = {0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full,
                                         0x165667B19E3779F9ull, 0xD6E8FEB86659FD93ull};
    const uint64_t h = (static_cast<uint64_t>(key) + row) * kMul[row & 3];
    return static_cast<size_t>(h >> shift_);
  }

  size_t width_ = 0;
  size_t depth_ = 0;
  unsigned shift_ = 64;
  uint64_t total_ = 0;
  std::vector<uint32_t> cells_;
};

}  // namespace immunizer::monitor
