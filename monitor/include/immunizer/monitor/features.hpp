// Monitor feature engineering: turns CallRecords into fixed-length FeatureVectors per model key.
// Not thread-safe: one FeatureExtractor per owner thread (e.g. per monitor partition set).
// The extractor owns every model's learned state; snapshot()/restore() move it as bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "immunizer/v1/records.pb.h"

namespace immunizer::monitor {

struct FeatureConfig {
  // Records per model key after which its schema freezes: afterwards unseen argument paths
  // only raise the aggregate `struct:unseen_args`/`any:*` features, never add columns.
  // Keep it well below analyze's grace period so analyze learns on the final schema.
  uint64_t schema_freeze_records = 200;
  // At most this many argument paths get their own feature columns per model key.
  size_t max_paths_per_model = 48;
  // At most this many model keys are held; records of further keys are refused (reason given).
  size_t max_models = 10000;
  // At most this many leaf values are examined per record (the rest counts as truncated).
  size_t max_leaves_per_record = 256;
  // Nested values deeper than this are treated as one opaque leaf.
  size_t max_depth = 8;
  // Only the first bytes of a string value feed n-gram and character statistics (length is
  // always the full length); bounds CPU per record against huge payloads. At most 4096.
  size_t max_value_bytes = 2048;
  // 3-gram count-min sketch per path: width (rounded to a power of two) and depth (1..4).
  // Memory per path is about 4 * width * depth bytes plus 1 KiB of 1-gram counts.
  size_t trigram_sketch_width = 1024;
  size_t trigram_sketch_depth = 2;
  // A path whose distinct values stay within this many is treated as an enumeration;
  // a rare or unseen value then raises `enum_surprise` (log2 of how much rarer it is than
  // the path's most frequent value; the most frequent value scores 0).
  size_t enum_max_values = 32;
  // Observations of a path before it is judged an enumeration (<= enum_max_values distinct).
  uint64_t enum_min_observations = 200;
  // A value whose novelty (largest feature, relative to its path's own feature history, in
  // standard deviations) exceeds this is an outlier: only one in outlier_learn_every
  // outliers is learned, so bursts of attacks do not quickly become normal.
  double outlier_novelty = 8.0;
  uint64_t outlier_learn_every = 16;
  // Paths present in at least this fraction of records count as "usually present" for
  // `struct:missing_args`.
  double missing_presence_threshold = 0.9;
  // Per-principal behaviour features (call rate, interval deviation, new principal). Turn
  // off when the training traffic has no realistic sessions (CSIC 2010: one request per
  // session), or a returning user would look anomalous for returning.
  bool principal_features = true;
  // Per-principal behaviour table size per model (fixed; older principals are evicted).
  size_t max_principals = 1024;
  // Half-life of the damped per-principal call counts and interval statistics, seconds.
  double principal_half_life_seconds = 60.0;
  // Deviations (z-scores) are clamped to +-this, so one wild value cannot dominate.
  double max_deviation = 1000.0;
  // Compress snapshots (zlib): sketches are sparse, snapshots shrink ~10x.
  bool compress_snapshots = true;
};

// Validates and clamps a configuration; throws std::invalid_argument naming the bad field.
FeatureConfig sanitize(FeatureConfig cfg);

// Per-model counters a service can export as metrics.
struct ModelStats {
  uint64_t records = 0;
  uint32_t schema_version = 0;
  size_t features = 0;
  size_t paths = 0;
  bool frozen = false;
  uint64_t unseen_path_records = 0;  // records that carried a path without columns
  uint64_t truncated_records = 0;    // records with more leaves than max_leaves_per_record
  size_t memory_bytes = 0;
};

class ModelState;  // private

class FeatureExtractor {
 public:
  explicit FeatureExtractor(FeatureConfig cfg = {});
  ~FeatureExtractor();
  FeatureExtractor(FeatureExtractor&&) noexcept;
  FeatureExtractor& operator=(FeatureExtractor&&) noexcept;

  // "<app>|<call>|<context>".
  static std::string model_key(const immunizer::v1::CallRecord& r);
  // The same into `out` (replaced; no allocation when it has room).
  static void model_key(const immunizer::v1::CallRecord& r, std::string* out);

  // Computes the record's features against the model state BEFORE folding the record in,
  // then folds it in. Fills model_key, record_id, schema {version, names}, values, principal,
  // call, timestamp and labels of `out` (names are rewritten only when `out` does not already
  // carry this model's key and schema version, so reuse one `out` per model for speed).
  // Returns false with a reason for a record that cannot be used; never throws on bad input.
  bool extract(const immunizer::v1::CallRecord& r, immunizer::v1::FeatureVector* out,
               std::string* reason);

  // What extract_row() leaves out of the row: its model key, schema and values (valid until
  // the next call that changes the extractor).
  struct RowSchema {
    std::string_view model_key;
    uint32_t version = 0;
    const std::vector<std::string>* names = nullptr;
    const std::vector<double>* values = nullptr;
  };
  // The same as extract(), for callers that write FeatureVectorBatch rows themselves: the
  // row's call, timestamp and labels go into `row`; its values (one per name), model key and
  // schema into `schema`; its record_id and principal are the record's own (r.id(),
  // r.principal()), so they are neither copied nor set in `row`. Reuse one `row`: its fields
  // are overwritten in place, so a reused row allocates nothing for a record like the one
  // before.
  bool extract_row(const immunizer::v1::CallRecord& r, immunizer::v1::FeatureRow* row,
                   RowSchema* schema, std::string* reason);

  // Full learned state of one model key (bytes for ModelSnapshot.state); empty if unknown.
  std::string snapshot(const std::string& model_key) const;
  // Replaces (or creates) the state of one model key; throws std::runtime_error on corrupt
  // or incompatible input (e.g. different sketch dimensions), leaving the extractor unchanged.
  void restore(const std::string& model_key, const std::string& bytes);
  // Forgets a model key (e.g. its partition was revoked). Returns whether it existed.
  bool drop(const std::string& model_key);

  std::vector<std::string> model_keys() const;
  // Current feature schema of a model key (version 0 and no names if unknown).
  immunizer::v1::FeatureSchema schema(const std::string& model_key) const;
  ModelStats stats(const std::string& model_key) const;
  uint64_t records_seen(const std::string& model_key) const;
  size_t memory_bytes(const std::string& model_key) const;
  size_t memory_bytes() const;
  const FeatureConfig& config() const { return cfg_; }

  // Snapshot format version (ModelSnapshot.format_version); kind is "monitor". 2: record
  // features encoding:invalid_utf8 and size:* were added (older states are relearned).
  static constexpr uint32_t kSnapshotFormat = 2;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept;
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
  };
  // Checks the record, finds (or makes) its model and measures and folds the record in;
  // null with a reason when the record cannot be used. key_buf_ is then its model key.
  ModelState* observe(const immunizer::v1::CallRecord& r, std::string* reason);
  FeatureConfig cfg_;
  std::unordered_map<std::string, std::unique_ptr<ModelState>, Hash, Eq> models_;
  std::string key_buf_;
};

}  // namespace immunizer::monitor
