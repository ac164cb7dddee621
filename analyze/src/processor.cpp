#include "immunizer/analyze/processor.hpp"

#include "immunizer/common/compress.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/common/snapshots.hpp"
#include "immunizer/common/stream_service.hpp"
#include "immunizer/v1/names.hpp"

namespace immunizer::analyze {

AnalyzeProcessor::AnalyzeProcessor(AnalyzeConfig cfg, const common::Topics& topics,
                                   const common::Clock& clock, prometheus::Registry& r)
    : cfg_(cfg),
      topics_(topics),
      clock_(clock),
      models_(cfg.detector, cfg.threads),
      snapshots_("analyze", 2, topics.models, cfg.snapshot_interval_ms, clock),
      alarms_(prometheus::BuildCounter()
                  .Name("immunizer_alarms_total")
                  .Help("Alarms raised, by severity")
                  .Register(r)),
      scored_(prometheus::BuildCounter()
                  .Name("immunizer_analyze_vectors_scored_total")
                  .Help("Feature vectors scored by an active model")
                  .Register(r)
                  .Add({})),
      learning_(prometheus::BuildCounter()
                    .Name("immunizer_analyze_vectors_learning_total")
                    .Help("Feature vectors absorbed by models still in their grace period")
                    .Register(r)
                    .Add({})),
      detection_latency_(
          prometheus::BuildHistogram()
              .Name("immunizer_detection_latency_seconds")
              .Help("From the instrumented call to its alarm")
              .Register(r)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                               0.5, 1, 2.5, 5, 10})),
      models_by_state_(prometheus::BuildGauge()
                           .Name("immunizer_analyze_models")
                           .Help("Model keys held, by state")
                           .Register(r)),
      models_active_(models_by_state_.Add({{"state", "active"}})),
      models_learning_(models_by_state_.Add({{"state", "learning"}})),
      memory_(prometheus::BuildGauge()
                  .Name("immunizer_analyze_model_memory_bytes")
                  .Help("Memory held by all models")
                  .Register(r)
                  .Add({})),
      feedback_(prometheus::BuildCounter()
                    .Name("immunizer_analyze_feedback_total")
                    .Help("False-positive feedback, by what it did to the model's reservoir "
                          "(added, replaced: "
                          "within the feedback share; merged: alike to a row already taught; "
                          "ignored, unknown_model)")
                    .Register(r)) {}

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
    feedback_.Add({{"outcome", "unknown_model"}}).Increment();
    return;
  }
  using O = ModelKeyState::FeedbackOutcome;
  const O o = k->feedback_false_positive(std::vector<double>(f.values().begin(), f.values().end()));
  feedback_
      .Add({{"outcome", o == O::kAdded      ? "added"
                        : o == O::kReplaced ? "replaced"
                        : o == O::kMerged   ? "merged"
                                            : "ignored"}})
      .Increment();
  if (o == O::kAdded || o == O::kReplaced) snapshots_.mark(f.model_key());
}

void AnalyzeProcessor::process_batch(const std::vector<common::Message>& batch,
                                     common::Producer& out, const Reject& reject) {
  std::vector<Observation> obs;
  std::vector<v1::FeatureVector> vecs;
  std::vector<const common::Message*> src;
  obs.reserve(batch.size());
  for (const auto& m : batch) {
    if (m.topic == topics_.feedback) {
      v1::Feedback f;
      if (!f.ParseFromString(m.payload)) {
        reject(m, "unparsable_feedback", "not a Feedback");
        continue;
      }
      feedback(f);
      continue;
    }
    v1::FeatureVector v;
    if (!v.ParseFromString(m.payload)) {
      reject(m, "unparsable_feature_vector", "payload is not a FeatureVector");
      continue;
    }
    if (v.model_key().empty() || v.values().empty() || v.values_size() != v.schema().names_size()) {
      reject(m, "invalid_feature_vector",
             "model key '" + v.model_key() + "', " + std::to_string(v.values_size()) + " values, " +
                 std::to_string(v.schema().names_size()) + " names");
      continue;
    }
    Observation o;
    o.model_key = v.model_key();
    o.values.assign(v.values().begin(), v.values().end());
    o.feature_names.assign(v.schema().names().begin(), v.schema().names().end());
    o.schema_version = v.schema().version();
    obs.push_back(std::move(o));
    vecs.push_back(std::move(v));
    src.push_back(&m);
  }
  if (obs.empty()) return;
  const auto results = models_.observe_batch(obs);
  const int64_t now = clock_.now_unix_nanos();
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    const auto& v = vecs[i];
    if (!r.error.empty()) {
      reject(*src[i], "model_rejected_vector", r.error);
      continue;
    }
    snapshots_.mark(v.model_key());
    const Verdict& verdict = r.verdict;
    (verdict.state == ModelState::kActive ? scored_ : learning_).Increment();
    v1::Score s;
    *s.mutable_record_id() = v.record_id();
    s.set_model_key(v.model_key());
    s.set_combined_score(verdict.combined);
    s.set_threshold(verdict.threshold);
    s.set_alarmed(verdict.alarm);
    s.set_model_state(to_string(verdict.state));
    *s.mutable_labels() = v.labels();
    out.produce(topics_.scores, v.model_key(), s.SerializeAsString());
    if (!verdict.alarm) continue;

    v1::Alarm a;
    // Deterministic: a replay after a crash raises the same alarm, which downstream drops.
    // The model version is the feature schema version (what a replayed vector is scored
    // under; the fit count may differ when the restored snapshot is newer than the offsets).
    const auto& rid = v.record_id();
    if (rid.app().empty() && rid.instance().empty() && rid.seq() == 0)
      a.set_id(common::random_id());  // no identity to derive from
    else
      a.set_id(common::derived_id({"alarm", rid.app(), rid.instance(), std::to_string(rid.seq()),
                                   v.model_key(), std::to_string(v.schema().version())}));
    *a.mutable_record_id() = v.record_id();
    a.set_model_key(v.model_key());
    *a.mutable_principal() = v.principal();
    a.set_call(v.call());
    const bool forest = cfg_.detector.detector != DetectorKind::kAutoencoder;
    const bool ae = cfg_.detector.detector != DetectorKind::kIForest;
    if (forest) {
      auto* d = a.add_scores();
      d->set_detector("iforest");
      d->set_raw(verdict.iforest_raw);
      d->set_tail_probability(verdict.iforest_tail);
    }
    if (ae) {
      auto* d = a.add_scores();
      d->set_detector("autoencoder");
      d->set_raw(verdict.ae_raw);
      d->set_tail_probability(verdict.ae_tail);
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
    a.set_timestamp_unix_nanos(v.timestamp_unix_nanos());
    a.set_raised_unix_nanos(now);
    *a.mutable_labels() = v.labels();
    *a.mutable_values() = v.values();
    a.set_schema_version(v.schema().version());
    const auto& p = v.principal();
    out.produce(topics_.alarms, p.session().empty() ? p.ip() : p.session(), a.SerializeAsString());
    alarms_.Add({{"severity", std::string(v1::severity_label(a.severity()))}}).Increment();
    if (v.timestamp_unix_nanos() > 0 && now > v.timestamp_unix_nanos())
      detection_latency_.Observe(static_cast<double>(now - v.timestamp_unix_nanos()) / 1e9);
  }
}

// Format 2: zlib-compressed ModelKeyState bytes.
std::optional<std::pair<std::string, uint64_t>> AnalyzeProcessor::state_of(const std::string& key) {
  auto* k = models_.find(key);
  if (!k) return std::nullopt;
  return std::make_pair(common::zlib_compress(k->snapshot()),
                        static_cast<uint64_t>(k->records_seen()));
}

void AnalyzeProcessor::update_gauges() {
  size_t active = 0;
  for (const auto& k : models_.keys())
    if (auto* s = models_.find(k); s && s->state() == ModelState::kActive) ++active;
  models_active_.Set(static_cast<double>(active));
  models_learning_.Set(static_cast<double>(models_.size() - active));
  memory_.Set(static_cast<double>(models_.memory_bytes()));
}

void AnalyzeProcessor::tick(common::Producer& out) {
  if (snapshots_.maybe_write(out, [this](const std::string& k) { return state_of(k); }))
    update_gauges();
}

void AnalyzeProcessor::drain(common::Producer& out) {
  snapshots_.write_final(out, [this](const std::string& k) { return state_of(k); });
}

size_t AnalyzeProcessor::restore(const std::map<std::string, v1::ModelSnapshot>& snaps) {
  return common::restore_each(
      snaps, "analyze", [this](const std::string& key, const v1::ModelSnapshot& snap) {
        if (snap.format_version() != 2)
          throw std::runtime_error("unknown format " + std::to_string(snap.format_version()));
        models_.restore(key, common::zlib_decompress(snap.state()));
      });
}

}  // namespace immunizer::analyze
