#include "immunizer/v1/feature_batches.hpp"

#include <cstdint>

#include "wire.hpp"

#include "immunizer/v1/text.hpp"

namespace immunizer::v1 {
namespace {

bool fail(std::string* reason, const char* why) {
  if (reason) *reason = why;
  return false;
}

// A former single FeatureVector as a batch of one row.
bool parse_single(std::string_view payload, FeatureVectorBatch* out, std::string* reason) {
  FeatureVector v;
  if (!v.ParseFromArray(payload.data(), static_cast<int>(payload.size())))
    return fail(reason, "payload is neither a FeatureVectorBatch nor a FeatureVector");
  out->Clear();
  out->set_batch_format(1);
  out->mutable_model_key()->swap(*v.mutable_model_key());
  out->mutable_schema()->Swap(v.mutable_schema());
  move_to_row(v, *out);
  return true;
}

}  // namespace

FeatureRow* move_to_row(FeatureVector& v, FeatureVectorBatch& b) {
  FeatureRow* row = b.add_rows();
  row->mutable_record_id()->Swap(v.mutable_record_id());
  row->mutable_values()->Swap(v.mutable_values());
  row->mutable_principal()->Swap(v.mutable_principal());
  row->mutable_call()->swap(*v.mutable_call());
  row->set_timestamp_unix_nanos(v.timestamp_unix_nanos());
  row->mutable_labels()->swap(*v.mutable_labels());
  return row;
}

bool is_feature_vector_batch(std::string_view payload) noexcept {
  return payload.size() >= 2 && payload[0] == '\x08' && payload[1] == '\x01';
}

bool parse_feature_batch(std::string_view payload, FeatureVectorBatch* out,
                         std::vector<UndecodableRecord>* bad, std::string* reason) {
  if (!is_feature_vector_batch(payload)) return parse_single(payload, out, reason);
  // The common case: the whole batch decodes (parsing into a reused message reuses its rows).
  if (out->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    if (out->batch_format() != 1) return fail(reason, "unknown batch_format");
    return true;
  }
  // Something in it does not decode: walk the envelope and decode each row on its own.
  out->Clear();
  wire::Reader w(payload);
  std::vector<std::string_view> rows;
  uint64_t format = 0;
  while (w.p != w.end) {
    uint64_t tag = 0;
    if (!w.varint(&tag)) return fail(reason, "broken framing");
    const auto field = static_cast<uint32_t>(tag >> 3);
    const auto type = static_cast<uint32_t>(tag & 7);
    std::string_view part;
    if (field == 1 && type == 0) {
      if (!w.varint(&format)) return fail(reason, "broken framing");
    } else if (field == 2 && type == 2) {
      if (!w.bytes(&part)) return fail(reason, "broken framing");
      if (!is_valid_utf8(part)) return fail(reason, "model key is not valid UTF-8");
      out->set_model_key(std::string(part));
    } else if (field == 3 && type == 2) {
      if (!w.bytes(&part)) return fail(reason, "broken framing");
      FeatureSchema s;
      if (!s.ParseFromArray(part.data(), static_cast<int>(part.size())))
        return fail(reason, "schema does not decode");
      out->mutable_schema()->MergeFrom(s);  // repeated fields append, as protobuf merges
    } else if (field == 4 && type == 2) {
      if (!w.bytes(&part)) return fail(reason, "broken framing");
      rows.push_back(part);
    } else if (field == 0 || !w.skip(type)) {
      return fail(reason, "broken framing");
    }
  }
  if (format != 1) return fail(reason, "unknown batch_format");
  out->set_batch_format(1);
  for (size_t i = 0; i < rows.size(); ++i) {
    FeatureRow* row = out->add_rows();
    if (!row->ParseFromArray(rows[i].data(), static_cast<int>(rows[i].size()))) {
      out->mutable_rows()->RemoveLast();
      if (bad)
        bad->push_back({rows[i], "row " + std::to_string(i + 1) + " of " +
                                     std::to_string(rows.size()) + " does not decode"});
    }
  }
  return true;
}

}  // namespace immunizer::v1
