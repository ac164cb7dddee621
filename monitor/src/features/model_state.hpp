// Learned state of one model key: its schema, its path statistics and model-wide profile,
// record-level statistics and principal table; turns one record into its feature values
// (measured against the state before the record) and then learns the record.
// Private to immunizer_features. Not thread-safe: one owner (the FeatureExtractor).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "immunizer/monitor/features.hpp"
#include "path_stats.hpp"
#include "principals.hpp"
#include "schema.hpp"

namespace immunizer::monitor {

class ModelState {
 public:
  explicit ModelState(const FeatureConfig& cfg);

  uint64_t records() const { return records_; }
  uint32_t version() const { return schema_.version(); }
  bool frozen() const { return records_ >= cfg_.schema_freeze_records; }
  const std::vector<std::string>& names() const { return schema_.names(); }
  size_t paths() const { return schema_.paths().size(); }
  uint64_t unseen_path_records() const { return unseen_path_records_; }
  uint64_t truncated_records() const { return truncated_records_; }
  size_t memory_bytes() const;

  // Computes features into values() (against the state before the record), then folds it in.
  void process(const immunizer::v1::CallRecord& r);
  const std::vector<double>& values() const { return vals_; }

  // The learned state as snapshot bytes (snapshot.cpp); read() throws std::runtime_error on
  // corrupt input or dimensions other than this configuration's.
  void write(common::ByteWriter& w) const;
  void read(common::ByteReader& r);

 private:
  void measure_leaves(uint64_t record_no);
  size_t structure_features(uint64_t record_no);
  void encoding_features(const immunizer::v1::CallRecord& r);
  void learn(uint64_t record_no, size_t arg_count);

  const FeatureConfig cfg_;  // a copy: the extractor may move
  uint64_t records_ = 0;
  uint64_t unseen_path_records_ = 0;
  uint64_t truncated_records_ = 0;
  detail::RunningStats arg_stats_;
  detail::RunningStats duration_;
  detail::PathState all_;  // the model-wide profile, for values of paths without columns
  detail::Schema schema_;
  detail::PrincipalTable principals_;
  std::vector<double> vals_;  // scratch, per record
};

}  // namespace immunizer::monitor
