// The analyze service's stream processor: feature vectors in (FeatureVectorBatch, or the
// former single FeatureVector); a Score for every vector and an explained Alarm for anomalous
// ones out; analyst feedback in; model snapshots out to the compacted models topic. Runs on
// the StreamLoop thread; decoding fans out across messages, and scoring and building the
// outputs across model keys, on the registry's thread pool.
#pragma once

#include <google/protobuf/arena.h>

#include <map>
#include <memory>
#include <set>

#include "immunizer/analyze/config.hpp"
#include "immunizer/analyze/models/registry.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/metrics.hpp"
#include "immunizer/common/stage.hpp"
#include "immunizer/v1/feature_batches.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::analyze {

class AnalyzeProcessor final : public common::SnapshottingProcessor {
 public:
  AnalyzeProcessor(AnalyzeConfig cfg, const common::Topics& topics, const common::Clock& clock,
                   prometheus::Registry& registry);
  ~AnalyzeProcessor() override;
  void process(const common::Message& m, common::Producer& out) override;
  void process_batch(const std::vector<common::Message>& batch, common::Producer& out,
                     const Reject& reject) override;
  // The last snapshot round, after the refits under way have finished.
  void drain(common::Producer& out) override;
  ModelRegistry& models() { return models_; }
  // Snapshot state: ModelKeyState::snapshot() bytes (a checksummed frame, deflated inside).
  // Format 2 deflated those bytes a second time (no smaller, twice the CPU); restore() still
  // reads it.
  static constexpr uint32_t kSnapshotFormat = 3;
  static constexpr uint32_t kOldSnapshotFormat = 2;
  // The base's restore, plus snapshots of kOldSnapshotFormat (unwrapped, then restored).
  size_t restore(const std::map<std::string, v1::ModelSnapshot>& snaps) override;

 private:
  // One consumed features message, decoded (kept between batches to reuse its buffers).
  struct Decoded {
    const common::Message* msg = nullptr;
    // The decoded message lives on an arena of its own, reset for every message: its rows'
    // sub-messages and strings are carved from a few blocks and freed at once (a reused heap
    // message frees and reallocates them, about ten allocations a row, at every parse).
    std::unique_ptr<google::protobuf::Arena> arena;
    v1::FeatureVectorBatch* batch = nullptr;  // on `arena`, valid until the next decode
    std::vector<v1::UndecodableRecord> bad_rows;
    std::string error;  // set: the whole message is unusable
    FeatureNames names;
    std::vector<uint8_t> row_ok;  // per row: 1 when it has the schema's width
  };
  // What one model key's task produced: serialised outputs and per-row rejections.
  struct Output {
    const std::string* topic;
    std::string key, payload;
  };
  struct KeyWork {
    ModelKeyState* state = nullptr;
    const std::string* model_key = nullptr;
    std::vector<std::size_t> messages;  // indices into decoded_, in batch order
    std::vector<Output> outputs;
    std::size_t n_outputs = 0;  // outputs[0..n_outputs) are this batch's
    std::vector<std::pair<std::size_t, std::size_t>> rejected;  // (message, row)
    std::vector<std::string> errors;
    std::vector<double> latencies;
    std::vector<const double*> rows;  // the usable rows' values, for ModelKeyState::precompute
    uint64_t scored = 0, learning = 0;
    uint64_t by_severity[5] = {};
    v1::Score score;  // reused
    v1::Alarm alarm;
  };
  // The steps of process_batch: the feedback handled and the features messages returned;
  // those decoded into decoded_ (in parallel); each checked (its unusable rows rejected,
  // returning how many are usable); grouped into work_ by model key (returning how many);
  // each group scored (in parallel); each group's outputs produced and counted.
  std::vector<const common::Message*> take_feedback(const std::vector<common::Message>& batch,
                                                    const Reject& reject);
  void decode_all(const std::vector<const common::Message*>& features);
  size_t check_rows(Decoded& d, const Reject& reject);
  size_t group_by_key(size_t n, const Reject& reject);
  void score_key(KeyWork& w, int64_t now);
  void build_alarm(const v1::FeatureVectorBatch& b, const v1::FeatureRow& row,
                   const Verdict& verdict, int64_t now, v1::Alarm& a) const;
  void publish(KeyWork& w, common::Producer& out, const Reject& reject);
  Output& next_output(KeyWork& w, const std::string& topic);
  // The cached names of (model key, schema version), made once per change.
  FeatureNames names_for(const v1::FeatureVectorBatch& b);
  void feedback(const v1::Feedback& f);
  std::optional<std::pair<std::string, uint64_t>> state_of(const std::string& key) override;
  void restore_key(const std::string& key, const std::string& state) override;
  void update_gauges() override;
  AnalyzeConfig cfg_;
  common::Topics topics_;
  const common::Clock& clock_;
  ModelRegistry models_;
  struct Metrics;
  std::unique_ptr<Metrics> metrics_;
  std::vector<std::unique_ptr<Decoded>> decoded_;  // grows to the largest batch, reused
  std::vector<std::unique_ptr<KeyWork>> work_;     // one per model key of a batch, reused
  struct CachedSchema {
    uint32_t version = 0;
    FeatureNames names;
  };
  std::map<std::string, CachedSchema, std::less<>> schemas_;
};

// The analyze stage: features and feedback in; scores, alarms and snapshots (kind "analyze")
// out; `immunizer-analyze score` scores a file offline. main() runs it.
extern const common::Stage kStage;

}  // namespace immunizer::analyze
