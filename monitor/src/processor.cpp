#include "immunizer/monitor/processor.hpp"

#include <algorithm>

#include "immunizer/common/logging.hpp"
#include "immunizer/common/snapshots.hpp"
#include "immunizer/common/stream_service.hpp"
#include "immunizer/v1/call_records.hpp"

namespace immunizer::monitor {

MonitorProcessor::MonitorProcessor(MonitorConfig cfg, const common::Topics& topics,
                                   const common::Clock& clock, prometheus::Registry& r)
    : cfg_(cfg),
      topics_(topics),
      clock_(clock),
      extractor_(cfg.features),
      snapshots_("monitor", FeatureExtractor::kSnapshotFormat, topics.models,
                 cfg.snapshot_interval_ms, clock),
      records_(prometheus::BuildCounter()
                   .Name("immunizer_monitor_records_total")
                   .Help("Call records turned into feature vectors")
                   .Register(r)
                   .Add({})),
      rejected_(prometheus::BuildCounter()
                    .Name("immunizer_monitor_records_rejected_total")
                    .Help("Call records that could not be used, by reason")
                    .Register(r)),
      memory_total_(prometheus::BuildGauge()
                        .Name("immunizer_monitor_memory_bytes")
                        .Help("Memory held by all monitor models")
                        .Register(r)
                        .Add({})),
      memory_model_max_(
          prometheus::BuildGauge()
              .Name("immunizer_monitor_model_memory_max_bytes")
              .Help("Memory held by the largest model key (each is capped by the feature config)")
              .Register(r)
              .Add({})),
      models_(prometheus::BuildGauge()
                  .Name("immunizer_monitor_models")
                  .Help("Model keys held")
                  .Register(r)
                  .Add({})) {}

void MonitorProcessor::process_batch(const std::vector<common::Message>& batch,
                                     common::Producer& out, const Reject& reject) {
  for (const auto& m : batch) {
    try {
      process_message(m, out, reject);
    } catch (const std::exception& e) {
      reject(m, "processing_error", e.what());
    }
  }
}

void MonitorProcessor::process(const common::Message& m, common::Producer& out) {
  size_t bad = 0;
  std::string first_reason, first_detail;
  process_message(
      m, out, [&](const common::Message&, const std::string& reason, const std::string& detail) {
        if (bad++ == 0) first_reason = reason, first_detail = detail;
      });
  if (bad > 0)
    throw common::BadMessage(
        first_reason, bad == 1 ? first_detail : std::to_string(bad) + " records: " + first_detail);
}

void MonitorProcessor::process_message(const common::Message& m, common::Producer& out,
                                       const Reject& reject) {
  records_buf_.clear();
  undecodable_.clear();
  if (!v1::parse_call_records(m.payload, &records_buf_, &undecodable_)) {
    rejected_.Add({{"reason", "unparsable_call_record"}}).Increment();
    reject(m, "unparsable_call_record", "payload is not a CallRecord or CallRecordBatch");
    return;
  }
  // A dead letter carries the one record it is about, with the message's coordinates.
  auto reject_part = [&](std::string_view bytes, const std::string& reason,
                         const std::string& detail) {
    common::Message part;
    part.topic = m.topic;
    part.partition = m.partition;
    part.offset = m.offset;
    part.key = m.key;
    part.timestamp_ms = m.timestamp_ms;
    part.payload.assign(bytes);
    reject(part, reason, detail);
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
  const std::string key = FeatureExtractor::model_key(rec);
  v1::FeatureVector& v = scratch_[key];
  if (!extractor_.extract(rec, &v, reason)) {
    scratch_.erase(key);
    rejected_.Add({{"reason", reason->substr(0, reason->find(':'))}}).Increment();
    return false;
  }
  records_.Increment();
  snapshots_.mark(v.model_key());
  out.produce(topics_.features, v.model_key(), v.SerializeAsString());
  return true;
}

std::optional<std::pair<std::string, uint64_t>> MonitorProcessor::state_of(
    const std::string& key) const {
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

void MonitorProcessor::tick(common::Producer& out) {
  if (snapshots_.maybe_write(out, [this](const std::string& k) { return state_of(k); }))
    update_gauges();
}

void MonitorProcessor::drain(common::Producer& out) {
  snapshots_.write_final(out, [this](const std::string& k) { return state_of(k); });
}

size_t MonitorProcessor::restore(const std::map<std::string, v1::ModelSnapshot>& snaps) {
  const size_t n = common::restore_each(
      snaps, "monitor", [this](const std::string& key, const v1::ModelSnapshot& snap) {
        if (snap.format_version() != FeatureExtractor::kSnapshotFormat)
          throw std::runtime_error("format " + std::to_string(snap.format_version()));
        extractor_.restore(key, snap.state());
      });
  update_gauges();
  return n;
}

}  // namespace immunizer::monitor
