#include "immunizer/monitor/processor.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include <algorithm>

#include "immunizer/common/logging.hpp"
#include "immunizer/common/message_part.hpp"
#include "immunizer/common/restore_timeout.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/v1/call_records.hpp"
#include "immunizer/v1/feature_batches.hpp"

namespace immunizer::monitor {

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
      models_(common::register_gauge(r, "immunizer_monitor_models", "Model keys held")) {}

void MonitorProcessor::process_batch(const std::vector<common::Message>& batch,
                                     common::Producer& out, const Reject& reject) {
  for (auto& [key, p] : pending_) p.batch.mutable_rows()->Clear();  // left by a failed batch
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
  // The common case: a batch that decodes as a whole, into a reused message (its records'
  // strings and arguments are reused, not allocated per record). Otherwise each record is
  // decoded on its own, so one that does not decode is dead-lettered alone.
  if (v1::is_call_record_batch(m.payload) &&
      batch_buf_.ParseFromArray(m.payload.data(), static_cast<int>(m.payload.size())) &&
      batch_buf_.batch_format() == 1) {
    for (const auto& rec : batch_buf_.records()) {
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
  FeatureExtractor::model_key(rec, &key_buf_);
  auto sit = scratch_.find(key_buf_);
  if (sit == scratch_.end()) sit = scratch_.try_emplace(key_buf_).first;
  v1::FeatureVector& v = sit->second;
  if (!extractor_.extract(rec, &v, reason)) {
    scratch_.erase(sit);
    rejected_.Add({{"reason", reason->substr(0, reason->find(':'))}}).Increment();
    return false;
  }
  records_.Increment();
  // The row joins the key's output message; its fields are swapped out of the extractor's
  // reusable vector (no copy), the schema is copied only when a message starts or the
  // version changes. A new version, or a full message, starts the next message.
  auto it = pending_.find(v.model_key());
  if (it == pending_.end()) it = pending_.try_emplace(v.model_key()).first;
  Pending& p = it->second;
  v1::FeatureVectorBatch& b = p.batch;
  if (b.rows_size() > 0 && (b.schema().version() != v.schema().version() ||
                            b.schema().names_size() != v.schema().names_size() ||
                            static_cast<size_t>(b.rows_size()) >= cfg_.max_vectors_per_message ||
                            p.bytes >= cfg_.max_message_bytes)) {
    emit(b, out);
    p.bytes = 0;
  }
  if (b.rows_size() == 0) {
    if (b.model_key() != v.model_key() || b.schema().version() != v.schema().version() ||
        b.schema().names_size() != v.schema().names_size()) {
      b.set_batch_format(1);
      b.set_model_key(v.model_key());
      *b.mutable_schema() = v.schema();
    }
    p.bytes = b.model_key().size() + 16;
    for (const auto& n : b.schema().names()) p.bytes += n.size() + 2;
  }
  const v1::FeatureRow* row = v1::move_to_row(v, b);
  size_t bytes = 24 + 8 * static_cast<size_t>(row->values_size()) + row->call().size() +
                 row->record_id().app().size() + row->record_id().instance().size() +
                 row->principal().user().size() + row->principal().session().size() +
                 row->principal().ip().size();
  for (const auto& [k, val] : row->labels()) bytes += k.size() + val.size() + 6;
  p.bytes += bytes;
  return true;
}

void MonitorProcessor::emit(v1::FeatureVectorBatch& b, common::Producer& out) {
  mark(b.model_key());  // once per message, not per record
  b.SerializeToString(&out_buf_);
  out.produce(topics_.features, b.model_key(), out_buf_);
  b.mutable_rows()->Clear();  // keeps the cleared rows for reuse
}

void MonitorProcessor::flush_vectors(common::Producer& out) {
  for (auto& [key, p] : pending_) {
    if (p.batch.rows_size() > 0) emit(p.batch, out);
    p.bytes = 0;
  }
  // A key that stopped sending gives its buffers back after a while: at most max_models
  // pending entries are held, like the extractor's models.
  if (pending_.size() > cfg_.features.max_models) pending_.clear();
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
