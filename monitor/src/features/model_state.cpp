#include "model_state.hpp"

#include "immunizer/v1/text.hpp"

namespace immunizer::monitor {

using detail::Leaf;
using detail::PathState;
namespace {
constexpr uint64_t kAllProfileSample = 4;
}  // namespace

ModelState::ModelState(const FeatureConfig& cfg) : cfg_(cfg), principals_(cfg.max_principals) {
  all_.name = "*";
  all_.trigrams = CountMinSketch(cfg.trigram_sketch_width, cfg.trigram_sketch_depth);
}

size_t ModelState::memory_bytes() const {
  size_t m = sizeof(*this) + all_.memory_bytes() + principals_.memory_bytes();
  m += schema_.memory_bytes() + vals_.capacity() * sizeof(double);
  return m;
}

void ModelState::process(const immunizer::v1::CallRecord& r) {
  using namespace detail;
  const uint64_t record_no = records_ + 1;
  // 1. Collect leaves, growing the schema while young.
  schema_.collect(r, cfg_, frozen());
  vals_.assign(schema_.names().size(), 0.0);
  // 2. Features against the current state.
  measure_leaves(record_no);
  const size_t arg_count = structure_features(record_no);
  vals_[kError] = r.outcome_case() == immunizer::v1::CallRecord::kError ? 1.0 : 0.0;
  encoding_features(r);
  if (r.duration_nanos() > 0) {
    const double d = std::log1p(static_cast<double>(r.duration_nanos()) / 1000.0);
    vals_[kDurationDeviation] = clampd(duration_.z(d, 0.05), cfg_.max_deviation);
    duration_.add_robust(d, kWinsor, 0.05);
  }
  if (cfg_.principal_features) {
    const PrincipalFeatures p =
        principals_.observe(r, cfg_.principal_half_life_seconds, cfg_.max_deviation);
    vals_[kPrincipalNew] = p.is_new;
    vals_[kPrincipalRecentCalls] = p.recent_calls;
    vals_[kPrincipalIntervalDeviation] = p.interval_deviation;
  }
  // 3. Fold the record in.
  learn(record_no, arg_count);
}

// Per-path features of every leaf into the path's columns, normalised ones into any:*.
void ModelState::measure_leaves(uint64_t record_no) {
  using namespace detail;
  double* any = vals_.data() + kAnyBase;
  auto& paths = schema_.paths();
  for (Leaf& leaf : schema_.leaves()) {
    PathState& ps = leaf.path >= 0 ? paths[leaf.path] : all_;
    leaf.hash = enum_hash(*leaf.value);
    leaf.known_at = measure(ps, *leaf.value, leaf.hash, cfg_, leaf.f);
    leaf.known = leaf.known_at >= 0;
    leaf.novelty = normalise(ps, leaf.f, leaf.z);
    if (leaf.path >= 0) {
      combine(vals_.data() + kGlobalFeatures + leaf.path * kPathFeatures, leaf.f);
      ps.last_record = record_no;  // marks presence in this record
    }
    combine(any, leaf.z);
  }
}

// struct:* features; returns the record's argument count.
size_t ModelState::structure_features(uint64_t record_no) {
  using namespace detail;
  size_t arg_count = 0;
  size_t missing = 0;
  for (const PathState& ps : schema_.paths()) {
    if (ps.last_record == record_no) {
      ++arg_count;
    } else if (records_ >= 10 &&
               static_cast<double>(ps.present) >= cfg_.missing_presence_threshold * records_) {
      ++missing;
    }
  }
  arg_count += schema_.columnless();
  vals_[kArgCount] = static_cast<double>(arg_count);
  vals_[kArgCountDeviation] =
      clampd(arg_stats_.z(static_cast<double>(arg_count), 0.5), cfg_.max_deviation);
  vals_[kUnseenArgs] = static_cast<double>(schema_.unseen());
  vals_[kMissingArgs] = static_cast<double>(missing);
  vals_[kDroppedArgs] = static_cast<double>(schema_.dropped());
  return arg_count;
}

// Hostile bytes are measured, not refused: every text field that is not valid UTF-8
// counts once; so does every value the sensor had to cut.
void ModelState::encoding_features(const immunizer::v1::CallRecord& r) {
  using immunizer::v1::is_valid_utf8;
  size_t invalid = schema_.invalid_names(), truncated = 0;
  for (const Leaf& leaf : schema_.leaves()) {
    const auto& v = *leaf.value;
    if (v.kind_case() == immunizer::v1::Value::kStringValue && !is_valid_utf8(v.string_value()))
      ++invalid;
    if (v.truncated()) ++truncated;
  }
  const auto& p = r.principal();
  invalid += !is_valid_utf8(p.user()) + !is_valid_utf8(p.session()) + !is_valid_utf8(p.ip());
  invalid += !is_valid_utf8(r.call()) + !is_valid_utf8(r.context());
  for (const auto& l : r.labels()) invalid += !is_valid_utf8(l.key()) + !is_valid_utf8(l.value());
  if (r.outcome_case() == immunizer::v1::CallRecord::kError)
    invalid += !is_valid_utf8(r.error().type()) + !is_valid_utf8(r.error().message());
  vals_[detail::kInvalidUtf8] = static_cast<double>(invalid);
  vals_[detail::kTruncatedValues] = static_cast<double>(truncated);
  vals_[detail::kRecordTruncated] = r.truncated() || r.dropped_arguments() > 0 ? 1.0 : 0.0;
}

// Values far outside what their path has shown (novelty above outlier_novelty) are learned
// only once every outlier_learn_every times, so a burst of attacks does not quickly become
// "normal" for the sketches and enumerations.
void ModelState::learn(uint64_t record_no, size_t arg_count) {
  using namespace detail;
  auto& paths = schema_.paths();
  for (const Leaf& leaf : schema_.leaves()) {
    PathState& ps = leaf.path >= 0 ? paths[leaf.path] : all_;
    bool learn = true;
    if (ps.feature_stats[0].n >= kMinFeatureStats && leaf.novelty > cfg_.outlier_novelty) {
      learn = (ps.outliers++ % cfg_.outlier_learn_every) == 0;
    }
    fold(ps, leaf, leaf.f, learn, cfg_);
    // The model-wide profile (only consulted for paths without columns) learns from a
    // deterministic 1-in-kAllProfileSample sample of records: same picture, less CPU.
    if (leaf.path >= 0 && !leaf.known && record_no % kAllProfileSample == 0)
      fold(all_, leaf, nullptr, learn, cfg_);
  }
  for (PathState& ps : paths) {
    if (ps.last_record == record_no) ++ps.present;
  }
  arg_stats_.add_robust(static_cast<double>(arg_count), kWinsor, 0.5);
  if (schema_.unseen() > 0) ++unseen_path_records_;
  if (schema_.dropped() > 0) ++truncated_records_;
  records_ = record_no;
}

}  // namespace immunizer::monitor
