// Decoding of immunizer.calls messages: a CallRecordBatch (what the sensor sends by default)
// or a single CallRecord (sensors with max_batch_records = 1, other producers). Each record
// of a batch is decoded on its own, so one record that cannot be decoded never costs the
// others. Stateless and thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "immunizer/v1/records.pb.h"

namespace immunizer::v1 {

// True when the payload starts like a CallRecordBatch (batch_format = 1 first).
bool is_call_record_batch(std::string_view payload) noexcept;

// A record of a batch that could not be decoded: its bytes (a view into the payload) and why.
struct UndecodableRecord {
  std::string_view bytes;
  std::string reason;
};

// Appends the message's decodable records to `out`. Returns false (and `out` as it was) when
// the payload is neither a CallRecord nor a CallRecordBatch envelope (unknown batch_format,
// broken framing). Otherwise true; a batch's records that do not decode are left out and, if
// `bad` is given, appended to it (views into `payload`).
bool parse_call_records(std::string_view payload, std::vector<CallRecord>* out,
                        std::vector<UndecodableRecord>* bad = nullptr);

// The value of a map entry with this key (the first one), or nullptr.
const Value* find_field(const ValueFields& m, std::string_view key);

// Label lookup on a record (the first label with this key), or nullptr.
const std::string* find_label(const CallRecord& r, std::string_view key);

}  // namespace immunizer::v1
