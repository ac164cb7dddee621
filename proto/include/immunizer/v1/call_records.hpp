// Decoding of immunizer.calls messages: a CallRecordBatch (what the sensor sends by default)
// or a single CallRecord (sensors with max_batch_records = 1, other producers).
#pragma once

#include <string_view>
#include <vector>

#include "immunizer/v1/records.pb.h"

namespace immunizer::v1 {

// True when the payload starts like a CallRecordBatch (batch_format = 1 first).
bool is_call_record_batch(std::string_view payload) noexcept;

// Appends the message's records to `out`; false (and `out` as it was) when the payload is
// not a CallRecord / CallRecordBatch, or a batch has a batch_format other than 1.
bool parse_call_records(std::string_view payload, std::vector<CallRecord>* out);

}  // namespace immunizer::v1
