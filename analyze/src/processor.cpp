#include "immunizer/analyze/processor.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <algorithm>
#include <span>

#include "immunizer/analyze/models/score_command.hpp"
#include "immunizer/common/compress.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/common/message_part.hpp"
#include "immunizer/common/restore_timeout.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/v1/feature_batches.hpp"
#include "immunizer/v1/names.hpp"
#include "immunizer/v1/principal.hpp"

namespace immunizer::analyze {

// The service's metrics, registered once.
struct AnalyzeProcessor::Metrics {
  explicit Metrics(prometheus::Registry& r)
      : alarms(common::counter_family(r, "immunizer_alarms_total", "Alarms raised, by severity")),
        scored(common::register_counter(r, "immunizer_analyze_vectors_scored_total",
                                        "Feature vectors scored by an active model")),
        learning(common::register_counter(
            r, "immunizer_analyze_vectors_learning_total",
            "Feature vectors absorbed by models still in their grace period")),
        detection_latency(common::register_histogram(
            r, "immunizer_detection_latency_seconds", "From the instrumented call to its alarm",
            {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
        models_by_state(
            common::gauge_family(r, "immunizer_analyze_models", "Model keys held, by state")),
        models_active(models_by_state.Add({{"state", "active"}})),
        models_learning(models_by_state.Add({{"state", "learning"}})),
        memory(common::register_gauge(r, "immunizer_analyze_model_memory_bytes",
                                      "Memory held by all models")),
        feedback(common::counter_family(
            r, "immunizer_analyze_feedback_total",
            "False-positive feedback, by what it did to the model's reservoir (added, replaced: "
            "within the feedback share; merged: alike to a row already taught; ignored, "
            "unknown_model)")) {}
  prometheus::Family<prometheus::Counter>& alarms;
  prometheus::Counter& scored;
  prometheus::Counter& learning;
  prometheus::Histogram& detection_latency;
  prometheus::Family<prometheus::Gauge>& models_by_state;
  prometheus::Gauge& models_active;
  prometheus::Gauge& models_learning;
  prometheus::Gauge& memory;
  prometheus::Family<prometheus::Counter>& feedback;
  prometheus::Counter* alarms_by_severity[5] = {};  // made at the first alarm of each severity
};

AnalyzeProcessor::AnalyzeProcessor(AnalyzeConfig cfg, const common::Topics& topics,
                                   const common::Clock& clock, prometheus::Registry& r)
    : SnapshottingProcessor(kStage.snapshots, topics.models, cfg.snapshot_interval_ms, clock),
      cfg_(std::move(cfg)),
      topics_(topics),
      clock_(clock),
      models_(cfg_.detector, cfg_.threads),
      metrics_(std::make_unique<Metrics>(r)) {}

AnalyzeProcessor::~AnalyzeProcessor() = default;

void AnalyzeProcessor::process(const common::Message& m, common::Producer& out) {
  process_batch({m}, out,
                [](const common::Message&, const std::string& reason, const std::string& detail) {
                  throw common::BadMessage(reason, detail);
                });
}

void AnalyzeProcessor::feedback(const v1::Feedback& f) {
  if (f.verdict() != v1::FEEDBACK_FALSE_POSITIVE || f.values().empty()) return;
  auto* k = models_.find(f.model_key());
  if (!k) {
    metrics_->feedback.Add({{"outcome", "unknown_model"}}).Increment();
    return;
  }
  using O = ModelKeyState::FeedbackOutcome;
  const O o = k->feedback_false_positive(std::vector<double>(f.values().begin(), f.values().end()));
  metrics_->feedback
      .Add({{"outcome", o == O::kAdded      ? "added"
                        : o == O::kReplaced ? "replaced"
                        : o == O::kMerged   ? "merged"
                                            : "ignored"}})
      .Increment();
  if (o == O::kAdded || o == O::kReplaced) mark(f.model_key());
}

FeatureNames AnalyzeProcessor::names_for(const v1::FeatureVectorBatch& b) {
  const auto& names = b.schema().names();
  auto it = schemas_.find(b.model_key());
  if (it != schemas_.end() && it->second.version == b.schema().version() &&
      it->second.names->size() == static_cast<size_t>(names.size()))
    return it->second.names;  // the version is the contract, as in ModelKeyState::observe
  auto made = std::make_shared<const std::vector<std::string>>(names.begin(), names.end());
  if (it == schemas_.end()) {
    // Bounded like the models: a cache entry per model key seen, forgotten wholesale past a
    // size no deployment reaches (the model states keep their own reference).
    constexpr size_t kMaxCached = 1'000'000;
    if (schemas_.size() >= kMaxCached) schemas_.clear();
    it = schemas_.try_emplace(b.model_key()).first;
  }
  it->second = {b.schema().version(), made};
  return made;
}

AnalyzeProcessor::Output& AnalyzeProcessor::next_output(KeyWork& w, const std::string& topic) {
  if (w.n_outputs == w.outputs.size()) w.outputs.emplace_back();
  Output& o = w.outputs[w.n_outputs++];
  o.topic = &topic;
  return o;
}

namespace {

// A dead letter for one row carries that row's bytes, with its message's coordinates.
void reject_part(const common::Processor::Reject& reject, const common::Message& m,
                 std::string_view bytes, const std::string& reason, const std::string& detail) {
  reject(common::message_part(m, bytes), reason, detail);
}

}  // namespace

void AnalyzeProcessor::build_alarm(const v1::FeatureVectorBatch& b, const v1::FeatureRow& row,
                                   const Verdict& verdict, int64_t now, v1::Alarm& a) const {
  const uint32_t version = b.schema().version();
  a.Clear();
  // Deterministic: a replay after a crash raises the same alarm, which downstream drops.
  // The model version is the feature schema version (what a replayed vector is scored
  // under; the fit count may differ when the restored snapshot is newer than the offsets).
  const auto& rid = row.record_id();
  if (rid.app().empty() && rid.instance().empty() && rid.seq() == 0)
    a.set_id(common::random_id());  // no identity to derive from
  else
    a.set_id(common::derived_id({"alarm", rid.app(), rid.instance(), std::to_string(rid.seq()),
                                 b.model_key(), std::to_string(version)}));
  *a.mutable_record_id() = rid;
  a.set_model_key(b.model_key());
  *a.mutable_principal() = row.principal();
  a.set_call(row.call());
  if (cfg_.detector.detector != DetectorKind::kAutoencoder) {
    auto* ds = a.add_scores();
    ds->set_detector("iforest");
    ds->set_raw(verdict.iforest_raw);
    ds->set_tail_probability(verdict.iforest_tail);
  }
  if (cfg_.detector.detector != DetectorKind::kIForest) {
    auto* ds = a.add_scores();
    ds->set_detector("autoencoder");
    ds->set_raw(verdict.ae_raw);
    ds->set_tail_probability(verdict.ae_tail);
  }
  a.set_combined_score(verdict.combined);
  a.set_threshold(verdict.threshold);
  a.set_severity(static_cast<v1::Severity>(std::clamp(verdict.severity, 1, 4)));
  for (const auto& c : verdict.top) {
    auto* f = a.add_top_features();
    f->set_feature(c.feature);
    f->set_contribution(c.contribution);
    f->set_value(c.value);
  }
  a.set_timestamp_unix_nanos(row.timestamp_unix_nanos());
  a.set_raised_unix_nanos(now);
  *a.mutable_labels() = row.labels();
  *a.mutable_values() = row.values();
  a.set_schema_version(version);
}

void AnalyzeProcessor::score_key(KeyWork& w, int64_t now) {
  // The forest part of the scores of this key's rows, all at once (the leading messages of
  // the first message's schema; observe() scores any other row directly).
  w.rows.clear();
  const v1::FeatureVectorBatch& first = *decoded_[w.messages.front()]->batch;
  for (const size_t mi : w.messages) {
    const Decoded& d = *decoded_[mi];
    if (d.batch->schema().version() != first.schema().version() ||
        d.batch->schema().names_size() != first.schema().names_size())
      break;
    for (int r = 0; r < d.batch->rows_size(); ++r)
      if (d.row_ok[static_cast<size_t>(r)]) w.rows.push_back(d.batch->rows(r).values().data());
  }
  w.state->precompute(w.rows, static_cast<size_t>(first.schema().names_size()),
                      first.schema().version());
  for (const size_t mi : w.messages) {
    const Decoded& d = *decoded_[mi];
    const v1::FeatureVectorBatch& b = *d.batch;
    for (int r = 0; r < b.rows_size(); ++r) {
      if (!d.row_ok[static_cast<size_t>(r)]) continue;
      const v1::FeatureRow& row = b.rows(r);
      Verdict verdict;
      try {
        verdict = w.state->observe(
            std::span<const double>(row.values().data(), static_cast<size_t>(row.values_size())),
            d.names, b.schema().version());
      } catch (const std::exception& e) {
        w.rejected.emplace_back(mi, static_cast<size_t>(r));
        w.errors.emplace_back(e.what());
        continue;
      }
      ++(verdict.state == ModelState::kActive ? w.scored : w.learning);
      v1::Score& s = w.score;
      *s.mutable_record_id() = row.record_id();
      s.set_model_key(b.model_key());
      s.set_combined_score(verdict.combined);
      s.set_threshold(verdict.threshold);
      s.set_alarmed(verdict.alarm);
      s.set_model_state(to_string(verdict.state));
      *s.mutable_labels() = row.labels();
      Output& so = next_output(w, topics_.scores);
      so.key.assign(b.model_key());
      s.SerializeToString(&so.payload);
      if (!verdict.alarm) continue;

      build_alarm(b, row, verdict, now, w.alarm);
      Output& ao = next_output(w, topics_.alarms);
      ao.key.assign(v1::partition_key(row.principal()));
      w.alarm.SerializeToString(&ao.payload);
      ++w.by_severity[w.alarm.severity()];
      if (row.timestamp_unix_nanos() > 0 && now > row.timestamp_unix_nanos())
        w.latencies.push_back(static_cast<double>(now - row.timestamp_unix_nanos()) / 1e9);
    }
  }
}

std::vector<const common::Message*> AnalyzeProcessor::take_feedback(
    const std::vector<common::Message>& batch, const Reject& reject) {
  std::vector<const common::Message*> features;
  features.reserve(batch.size());
  for (const auto& m : batch) {
    if (m.topic != topics_.feedback) {
      features.push_back(&m);
      continue;
    }
    v1::Feedback f;
    if (!f.ParseFromString(m.payload)) {
      reject(m, "unparsable_feedback", "not a Feedback");
      continue;
    }
    feedback(f);
  }
  return features;
}

void AnalyzeProcessor::decode_all(const std::vector<const common::Message*>& features) {
  while (decoded_.size() < features.size()) decoded_.push_back(std::make_unique<Decoded>());
  models_.parallel_for(features.size(), [&](size_t i) {
    Decoded& d = *decoded_[i];
    d.msg = features[i];
    d.bad_rows.clear();
    d.error.clear();
    d.names.reset();
    if (d.arena) {
      d.arena->Reset();
    } else {
      google::protobuf::ArenaOptions o;
      o.start_block_size = 16 << 10;
      o.max_block_size = 64 << 10;
      d.arena = std::make_unique<google::protobuf::Arena>(o);
    }
    d.batch = google::protobuf::Arena::CreateMessage<v1::FeatureVectorBatch>(d.arena.get());
    if (!v1::parse_feature_batch(d.msg->payload, d.batch, &d.bad_rows, &d.error) && d.error.empty())
      d.error = "payload is not a FeatureVectorBatch";
  });
}

size_t AnalyzeProcessor::check_rows(Decoded& d, const Reject& reject) {
  const common::Message& m = *d.msg;
  if (!d.error.empty()) {
    reject(m, "unparsable_feature_vector", d.error);
    return 0;
  }
  for (const auto& u : d.bad_rows)
    reject_part(reject, m, u.bytes, "unparsable_feature_vector", u.reason);
  const v1::FeatureVectorBatch& b = *d.batch;
  const bool single = !v1::is_feature_vector_batch(m.payload);  // the former FeatureVector
  const int width = b.schema().names_size();
  if (b.model_key().empty() || width == 0) {
    reject(m, "invalid_feature_vector",
           "model key '" + b.model_key() + "', " + std::to_string(width) + " names");
    return 0;
  }
  d.row_ok.assign(static_cast<size_t>(b.rows_size()), 1);
  size_t usable = 0;
  for (int r = 0; r < b.rows_size(); ++r) {
    if (b.rows(r).values_size() == width) {
      ++usable;
      continue;
    }
    d.row_ok[static_cast<size_t>(r)] = 0;
    const std::string detail = "model key '" + b.model_key() + "', " +
                               std::to_string(b.rows(r).values_size()) + " values, " +
                               std::to_string(width) + " names";
    if (single)
      reject(m, "invalid_feature_vector", detail);
    else
      reject_part(reject, m, b.rows(r).SerializeAsString(), "invalid_feature_vector", detail);
  }
  return usable;
}

size_t AnalyzeProcessor::group_by_key(size_t n, const Reject& reject) {
  std::map<std::string_view, size_t> group_of;
  size_t groups = 0;
  for (size_t i = 0; i < n; ++i) {
    Decoded& d = *decoded_[i];
    if (check_rows(d, reject) == 0) continue;
    const v1::FeatureVectorBatch& b = *d.batch;
    d.names = names_for(b);
    const auto [it, fresh] = group_of.try_emplace(b.model_key(), groups);
    if (fresh) {
      if (work_.size() == groups) work_.push_back(std::make_unique<KeyWork>());
      KeyWork& w = *work_[groups++];
      w.state = &models_.get_or_create(b.model_key());
      w.model_key = &b.model_key();
      w.messages.clear();
      w.n_outputs = 0;
      w.rejected.clear();
      w.errors.clear();
      w.latencies.clear();
      w.scored = w.learning = 0;
      std::fill(std::begin(w.by_severity), std::end(w.by_severity), 0);
    }
    work_[it->second]->messages.push_back(i);
  }
  return groups;
}

void AnalyzeProcessor::publish(KeyWork& w, common::Producer& out, const Reject& reject) {
  for (size_t k = 0; k < w.rejected.size(); ++k) {
    const Decoded& d = *decoded_[w.rejected[k].first];
    if (!v1::is_feature_vector_batch(d.msg->payload))
      reject(*d.msg, "model_rejected_vector", w.errors[k]);
    else
      reject_part(reject, *d.msg,
                  d.batch->rows(static_cast<int>(w.rejected[k].second)).SerializeAsString(),
                  "model_rejected_vector", w.errors[k]);
  }
  if (w.scored + w.learning > 0) mark(*w.model_key);
  if (w.scored) metrics_->scored.Increment(static_cast<double>(w.scored));
  if (w.learning) metrics_->learning.Increment(static_cast<double>(w.learning));
  for (int sev = 1; sev <= 4; ++sev) {
    if (w.by_severity[sev] == 0) continue;
    if (!metrics_->alarms_by_severity[sev])
      metrics_->alarms_by_severity[sev] = &metrics_->alarms.Add(
          {{"severity", std::string(v1::severity_label(static_cast<v1::Severity>(sev)))}});
    metrics_->alarms_by_severity[sev]->Increment(static_cast<double>(w.by_severity[sev]));
  }
  for (const double l : w.latencies) metrics_->detection_latency.Observe(l);
  for (size_t o = 0; o < w.n_outputs; ++o)
    out.produce(*w.outputs[o].topic, w.outputs[o].key, w.outputs[o].payload);
}

void AnalyzeProcessor::process_batch(const std::vector<common::Message>& batch,
                                     common::Producer& out, const Reject& reject) {
  // Feedback first, in batch order, as it is read; then the vectors.
  const std::vector<const common::Message*> features = take_feedback(batch, reject);
  if (features.empty()) return;
  // 1. Decode every message, in parallel (each into its reused slot).
  decode_all(features);
  // 2. On this thread: reject what cannot be used, find the names and the model of each
  // message, group the messages by model key.
  const size_t groups = group_by_key(features.size(), reject);
  if (groups == 0) return;
  // 3. Score and build the outputs, one task per model key (its vectors in order).
  const int64_t now = clock_.now_unix_nanos();
  models_.parallel_for(groups, [&](size_t g) { score_key(*work_[g], now); });
  // 4. On this thread: produce, count, dead-letter what the models refused.
  for (size_t g = 0; g < groups; ++g) publish(*work_[g], out, reject);
}

std::optional<std::pair<std::string, uint64_t>> AnalyzeProcessor::state_of(const std::string& key) {
  auto* k = models_.find(key);
  if (!k) return std::nullopt;
  // snapshot() deflates its frame itself: its bytes go out as they are.
  return std::make_pair(k->snapshot(), static_cast<uint64_t>(k->records_seen()));
}

void AnalyzeProcessor::update_gauges() {
  size_t active = 0;
  for (const auto& k : models_.keys())
    if (auto* s = models_.find(k); s && s->state() == ModelState::kActive) ++active;
  metrics_->models_active.Set(static_cast<double>(active));
  metrics_->models_learning.Set(static_cast<double>(models_.size() - active));
  metrics_->memory.Set(static_cast<double>(models_.memory_bytes()));
}

void AnalyzeProcessor::restore_key(const std::string& key, const std::string& state) {
  models_.restore(key, state);
}

size_t AnalyzeProcessor::restore(const std::map<std::string, v1::ModelSnapshot>& snaps) {
  // Snapshots written before format 3 hold the same bytes inside a second zlib stream: they
  // are unwrapped and restored here; the base restores the current format (and skips others).
  const bool any_old = std::any_of(snaps.begin(), snaps.end(), [](const auto& kv) {
    return kv.second.format_version() == kOldSnapshotFormat;
  });
  if (!any_old) return SnapshottingProcessor::restore(snaps);
  std::map<std::string, v1::ModelSnapshot> rest;
  size_t old = 0;
  for (const auto& [key, snap] : snaps) {
    if (snap.format_version() != kOldSnapshotFormat) {
      rest.emplace(key, snap);
      continue;
    }
    try {
      restore_key(key, common::zlib_decompress(snap.state()));
      ++old;
    } catch (const std::exception& e) {
      common::logger("analyze")->warn("snapshot of {} (format {}) skipped: {}", key,
                                      kOldSnapshotFormat, e.what());
    }
  }
  return old + SnapshottingProcessor::restore(rest);
}

void AnalyzeProcessor::drain(common::Producer& out) {
  // The final snapshots hold the newest models: wait for the refits under way.
  for (const auto& k : models_.keys())
    if (auto* s = models_.find(k); s && s->finish_refit()) mark(k);
  SnapshottingProcessor::drain(out);
}

const common::Stage kStage{
    .name = "analyze",
    .default_port = 9102,
    .inputs = {&common::Topics::features, &common::Topics::feedback},
    .outputs = {&common::Topics::scores, &common::Topics::alarms, &common::Topics::models},
    .snapshots = {.kind = "analyze", .format = AnalyzeProcessor::kSnapshotFormat},
    .commands = {{"score", [](int argc, char** argv) { return score_command(argc, argv); }}},
    .tunable = true,
    .setup =
        [](common::ServiceContext& ctx) {
          return common::snapshotting_setup<AnalyzeConfig, AnalyzeProcessor>(ctx, "analyze");
        },
};

}  // namespace immunizer::analyze
