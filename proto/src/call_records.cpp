#include "immunizer/v1/call_records.hpp"

namespace immunizer::v1 {

bool is_call_record_batch(std::string_view payload) noexcept {
  return payload.size() >= 2 && payload[0] == '\x08' && payload[1] == '\x01';
}

bool parse_call_records(std::string_view payload, std::vector<CallRecord>* out) {
  if (!is_call_record_batch(payload)) {
    CallRecord r;
    if (!r.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return false;
    out->push_back(std::move(r));
    return true;
  }
  CallRecordBatch b;
  if (!b.ParseFromArray(payload.data(), static_cast<int>(payload.size())) || b.batch_format() != 1) return false;
  out->reserve(out->size() + static_cast<size_t>(b.records_size()));
  for (auto& r : *b.mutable_records()) out->push_back(std::move(r));
  return true;
}

}  // namespace immunizer::v1
