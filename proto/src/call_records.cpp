#include "immunizer/v1/call_records.hpp"

#include <cstdint>

#include "wire.hpp"

namespace immunizer::v1 {

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
  wire::Reader w(payload);
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
      std::string_view rec;
      if (!w.bytes(&rec)) return false;
      records.push_back(rec);
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
