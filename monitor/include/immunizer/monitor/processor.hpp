// The monitor service's stream processor: CallRecords in; out, per model key and consumed
// batch, one FeatureVectorBatch (keyed by model key: the schema once, a row per record);
// learned state snapshotted to the compacted models topic. Runs on the StreamLoop thread only.
#pragma once

#include <google/protobuf/arena.h>

#include <map>
#include <memory>
#include <set>

#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/metrics.hpp"
#include "immunizer/common/stage.hpp"
#include "immunizer/monitor/config.hpp"
#include "immunizer/monitor/features.hpp"
#include "immunizer/v1/call_records.hpp"

namespace immunizer::monitor {

class MonitorProcessor final : public common::SnapshottingProcessor {
 public:
  MonitorProcessor(MonitorConfig cfg, const common::Topics& topics, const common::Clock& clock,
                   prometheus::Registry& registry);
  // Every record of a message stands alone: one that cannot be decoded or used goes to the
  // dead letters by itself (its own bytes), the others of its batch are processed.
  void process_batch(const std::vector<common::Message>& batch, common::Producer& out,
                     const Reject& reject) override;
  // One message (its vectors are produced before it returns); throws BadMessage after
  // processing the usable records if any was not.
  void process(const common::Message& m, common::Producer& out) override;
  FeatureExtractor& extractor() { return extractor_; }
  static constexpr size_t kArenaBlockBytes = 512 << 10;  // first block of the decoding arena

 private:
  // One record of a message: false (reason set) when the extractor cannot use it.
  bool process_record(const v1::CallRecord& rec, common::Producer& out, std::string* reason);
  void process_message(const common::Message& m, common::Producer& out, const Reject& reject);
  // Produces the rows gathered per model key and empties the batches (keeping their buffers).
  void flush_vectors(common::Producer& out);
  // The message being filled per model key: its FeatureVectorBatch bytes so far (header,
  // then rows), and the serialised header of its current schema version.
  struct Pending {
    std::string buf;
    size_t rows = 0;
    std::string header;
    uint32_t version = 0;
    size_t names = 0;
  };
  void start_message(const std::string& key, Pending& p, const FeatureExtractor::RowSchema& schema);
  void emit(const std::string& key, Pending& p, common::Producer& out);
  // Appends the current record's row (rec's id and principal, the model's values, row_).
  void append_row(std::string& buf, const v1::CallRecord& rec, const std::vector<double>& values);
  std::optional<std::pair<std::string, uint64_t>> state_of(const std::string& key) override;
  void restore_key(const std::string& key, const std::string& state) override;
  void update_gauges() override;
  MonitorConfig cfg_;
  common::Topics topics_;
  FeatureExtractor extractor_;
  // The current record's call, timestamp and labels, reused (never cleared: its fields are
  // reused); the rest of its row is written from the record and the model (append_row).
  v1::FeatureRow row_;
  std::map<std::string, Pending, std::less<>> pending_;
  std::map<std::string, Pending, std::less<>>::iterator last_pending_ = pending_.end();
  std::vector<v1::CallRecord> records_buf_;         // the records of the current message
  std::vector<v1::UndecodableRecord> undecodable_;  // and those that did not decode
  prometheus::Counter& records_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Gauge& memory_total_;
  prometheus::Gauge& memory_model_max_;
  prometheus::Gauge& models_;
  std::unique_ptr<char[]> arena_block_;  // the arena's first block, kept across messages
  google::protobuf::Arena arena_;        // a consumed batch message is decoded onto it
};

// The monitor stage: calls in; features and snapshots (kind "monitor") out. main() runs it.
extern const common::Stage kStage;

}  // namespace immunizer::monitor
