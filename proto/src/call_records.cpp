#include "immunizer/v1/call_records.hpp"

#include <cstdint>

namespace immunizer::v1 {
namespace {

// Minimal protobuf wire reader for the batch envelope (field numbers and lengths only).
struct Wire {
  const uint8_t* p;
  const uint8_t* end;
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
  bool skip(uint32_t wire_type) {
    uint64_t n = 0;
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
        if (!varint(&n)) return false;
        break;
      default:
        return false;  // groups are not used by these messages
    }
    if (n > static_cast<uint64_t>(end - p)) return false;
    p += n;
    return true;
  }
};

}  // namespace

bool is_call_record_batch(std::string_view payload) noexcept {
  return payload.size() >= 2 && payload[0] == '\x08' && payload[1] == '\x01';
}

bool parse_call_records(std::string_view payload, std::vector<CallRecord>* out,
                        std::vector<UndecodableRecord>* bad) {
  if (!is_call_record_batch(payload)) {
    CallRecord r;
    if (!r.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return false;
    out->push_back(std::move(r));
    return true;
  }
  // Walk the envelope by hand first: the framing must be sound and batch_format 1, then each
  // record (field 2) is parsed on its own.
  Wire w{reinterpret_cast<const uint8_t*>(payload.data()),
         reinterpret_cast<const uint8_t*>(payload.data()) + payload.size()};
  std::vector<std::string_view> records;
  uint64_t format = 0;
  while (w.p != w.end) {
    uint64_t tag = 0;
    if (!w.varint(&tag)) return false;
    const auto field = static_cast<uint32_t>(tag >> 3);
    const auto type = static_cast<uint32_t>(tag & 7);
    if (field == 1 && type == 0) {
      if (!w.varint(&format)) return false;
    } else if (field == 2 && type == 2) {
      uint64_t n = 0;
      if (!w.varint(&n) || n > static_cast<uint64_t>(w.end - w.p)) return false;
      records.emplace_back(reinterpret_cast<const char*>(w.p), static_cast<size_t>(n));
      w.p += n;
    } else if (field == 0 || !w.skip(type)) {
      return false;
    }
  }
  if (format != 1) return false;
  out->reserve(out->size() + records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string_view rec = records[i];
    CallRecord r;
    if (r.ParseFromArray(rec.data(), static_cast<int>(rec.size()))) {
      out->push_back(std::move(r));
    } else if (bad) {
      bad->push_back({rec, "record " + std::to_string(i + 1) + " of " +
                               std::to_string(records.size()) +
                               " in the batch is not a CallRecord"});
    }
  }
  return true;
}

const Value* find_field(const ValueFields& m, std::string_view key) {
  for (const auto& f : m.fields())
    if (f.key() == key) return &f.value();
  return nullptr;
}

const std::string* find_label(const CallRecord& r, std::string_view key) {
  for (const auto& l : r.labels())
    if (l.key() == key) return &l.value();
  return nullptr;
}

}  // namespace immunizer::v1
