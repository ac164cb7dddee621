// Decoding of immunizer.features messages: a FeatureVectorBatch (what the monitor writes: one
// model key, its schema once, then rows of values) or a single FeatureVector (the former
// format, from an older monitor). When a batch does not decode as a whole, its envelope is
// walked by hand and each row decoded on its own, so one bad row never costs the others.
// Stateless and thread-safe; reuse one output message per thread so its buffers are reused.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "immunizer/v1/call_records.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::v1 {

// True when the payload starts like a FeatureVectorBatch (batch_format = 1 first).
bool is_feature_vector_batch(std::string_view payload) noexcept;

// Decodes `payload` into `out` (replacing what it held). A single FeatureVector becomes a
// batch of one row. Returns false, with `reason` set, when the payload is neither, its
// batch_format is not 1, its framing is broken, or its model key or schema does not decode:
// then no row can be used. Otherwise true; rows that do not decode are left out of `out` and
// appended to `bad` (views into `payload`).
bool parse_feature_batch(std::string_view payload, FeatureVectorBatch* out,
                         std::vector<UndecodableRecord>* bad, std::string* reason);

// Moves the per-record fields of `v` (record id, values, principal, call, timestamp, labels)
// into a new row of `b`, swapping buffers rather than copying; returns the row.
FeatureRow* move_to_row(FeatureVector& v, FeatureVectorBatch& b);

}  // namespace immunizer::v1
