#include "immunizer/monitor/processor.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include <google/protobuf/arena.h>
#include <google/protobuf/io/coded_stream.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "immunizer/common/logging.hpp"
#include "immunizer/common/message_part.hpp"
#include "immunizer/common/restore_timeout.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/v1/call_records.hpp"

namespace immunizer::monitor {

namespace {
// The arena's first block (kept across Reset) holds a typical message's records; a larger
// message takes further blocks, freed at the next Reset.
google::protobuf::ArenaOptions arena_options(char* block) {
  google::protobuf::ArenaOptions o;
  o.initial_block = block;
  o.initial_block_size = MonitorProcessor::kArenaBlockBytes;
  o.start_block_size = 64 << 10;
  o.max_block_size = 1 << 20;
  return o;
}
}  // namespace

MonitorProcessor::MonitorProcessor(MonitorConfig cfg, const common::Topics& topics,
                                   const common::Clock& clock, prometheus::Registry& r)
    : SnapshottingProcessor(kStage.snapshots, topics.models, cfg.snapshot_interval_ms, clock),
      cfg_(std::move(cfg)),
      topics_(topics),
      extractor_(cfg_.features),
      records_(common::register_counter(r, "immunizer_monitor_records_total",
                                        "Call records turned into feature vectors")),
      rejected_(common::counter_family(r, "immunizer_monitor_records_rejected_total",
                                       "Call records that could not be used, by reason")),
      memory_total_(common::register_gauge(r, "immunizer_monitor_memory_bytes",
                                           "Memory held by all monitor models")),
      memory_model_max_(common::register_gauge(
          r, "immunizer_monitor_model_memory_max_bytes",
          "Memory held by the largest model key (each is capped by the feature config)")),
      models_(common::register_gauge(r, "immunizer_monitor_models", "Model keys held")),
      arena_block_(new char[kArenaBlockBytes]),
      arena_(arena_options(arena_block_.get())) {}

void MonitorProcessor::process_batch(const std::vector<common::Message>& batch,
                                     common::Producer& out, const Reject& reject) {
  for (auto& [key, p] : pending_) p.rows = 0, p.buf.clear();  // left by a failed batch
  for (const auto& m : batch) {
    try {
      process_message(m, out, reject);
    } catch (const std::exception& e) {
      reject(m, "processing_error", e.what());
    }
  }
  flush_vectors(out);
}

void MonitorProcessor::process(const common::Message& m, common::Producer& out) {
  size_t bad = 0;
  std::string first_reason, first_detail;
  process_message(
      m, out, [&](const common::Message&, const std::string& reason, const std::string& detail) {
        if (bad++ == 0) first_reason = reason, first_detail = detail;
      });
  flush_vectors(out);
  if (bad > 0)
    throw common::BadMessage(
        first_reason, bad == 1 ? first_detail : std::to_string(bad) + " records: " + first_detail);
}

void MonitorProcessor::process_message(const common::Message& m, common::Producer& out,
                                       const Reject& reject) {
  records_buf_.clear();
  undecodable_.clear();
  // The common case: a batch that decodes as a whole, onto the arena (its records are
  // allocated by bumping a pointer in a reused block, and freed at once by the next
  // message's Reset). Otherwise each record is decoded on its own, so one that does not
  // decode is dead-lettered alone.
  const v1::CallRecordBatch* batch = nullptr;
  if (v1::is_call_record_batch(m.payload)) {
    arena_.Reset();  // the previous message's records: nothing of them is used any more
    auto* b = google::protobuf::Arena::CreateMessage<v1::CallRecordBatch>(&arena_);
    if (b->ParseFromArray(m.payload.data(), static_cast<int>(m.payload.size())) &&
        b->batch_format() == 1)
      batch = b;
  }
  if (batch != nullptr) {
    for (const auto& rec : batch->records()) {
      std::string reason;
      if (!process_record(rec, out, &reason))
        reject(common::message_part(m, rec.SerializeAsString()), "unusable_call_record", reason);
    }
    return;
  }
  if (!v1::parse_call_records(m.payload, &records_buf_, &undecodable_)) {
    rejected_.Add({{"reason", "unparsable_call_record"}}).Increment();
    reject(m, "unparsable_call_record", "payload is not a CallRecord or CallRecordBatch");
    return;
  }
  // A dead letter carries the one record it is about, with the message's coordinates.
  auto reject_part = [&](std::string_view bytes, const std::string& reason,
                         const std::string& detail) {
    reject(common::message_part(m, bytes), reason, detail);
  };
  for (const auto& u : undecodable_) {
    rejected_.Add({{"reason", "undecodable_call_record"}}).Increment();
    reject_part(u.bytes, "undecodable_call_record", u.reason);
  }
  for (const auto& rec : records_buf_) {
    std::string reason;
    if (!process_record(rec, out, &reason))
      reject_part(rec.SerializeAsString(), "unusable_call_record", reason);
  }
}

bool MonitorProcessor::process_record(const v1::CallRecord& rec, common::Producer& out,
                                      std::string* reason) {
  if (v1::find_label(rec, "immunizer.denied") != nullptr) {
    // A call the effector denied never ran: scoring it would only raise alarms about our own
    // 403s, and learning it would teach the model that denials are normal.
    rejected_.Add({{"reason", "denied_by_effector"}}).Increment();
    return true;
  }
  FeatureExtractor::RowSchema schema;
  if (!extractor_.extract_row(rec, &row_, &schema, reason)) {
    rejected_.Add({{"reason", reason->substr(0, reason->find(':'))}}).Increment();
    return false;
  }
  records_.Increment();
  // The row joins its key's output message as wire bytes, serialised from the one reused
  // row (no message per row is made, kept or freed). A new schema version, or a full
  // message, starts the key's next message.
  // A message's records share one model key (the sensor batches per key): the last key's
  // entry is checked before the map is searched.
  auto it = last_pending_;
  if (it == pending_.end() || it->first != schema.model_key) {
    it = pending_.find(schema.model_key);
    if (it == pending_.end()) it = pending_.try_emplace(std::string(schema.model_key)).first;
    last_pending_ = it;
  }
  Pending& p = it->second;
  const size_t names = schema.names->size();
  if (p.rows > 0 &&
      (p.version != schema.version || p.names != names || p.rows >= cfg_.max_vectors_per_message ||
       p.buf.size() >= cfg_.max_message_bytes))
    emit(it->first, p, out);
  if (p.rows == 0) start_message(it->first, p, schema);
  append_row(p.buf, rec, *schema.values);
  ++p.rows;
  return true;
}

namespace {
using google::protobuf::io::CodedOutputStream;

// A length-delimited field's tag and length, `body` bytes to follow.
uint8_t* put_field_header(uint8_t* at, uint32_t field, size_t body) {
  *at++ = static_cast<uint8_t>((field << 3) | 2);
  return CodedOutputStream::WriteVarint64ToArray(uint64_t{body}, at);
}
size_t field_bytes(size_t body) { return 1 + CodedOutputStream::VarintSize64(body) + body; }

uint8_t* put_doubles(uint8_t* at, const std::vector<double>& v) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(at, v.data(), v.size() * sizeof(double));
    return at + v.size() * sizeof(double);
  } else {
    for (double d : v)
      at = CodedOutputStream::WriteLittleEndian64ToArray(std::bit_cast<uint64_t>(d), at);
    return at;
  }
}
}  // namespace

// FeatureVectorBatch.rows (field 4, length-delimited), then the row's fields in field order,
// as FeatureRow serialises them: record_id (1) and principal (3) straight from the record,
// the values (2, packed) straight from the model's vector, then call, timestamp and labels
// (4-6) from row_. No copy of the values, record id or principal is made.
void MonitorProcessor::append_row(std::string& buf, const v1::CallRecord& rec,
                                  const std::vector<double>& values) {
  // Both are always present in a row (an absent one as an empty message, as the copy into a
  // row's sub-message made it); an absent one's default instance is never sized or written.
  const size_t id = rec.has_id() ? rec.id().ByteSizeLong() : 0;
  const size_t principal = rec.has_principal() ? rec.principal().ByteSizeLong() : 0;
  const size_t vals = values.size() * sizeof(double);
  const size_t n = field_bytes(id) + (vals > 0 ? field_bytes(vals) : 0) + field_bytes(principal) +
                   row_.ByteSizeLong();
  const size_t at = buf.size();
  buf.resize(at + field_bytes(n));
  auto* w = reinterpret_cast<uint8_t*>(buf.data() + at);
  w = put_field_header(w, 4, n);
  w = put_field_header(w, 1, id);
  if (id > 0) w = rec.id().SerializeWithCachedSizesToArray(w);
  if (vals > 0) w = put_doubles(put_field_header(w, 2, vals), values);
  w = put_field_header(w, 3, principal);
  if (principal > 0) w = rec.principal().SerializeWithCachedSizesToArray(w);
  row_.SerializeWithCachedSizesToArray(w);
}

// A key's message starts with batch_format, model key and schema: serialised once per
// (key, schema version) and copied at the start of each message.
void MonitorProcessor::start_message(const std::string& key, Pending& p,
                                     const FeatureExtractor::RowSchema& schema) {
  const size_t names = schema.names->size();
  if (p.header.empty() || p.version != schema.version || p.names != names) {
    v1::FeatureVectorBatch h;
    h.set_batch_format(1);  // field 1 first: what tells a batch from a single FeatureVector
    h.set_model_key(key);
    h.mutable_schema()->set_version(schema.version);
    for (const auto& n : *schema.names) h.mutable_schema()->add_names(n);
    h.SerializeToString(&p.header);
    p.version = schema.version;
    p.names = names;
  }
  p.buf.assign(p.header);
}

void MonitorProcessor::emit(const std::string& key, Pending& p, common::Producer& out) {
  mark(key);  // once per message, not per record
  out.produce(topics_.features, key, p.buf);
  p.buf.clear();  // keeps its capacity for the key's next message
  p.rows = 0;
}

void MonitorProcessor::flush_vectors(common::Producer& out) {
  for (auto& [key, p] : pending_)
    if (p.rows > 0) emit(key, p, out);
  // A key that stopped sending gives its buffers back after a while: at most max_models
  // pending entries are held, like the extractor's models.
  if (pending_.size() > cfg_.features.max_models) {
    pending_.clear();
    last_pending_ = pending_.end();
  }
}

std::optional<std::pair<std::string, uint64_t>> MonitorProcessor::state_of(const std::string& key) {
  return std::make_pair(extractor_.snapshot(key), extractor_.records_seen(key));
}

void MonitorProcessor::update_gauges() {
  const auto keys = extractor_.model_keys();
  models_.Set(static_cast<double>(keys.size()));
  memory_total_.Set(static_cast<double>(extractor_.memory_bytes()));
  // One gauge for the largest key, not one series per key: model keys come from the app's
  // call names and contexts and are unbounded.
  size_t largest = 0;
  for (const auto& k : keys) largest = std::max(largest, extractor_.memory_bytes(k));
  memory_model_max_.Set(static_cast<double>(largest));
}

void MonitorProcessor::restore_key(const std::string& key, const std::string& state) {
  extractor_.restore(key, state);
}

const common::Stage kStage{
    .name = "monitor",
    .default_port = 9101,
    .inputs = {&common::Topics::calls},
    .outputs = {&common::Topics::features, &common::Topics::models},
    .snapshots = {.kind = "monitor", .format = FeatureExtractor::kSnapshotFormat},
    .tunable = true,
    .setup =
        [](common::ServiceContext& ctx) {
          return common::snapshotting_setup<MonitorConfig, MonitorProcessor>(ctx, "monitor");
        },
};

}  // namespace immunizer::monitor
