// The analyze service's stream processor: feature vectors in; a Score for every vector
// and an explained Alarm for anomalous ones out; analyst feedback in; model snapshots out
// to the compacted models topic. Runs on the StreamLoop thread; scoring fans out across
// model keys on the registry's thread pool.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <set>

#include "immunizer/analyze/config.hpp"
#include "immunizer/analyze/models/registry.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/snapshots.hpp"
#include "immunizer/common/stream_loop.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::analyze {

class AnalyzeProcessor final : public common::Processor {
 public:
  AnalyzeProcessor(AnalyzeConfig cfg, const common::Topics& topics, const common::Clock& clock,
                   prometheus::Registry& registry);
  void process(const common::Message& m, common::Producer& out) override;
  void process_batch(const std::vector<common::Message>& batch, common::Producer& out,
                     const Reject& reject) override;
  void tick(common::Producer& out) override;
  void drain(common::Producer& out) override;
  // Restores learned models (from read_snapshots); bad snapshots are skipped with a warning.
  size_t restore(const std::map<std::string, v1::ModelSnapshot>& snaps);
  // Snapshots go to this producer (best effort, never part of a batch's commit); default: `out`.
  void set_snapshot_producer(common::Producer* p) { snapshots_.set_producer(p); }
  ModelRegistry& models() { return models_; }

 private:
  void feedback(const v1::Feedback& f);
  std::optional<std::pair<std::string, uint64_t>> state_of(const std::string& key);
  void update_gauges();
  AnalyzeConfig cfg_;
  common::Topics topics_;
  const common::Clock& clock_;
  ModelRegistry models_;
  common::SnapshotWriter snapshots_;
  prometheus::Family<prometheus::Counter>& alarms_;
  prometheus::Counter& scored_;
  prometheus::Counter& learning_;
  prometheus::Histogram& detection_latency_;
  prometheus::Family<prometheus::Gauge>& models_by_state_;
  prometheus::Gauge& models_active_;
  prometheus::Gauge& models_learning_;
  prometheus::Gauge& memory_;
  prometheus::Family<prometheus::Counter>& feedback_;
};

}  // namespace immunizer::analyze
