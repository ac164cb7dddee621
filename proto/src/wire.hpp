// Minimal protobuf wire reader for the batch envelopes (call records, feature batches): field
// numbers, varints and length-delimited views only, every length checked against what is
// left, so a hostile payload can only make it return false. Private to immunizer_proto.
#pragma once

#include <cstdint>
#include <string_view>

namespace immunizer::v1::wire {

struct Reader {
  const uint8_t* p;
  const uint8_t* end;

  explicit Reader(std::string_view payload)
      : p(reinterpret_cast<const uint8_t*>(payload.data())), end(p + payload.size()) {}

  bool varint(uint64_t* v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p == end) return false;
      const uint8_t b = *p++;
      x |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = x;
        return true;
      }
    }
    return false;
  }
  // A length-delimited field's bytes (a view into the payload).
  bool bytes(std::string_view* out) {
    uint64_t n = 0;
    if (!varint(&n) || n > static_cast<uint64_t>(end - p)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    p += n;
    return true;
  }
  // Skips a field of this wire type; false for groups (unused by these messages) and bad
  // lengths.
  bool skip(uint32_t wire_type) {
    uint64_t n = 0;
    std::string_view ignored;
    switch (wire_type) {
      case 0:
        return varint(&n);
      case 1:
        n = 8;
        break;
      case 5:
        n = 4;
        break;
      case 2:
        return bytes(&ignored);
      default:
        return false;
    }
    if (n > static_cast<uint64_t>(end - p)) return false;
    p += n;
    return true;
  }
};

}  // namespace immunizer::v1::wire
