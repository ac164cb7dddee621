#include "immunizer/analyze/processor.hpp"

#include <algorithm>
#include <span>

#include "immunizer/analyze/models/score_command.hpp"
#include "immunizer/common/compress.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/v1/feature_batches.hpp"
#include "immunizer/v1/names.hpp"
#include "immunizer/v1/principal.hpp"

namespace immunizer::analyze {

AnalyzeProcessor::AnalyzeProcessor(AnalyzeConfig cfg, const common::Topics& topics,
                                   const common::Clock& clock, prometheus::Registry& r)
    : SnapshottingProcessor(kStage.snapshots, topics.models, cfg.snapshot_interval_ms, clock),
      cfg_(cfg),
      topics_(topics),
      clock_(clock),
      models_(cfg.detector, cfg.threads),
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

void AnalyzeProcessor::score_key(KeyWork& w, int64_t now) {
  const bool forest = cfg_.detector.detector != DetectorKind::kAutoencoder;
  const bool ae = cfg_.detector.detector != DetectorKind::kIForest;
  for (const size_t mi : w.messages) {
    const Decoded& d = *decoded_[mi];
    const v1::FeatureVectorBatch& b = d.batch;
    const uint32_t version = b.schema().version();
    for (int r = 0; r < b.rows_size(); ++r) {
      if (!d.row_ok[static_cast<size_t>(r)]) continue;
      const v1::FeatureRow& row = b.rows(r);
      Verdict verdict;
      try {
        verdict = w.state->observe(
            std::span<const double>(row.values().data(), static_cast<size_t>(row.values_size())),
            d.names, version);
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

      v1::Alarm& a = w.alarm;
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
      if (forest) {
        auto* ds = a.add_scores();
        ds->set_detector("iforest");
        ds->set_raw(verdict.iforest_raw);
        ds->set_tail_probability(verdict.iforest_tail);
      }
      if (ae) {
        auto* ds = a.add_scores();
        ds->set_detector("autoencoder");
        ds->set_raw(verdict.ae_raw);
        ds->set_tail_probability(verdict.ae_tail);
      }
      a.set_combined_score(verdict.combined);
      a.set_threshold(verdict.threshold);
      const int severity = std::clamp(verdict.severity, 1, 4);
      a.set_severity(static_cast<v1::Severity>(severity));
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
      const auto& p = row.principal();
      Output& ao = next_output(w, topics_.alarms);
      ao.key.assign(v1::partition_key(p));
      a.SerializeToString(&ao.payload);
      ++w.by_severity[severity];
      if (row.timestamp_unix_nanos() > 0 && now > row.timestamp_unix_nanos())
        w.latencies.push_back(static_cast<double>(now - row.timestamp_unix_nanos()) / 1e9);
    }
  }
}

void AnalyzeProcessor::process_batch(const std::vector<common::Message>& batch,
                                     common::Producer& out, const Reject& reject) {
  // A dead letter for one row carries that row's bytes, with its message's coordinates.
  auto reject_part = [&](const common::Message& m, std::string_view bytes,
                         const std::string& reason, const std::string& detail) {
    common::Message part;
    part.topic = m.topic;
    part.partition = m.partition;
    part.offset = m.offset;
    part.key = m.key;
    part.timestamp_ms = m.timestamp_ms;
    part.payload.assign(bytes);
    reject(part, reason, detail);
  };
  // Feedback first, in batch order, as it is read; then the vectors.
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
  if (features.empty()) return;

  // 1. Decode every message, in parallel (each into its reused slot).
  while (decoded_.size() < features.size()) decoded_.push_back(std::make_unique<Decoded>());
  models_.parallel_for(features.size(), [&](size_t i) {
    Decoded& d = *decoded_[i];
    d.msg = features[i];
    d.bad_rows.clear();
    d.error.clear();
    d.names.reset();
    if (!v1::parse_feature_batch(d.msg->payload, &d.batch, &d.bad_rows, &d.error) &&
        d.error.empty())
      d.error = "payload is not a FeatureVectorBatch";
  });

  // 2. On this thread: reject what cannot be used, find the names and the model of each
  // message, group the messages by model key.
  std::map<std::string_view, size_t> group_of;
  size_t groups = 0;
  for (size_t i = 0; i < features.size(); ++i) {
    Decoded& d = *decoded_[i];
    const common::Message& m = *d.msg;
    if (!d.error.empty()) {
      reject(m, "unparsable_feature_vector", d.error);
      continue;
    }
    for (const auto& u : d.bad_rows) reject_part(m, u.bytes, "unparsable_feature_vector", u.reason);
    const v1::FeatureVectorBatch& b = d.batch;
    const bool single = !v1::is_feature_vector_batch(m.payload);  // the former FeatureVector
    const int width = b.schema().names_size();
    if (b.model_key().empty() || width == 0) {
      reject(m, "invalid_feature_vector",
             "model key '" + b.model_key() + "', " + std::to_string(width) + " names");
      continue;
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
        reject_part(m, b.rows(r).SerializeAsString(), "invalid_feature_vector", detail);
    }
    if (usable == 0) continue;
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
  if (groups == 0) return;

  // 3. Score and build the outputs, one task per model key (its vectors in order).
  const int64_t now = clock_.now_unix_nanos();
  models_.parallel_for(groups, [&](size_t g) { score_key(*work_[g], now); });

  // 4. On this thread: produce, count, dead-letter what the models refused.
  for (size_t g = 0; g < groups; ++g) {
    KeyWork& w = *work_[g];
    for (size_t k = 0; k < w.rejected.size(); ++k) {
      const Decoded& d = *decoded_[w.rejected[k].first];
      if (!v1::is_feature_vector_batch(d.msg->payload))
        reject(*d.msg, "model_rejected_vector", w.errors[k]);
      else
        reject_part(*d.msg,
                    d.batch.rows(static_cast<int>(w.rejected[k].second)).SerializeAsString(),
                    "model_rejected_vector", w.errors[k]);
    }
    if (w.scored + w.learning > 0) mark(*w.model_key);
    if (w.scored) scored_.Increment(static_cast<double>(w.scored));
    if (w.learning) learning_.Increment(static_cast<double>(w.learning));
    for (int sev = 1; sev <= 4; ++sev) {
      if (w.by_severity[sev] == 0) continue;
      if (!alarms_by_severity_[sev])
        alarms_by_severity_[sev] = &alarms_.Add(
            {{"severity", std::string(v1::severity_label(static_cast<v1::Severity>(sev)))}});
      alarms_by_severity_[sev]->Increment(static_cast<double>(w.by_severity[sev]));
    }
    for (const double l : w.latencies) detection_latency_.Observe(l);
    for (size_t o = 0; o < w.n_outputs; ++o)
      out.produce(*w.outputs[o].topic, w.outputs[o].key, w.outputs[o].payload);
  }
}

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

void AnalyzeProcessor::restore_key(const std::string& key, const std::string& state) {
  models_.restore(key, common::zlib_decompress(state));
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
          const auto cfg = AnalyzeConfig::from_config(ctx.config);
          const bool restore = ctx.config.get_bool("analyze.restore_snapshots", true);
          ctx.config.stop_if_errors();  // --check-config: build nothing on a bad value
          return common::StageSetup{
              std::make_unique<AnalyzeProcessor>(cfg, ctx.topics, ctx.clock, *ctx.registry),
              cfg.group, restore ? std::chrono::seconds(30) : std::chrono::seconds(0)};
        },
};

}  // namespace immunizer::analyze
