// Feature schema of one model: the record-level columns, the argument paths that have
// columns of their own (grown while the model is young, then frozen), their names, and the
// collection of a record's leaf values onto those paths.
// Private to immunizer_features. Not thread-safe: a schema belongs to one model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "path_stats.hpp"

namespace immunizer::monitor::detail {

// Record-level features, in column order (they come first, then one block per path).
enum GlobalFeature : int {
  kArgCount,
  kArgCountDeviation,
  kUnseenArgs,
  kMissingArgs,
  kDroppedArgs,
  kError,
  kDurationDeviation,
  kPrincipalNew,
  kPrincipalRecentCalls,
  kPrincipalIntervalDeviation,
  kInvalidUtf8,      // text fields (values, names, principal, call, labels) not valid UTF-8
  kTruncatedValues,  // string / bytes values the sensor cut to its per-string cap
  kRecordTruncated,  // the record outgrew the sensor's per-record cap (arguments left out)
  kAnyBase,          // kAnyBase + PathFeature: aggregate of that feature over every argument
  kGlobalFeatures = kAnyBase + kPathFeatures
};

// Path name -> index into a model's paths: open addressing over (hash, index) pairs, the
// names themselves live in the PathStates. Grows at half load; never shrinks.
class PathIndex {
 public:
  int find(std::string_view name, const std::vector<PathState>& paths) const;
  void insert(std::string_view name, int idx);
  size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    uint64_t hash = 0;
    int idx = -1;  // -1: empty
  };
  void place(uint64_t h, int idx);
  void grow();
  std::vector<Slot> slots_;
  size_t used_ = 0;
  size_t mask_ = 0;
};

class Schema {
 public:
  Schema() { rebuild_names(); }

  uint32_t version() const { return version_; }
  const std::vector<std::string>& names() const { return names_; }
  std::vector<PathState>& paths() { return paths_; }
  const std::vector<PathState>& paths() const { return paths_; }

  // Collects the record's leaf values (arguments, then the result) onto paths, giving new
  // paths columns unless `frozen` or full; a grown schema gets the next version.
  void collect(const immunizer::v1::CallRecord& r, const FeatureConfig& cfg, bool frozen);
  // The leaves of the last collected record and what collect() counted about them.
  std::vector<Leaf>& leaves() { return leaves_; }
  size_t dropped() const { return dropped_; }              // leaves over max_leaves_per_record
  size_t unseen() const { return unseen_; }                // leaves of paths without learned state
  size_t columnless() const { return columnless_; }        // leaves of paths without columns
  size_t invalid_names() const { return invalid_names_; }  // names not valid UTF-8

  // Replaces version and paths (a restored snapshot; `index` already holds the paths).
  void assign(uint32_t version, std::vector<PathState> paths, PathIndex index);

  size_t memory_bytes() const;

 private:
  void collect_value(const immunizer::v1::Value& v, size_t depth, const FeatureConfig& cfg,
                     bool frozen);
  void append_name(std::string_view name);
  void rebuild_names();

  uint32_t version_ = 1;
  std::vector<PathState> paths_;
  PathIndex index_;
  std::vector<std::string> names_;
  // scratch, per record
  std::vector<Leaf> leaves_;
  std::string path_buf_;
  size_t dropped_ = 0;
  size_t unseen_ = 0;
  size_t columnless_ = 0;
  size_t invalid_names_ = 0;
  bool grew_ = false;
};

}  // namespace immunizer::monitor::detail
