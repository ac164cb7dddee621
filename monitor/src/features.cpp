#include "immunizer/monitor/features.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "immunizer/monitor/sketch.hpp"
#include "immunizer/v1/text.hpp"
#include "state_codec.hpp"

namespace immunizer::monitor {

// ---------------------------------------------------------------------------------------------
// Sketch and hash

uint64_t stable_hash(std::string_view s) noexcept {
  // 8 bytes at a time multiply-xorshift; stable (snapshots hold these hashes).
  uint64_t h = 0x243F6A8885A308D3ull ^ (s.size() * 0x9E3779B97F4A7C15ull);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t k;
    std::memcpy(&k, s.data() + i, 8);
    k *= 0xC2B2AE3D27D4EB4Full;
    k ^= k >> 31;
    h = (h ^ k) * 0x9E3779B97F4A7C15ull;
  }
  // The remaining 0-7 bytes as a little-endian integer, from at most three loads (overlapping
  // loads repeat bytes at the same positions, so OR-ing them gives the same value).
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  const size_t rem = s.size() - i;
  uint64_t tail = 0;
  if (rem >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + rem - 4, 4);
    tail = lo | (static_cast<uint64_t>(hi) << ((rem - 4) * 8));
  } else if (rem > 0) {
    tail = p[0] | (static_cast<uint64_t>(p[rem / 2]) << ((rem / 2) * 8)) |
           (static_cast<uint64_t>(p[rem - 1]) << ((rem - 1) * 8));
  }
  h = (h ^ (tail * 0xC2B2AE3D27D4EB4Full)) * 0x9E3779B97F4A7C15ull;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

CountMinSketch::CountMinSketch(size_t width, size_t depth) {
  width_ = std::bit_ceil(std::max<size_t>(width, 16));
  depth_ = std::clamp<size_t>(depth, 1, 4);
  shift_ = 64u - static_cast<unsigned>(std::countr_zero(width_));
  cells_.assign(width_ * depth_, 0);
}

// ---------------------------------------------------------------------------------------------
// Configuration

FeatureConfig sanitize(FeatureConfig c) {
  auto need = [](bool ok, const char* field) {
    if (!ok)
      throw std::invalid_argument(std::string("monitor.features.") + field + " out of range");
  };
  need(c.max_paths_per_model >= 1 && c.max_paths_per_model <= 4096, "max_paths_per_model");
  need(c.max_models >= 1, "max_models");
  need(c.max_leaves_per_record >= 1, "max_leaves_per_record");
  need(c.max_depth >= 1 && c.max_depth <= 64, "max_depth");
  need(c.max_value_bytes >= 3 && c.max_value_bytes <= 4096, "max_value_bytes");
  need(c.outlier_novelty > 0, "outlier_novelty");
  need(c.outlier_learn_every >= 1, "outlier_learn_every");
  need(c.trigram_sketch_width >= 16 && c.trigram_sketch_width <= (1u << 24),
       "trigram_sketch_width");
  need(c.trigram_sketch_depth >= 1 && c.trigram_sketch_depth <= 4, "trigram_sketch_depth");
  need(c.enum_max_values >= 1 && c.enum_max_values <= 4096, "enum_max_values");
  need(c.missing_presence_threshold > 0 && c.missing_presence_threshold <= 1,
       "missing_presence_threshold");
  need(c.max_principals >= 4 && c.max_principals <= (1u << 24), "max_principals");
  need(c.principal_half_life_seconds > 0, "principal_half_life_seconds");
  need(c.max_deviation > 0, "max_deviation");
  c.trigram_sketch_width = std::bit_ceil(c.trigram_sketch_width);
  c.max_principals = std::bit_ceil(c.max_principals);
  return c;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Character classes: what a value is made of. Attacks change the mix (quotes, brackets,
// control characters in a path that held letters and digits).
constexpr int kClasses = 13;
constexpr const char* kClassNames[kClasses] = {"lower", "upper",   "digit", "space", "dot",
                                               "dash",  "at",      "quote", "meta",  "slash",
                                               "punct", "control", "high"};
constexpr std::array<uint8_t, 256> make_class_table() {
  std::array<uint8_t, 256> t{};
  for (int b = 0; b < 256; ++b) {
    uint8_t c = 10;  // other punctuation
    if (b >= 'a' && b <= 'z')
      c = 0;
    else if (b >= 'A' && b <= 'Z')
      c = 1;
    else if (b >= '0' && b <= '9')
      c = 2;
    else if (b == ' ' || b == '\t')
      c = 3;
    else if (b == '.' || b == ',')
      c = 4;
    else if (b == '-' || b == '_')
      c = 5;
    else if (b == '@')
      c = 6;
    else if (b == '\'' || b == '"' || b == '`')
      c = 7;
    else if (b == ';' || b == '=' || b == '(' || b == ')' || b == '<' || b == '>')
      c = 8;
    else if (b == '/' || b == '\\' || b == ':')
      c = 9;
    else if (b < 0x20 || b == 0x7f)
      c = 11;
    else if (b >= 0x80)
      c = 12;
    t[b] = c;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClassOf = make_class_table();
constexpr double kClassSmoothing = 0.01;
constexpr double kWinsor = 4.0;          // winsorising limit of running statistics, in sd
constexpr double kMinFeatureStats = 30;  // history needed before features are normalised
constexpr unsigned kGramSetBits = 13;    // per-value 3-gram de-dup set: 8192 slots
constexpr uint64_t kAllProfileSample = 4;
constexpr uint32_t kKnownValueCount = 8;  // enumeration members seen this often are "known"

// Per-path features, in column order.
enum PathFeature : int {
  kLengthDeviation,
  kCharclassDivergence,
  kRare1gram,
  kRare3gram,
  kUnseen3gramFrac,
  kUnseenChars,
  kNonprintable,
  kEnumSurprise,
  kNumericDeviation,
  kPathFeatures
};
// The features compared with their own history in normalise() (a contiguous range); the
// others are deviations already (length, numbers) or counts that are summed.
constexpr int kFirstNormalised = kCharclassDivergence;
constexpr int kLastNormalised = kUnseen3gramFrac;
constexpr const char* kPathFeatureNames[kPathFeatures] = {
    "length_deviation", "charclass_divergence", "rare_1gram",
    "rare_3gram",       "unseen_3gram_frac",    "unseen_chars",
    "nonprintable",     "enum_surprise",        "numeric_deviation"};

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
constexpr const char* kGlobalNames[kAnyBase] = {
    "struct:arg_count",           "struct:arg_count_deviation",
    "struct:unseen_args",         "struct:missing_args",
    "struct:dropped_args",        "outcome:error",
    "outcome:duration_deviation", "principal:new",
    "principal:recent_calls",     "principal:interval_deviation",
    "encoding:invalid_utf8",      "size:truncated_values",
    "size:record_truncated"};
// How an aggregate combines a feature over arguments: sums for counts, max otherwise.
constexpr bool kAggregateSums[kPathFeatures] = {false, false, false, false, false,
                                                true,  true,  true,  false};

struct RunningStats {
  double n = 0, mean = 0, m2 = 0;
  void add(double x) {
    n += 1;
    const double d = x - mean;
    mean += d / n;
    m2 += d * (x - mean);
  }
  double stddev() const { return n > 1 ? std::sqrt(std::max(0.0, m2 / (n - 1))) : 0.0; }
  // Signed deviation in standard deviations, with a floor on the deviation unit.
  double z(double x, double floor) const { return n < 1 ? 0.0 : (x - mean) / (stddev() + floor); }
  // Winsorised update: once there is some history, a wild value moves the statistics only
  // as far as k standard deviations, so attacks cannot inflate what counts as normal.
  [[gnu::always_inline]] void add_robust(double x, double k, double floor) {
    // Clamped when |x - mean| > k sd + floor; the square root is only taken for values
    // outside the floor whose squared excess passes k^2 var.
    if (n >= 30) {
      const double excess = std::fabs(x - mean) - floor;
      if (excess > 0 && excess * excess > k * k * std::max(0.0, m2 / (n - 1))) {
        const double lim = k * stddev() + floor;
        x = std::clamp(x, mean - lim, mean + lim);
      }
    }
    add(x);
  }
  void write(codec::Writer& w) const { w.f64(n), w.f64(mean), w.f64(m2); }
  void read(codec::Reader& r) { n = r.f64(), mean = r.f64(), m2 = r.f64(); }
};

// Everything learned about one argument path (or, for the model-wide profile, about all).
struct PathState {
  std::string name;
  uint64_t present = 0;      // records in which the path occurred
  uint64_t last_record = 0;  // record number (1-based) of the last occurrence
  RunningStats length;
  std::array<double, kClasses> classes{};
  double class_total = 0;
  std::array<uint32_t, 256> bytes{};
  uint64_t byte_total = 0;
  CountMinSketch trigrams;
  // Distinct value hashes and counts while the path looks like an enumeration.
  std::vector<uint64_t> enum_values;
  std::vector<uint32_t> enum_counts;
  uint32_t enum_mode = 0;     // largest of enum_counts (not stored: recomputed on restore)
  uint8_t enum_state = 0;     // 0 undecided, 1 enumeration, 2 not an enumeration
  uint64_t observations = 0;  // values seen (lists give several per record)
  RunningStats numbers;
  // Running statistics of this path's own feature values, so aggregates can compare
  // paths with different natural variability (a free-text path vs an enumeration).
  std::array<RunningStats, kPathFeatures> feature_stats;
  uint64_t outliers = 0;  // values whose learning was damped

  size_t memory_bytes() const {
    return sizeof(*this) + name.capacity() + trigrams.memory_bytes() - sizeof(trigrams) +
           enum_values.capacity() * sizeof(uint64_t) + enum_counts.capacity() * sizeof(uint32_t);
  }
  void write(codec::Writer& w) const {
    w.str(name);
    w.u64(present), w.u64(last_record);
    length.write(w);
    for (double c : classes) w.f64(c);
    w.f64(class_total);
    for (uint32_t b : bytes) w.u32(b);
    w.u64(byte_total);
    w.u32s(trigrams.cells());
    w.u64(trigrams.total());
    w.u64(enum_values.size());
    for (size_t i = 0; i < enum_values.size(); ++i) w.u64(enum_values[i]), w.u32(enum_counts[i]);
    w.u8(enum_state);
    w.u64(observations);
    numbers.write(w);
    for (const auto& fs : feature_stats) fs.write(w);
    w.u64(outliers);
  }
  void read(codec::Reader& r, size_t width, size_t depth, size_t enum_max) {
    name = r.str(4096);
    present = r.u64(), last_record = r.u64();
    length.read(r);
    for (double& c : classes) c = r.f64();
    class_total = r.f64();
    for (uint32_t& b : bytes) b = r.u32();
    byte_total = r.u64();
    trigrams = CountMinSketch(width, depth);
    r.u32s(&trigrams.mutable_cells(), trigrams.width() * trigrams.depth());
    trigrams.set_total(r.u64());
    const uint64_t ne = r.u64();
    if (ne > enum_max)
      throw std::runtime_error("monitor snapshot: enumeration larger than enum_max_values");
    enum_values.clear();
    enum_counts.clear();
    enum_state = 0;
    enum_values.reserve(enum_max);
    enum_counts.reserve(enum_max);
    for (uint64_t i = 0; i < ne; ++i) {
      enum_values.push_back(r.u64());
      enum_counts.push_back(r.u32());
    }
    enum_state = r.u8();
    if (enum_state > 2) throw std::runtime_error("monitor snapshot: bad enumeration state");
    if (enum_state == 2) enum_values.shrink_to_fit(), enum_counts.shrink_to_fit();
    enum_mode = 0;
    for (uint32_t c : enum_counts) enum_mode = std::max(enum_mode, c);
    observations = r.u64();
    numbers.read(r);
    for (auto& fs : feature_stats) fs.read(r);
    outliers = r.u64();
  }
};

struct PrincipalSlot {
  uint64_t hash = 0;  // 0 = empty
  int64_t last_ns = 0;
  double damped_calls = 0;
  double iv_n = 0, iv_mean = 0, iv_var = 0;  // damped stats of log inter-call interval
};
constexpr size_t kWays = 4;

// Per-value de-duplication of 3-grams: open addressing with epoch stamps, fixed size,
// scratch shared by all models of the thread (values are at most max_value_bytes <= 4096).
struct GramSet {
  std::vector<uint32_t> stamp = std::vector<uint32_t>(size_t{1} << kGramSetBits, 0u);
  std::vector<uint32_t> key = std::vector<uint32_t>(size_t{1} << kGramSetBits, 0u);
  uint32_t epoch = 0;
  unsigned bits = kGramSetBits;
  // Starts a value of n+1 grams: only a prefix of the table at least twice that size is
  // used, so short values touch a few cache lines instead of the whole table.
  void next_value(size_t grams) {
    if (++epoch == 0) {
      std::fill(stamp.begin(), stamp.end(), 0u);
      epoch = 1;
    }
    bits = std::clamp<unsigned>(static_cast<unsigned>(std::bit_width(2 * grams)), 6, kGramSetBits);
  }
  bool first(uint32_t k) {
    const size_t mask = (size_t{1} << bits) - 1;
    size_t slot = (k * 0x9E3779B1u) >> (32 - bits);
    while (true) {
      if (stamp[slot] != epoch) {
        stamp[slot] = epoch;
        key[slot] = k;
        return true;
      }
      if (key[slot] == k) return false;
      slot = (slot + 1) & mask;
    }
  }
};
GramSet& gram_set() {
  thread_local GramSet set;
  return set;
}

// Path name -> index into a model's paths: open addressing over (hash, index) pairs, the
// names themselves live in the PathStates. Grows at half load; never shrinks.
class PathIndex {
 public:
  template <class Paths>
  int find(std::string_view name, const Paths& paths) const {
    if (slots_.empty()) return -1;
    const uint64_t h = stable_hash(name);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& sl = slots_[i];
      if (sl.idx < 0) return -1;
      if (sl.hash == h && paths[static_cast<size_t>(sl.idx)].name == name) return sl.idx;
    }
  }
  void insert(std::string_view name, int idx) {
    if (2 * (used_ + 1) > slots_.size()) grow();
    place(stable_hash(name), idx);
    ++used_;
  }
  void clear() {
    slots_.clear();
    used_ = 0;
    mask_ = 0;
  }
  size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    uint64_t hash = 0;
    int idx = -1;  // -1: empty
  };
  void place(uint64_t h, int idx) {
    size_t i = h & mask_;
    while (slots_[i].idx >= 0) i = (i + 1) & mask_;
    slots_[i] = Slot{h, idx};
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(std::max<size_t>(16, old.size() * 2), Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& sl : old) {
      if (sl.idx >= 0) place(sl.hash, sl.idx);
    }
  }
  std::vector<Slot> slots_;
  size_t used_ = 0;
  size_t mask_ = 0;
};

// One leaf value of the current record, kept until the record is folded in.
struct Leaf {
  Leaf(int p, const immunizer::v1::Value* v) : path(p), value(v) {}  // the rest is filled later
  int path;  // index into paths_, or -1 for a path without columns
  const immunizer::v1::Value* value;
  double f[kPathFeatures];  // features against the path (or the model-wide profile)
  double z[kPathFeatures];  // the same relative to the path's own feature history
  double novelty;
  uint64_t hash;  // enum_hash of the value
  bool known;     // a frequent member of its path's value set: content not re-measured
  int known_at;   // its position in the path's enumeration when known
};

double clampd(double v, double lim) { return std::clamp(v, -lim, lim); }

bool parse_number(std::string_view s, double* out) {
  if (s.empty() || s.size() > 32) return false;
  const char c = s[0];
  if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.')) return false;
  const char* b = s.data();
  if (*b == '+') ++b;
  double v;
  auto [p, ec] = std::from_chars(b, s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// One model key's state.

class ModelState {
 public:
  explicit ModelState(const FeatureConfig& cfg) : cfg_(cfg) {
    all_.name = "*";
    all_.trigrams = CountMinSketch(cfg.trigram_sketch_width, cfg.trigram_sketch_depth);
    principals_.assign(cfg.max_principals, PrincipalSlot{});
    rebuild_names();
  }

  uint64_t records() const { return records_; }
  uint32_t version() const { return version_; }
  bool frozen() const { return records_ >= cfg_.schema_freeze_records; }
  const std::vector<std::string>& names() const { return names_; }
  size_t paths() const { return paths_.size(); }
  uint64_t unseen_path_records() const { return unseen_path_records_; }
  uint64_t truncated_records() const { return truncated_records_; }

  size_t memory_bytes() const {
    size_t m = sizeof(*this) + all_.memory_bytes() + principals_.capacity() * sizeof(PrincipalSlot);
    for (const auto& p : paths_) m += p.memory_bytes();
    for (const auto& n : names_) m += n.capacity() + sizeof(std::string);
    m += index_.memory_bytes() + vals_.capacity() * sizeof(double) +
         leaves_.capacity() * sizeof(Leaf) + path_buf_.capacity();
    return m;
  }

  // Computes features into vals_ (against the state before the record), then folds it in.
  void process(const immunizer::v1::CallRecord& r) {
    const uint64_t record_no = records_ + 1;
    leaves_.clear();
    dropped_ = 0;
    grew_ = false;
    unseen_ = 0;
    columnless_ = 0;
    invalid_names_ = 0;
    // 1. Collect leaves, growing the schema while young.
    for (const auto& a : r.arguments()) {
      path_buf_.clear();
      append_name(a.name());
      collect(a.value(), 0);
    }
    if (r.outcome_case() == immunizer::v1::CallRecord::kResult) {
      path_buf_.assign("result");
      collect(r.result(), 0);
    }
    if (grew_) {
      ++version_;
      rebuild_names();
    }
    vals_.assign(names_.size(), 0.0);

    // 2. Features against the current state.
    double* any = vals_.data() + kAnyBase;
    for (Leaf& leaf : leaves_) {
      PathState& ps = leaf.path >= 0 ? paths_[leaf.path] : all_;
      leaf.hash = enum_hash(*leaf.value);
      leaf.known_at = measure(ps, *leaf.value, leaf.hash, leaf.f);
      leaf.known = leaf.known_at >= 0;
      leaf.novelty = normalise(ps, leaf.f, leaf.z);
      if (leaf.path >= 0) {
        combine(vals_.data() + kGlobalFeatures + leaf.path * kPathFeatures, leaf.f);
        ps.last_record = record_no;  // marks presence in this record
      }
      combine(any, leaf.z);
    }
    size_t arg_count = 0;
    size_t missing = 0;
    for (PathState& ps : paths_) {
      if (ps.last_record == record_no) {
        ++arg_count;
      } else if (records_ >= 10 &&
                 static_cast<double>(ps.present) >= cfg_.missing_presence_threshold * records_) {
        ++missing;
      }
    }
    arg_count += columnless_;
    vals_[kArgCount] = static_cast<double>(arg_count);
    vals_[kArgCountDeviation] =
        clampd(arg_stats_.z(static_cast<double>(arg_count), 0.5), cfg_.max_deviation);
    vals_[kUnseenArgs] = static_cast<double>(unseen_);
    vals_[kMissingArgs] = static_cast<double>(missing);
    vals_[kDroppedArgs] = static_cast<double>(dropped_);
    vals_[kError] = r.outcome_case() == immunizer::v1::CallRecord::kError ? 1.0 : 0.0;
    {
      // Hostile bytes are measured, not refused: every text field that is not valid UTF-8
      // counts once; so does every value the sensor had to cut.
      using immunizer::v1::is_valid_utf8;
      size_t invalid = invalid_names_, truncated = 0;
      for (const Leaf& leaf : leaves_) {
        const auto& v = *leaf.value;
        if (v.kind_case() == immunizer::v1::Value::kStringValue && !is_valid_utf8(v.string_value()))
          ++invalid;
        if (v.truncated()) ++truncated;
      }
      const auto& p = r.principal();
      invalid += !is_valid_utf8(p.user()) + !is_valid_utf8(p.session()) + !is_valid_utf8(p.ip());
      invalid += !is_valid_utf8(r.call()) + !is_valid_utf8(r.context());
      for (const auto& l : r.labels())
        invalid += !is_valid_utf8(l.key()) + !is_valid_utf8(l.value());
      if (r.outcome_case() == immunizer::v1::CallRecord::kError)
        invalid += !is_valid_utf8(r.error().type()) + !is_valid_utf8(r.error().message());
      vals_[kInvalidUtf8] = static_cast<double>(invalid);
      vals_[kTruncatedValues] = static_cast<double>(truncated);
      vals_[kRecordTruncated] = r.truncated() || r.dropped_arguments() > 0 ? 1.0 : 0.0;
    }
    if (r.duration_nanos() > 0) {
      const double d = std::log1p(static_cast<double>(r.duration_nanos()) / 1000.0);
      vals_[kDurationDeviation] = clampd(duration_.z(d, 0.05), cfg_.max_deviation);
      duration_.add_robust(d, kWinsor, 0.05);
    }
    behaviour(r);

    // 3. Fold the record in. Values far outside what their path has shown (novelty above
    // outlier_novelty) are learned only once every outlier_learn_every times, so a burst of
    // attacks does not quickly become "normal" for the sketches and enumerations.
    for (const Leaf& leaf : leaves_) {
      PathState& ps = leaf.path >= 0 ? paths_[leaf.path] : all_;
      bool learn = true;
      if (ps.feature_stats[0].n >= kMinFeatureStats && leaf.novelty > cfg_.outlier_novelty) {
        learn = (ps.outliers++ % cfg_.outlier_learn_every) == 0;
      }
      fold(ps, leaf, leaf.f, learn);
      // The model-wide profile (only consulted for paths without columns) learns from a
      // deterministic 1-in-kAllProfileSample sample of records: same picture, less CPU.
      if (leaf.path >= 0 && !leaf.known && record_no % kAllProfileSample == 0)
        fold(all_, leaf, nullptr, learn);
    }
    for (PathState& ps : paths_) {
      if (ps.last_record == record_no) ++ps.present;
    }
    arg_stats_.add_robust(static_cast<double>(arg_count), kWinsor, 0.5);
    if (unseen_ > 0) ++unseen_path_records_;
    if (dropped_ > 0) ++truncated_records_;
    records_ = record_no;
  }

  const std::vector<double>& values() const { return vals_; }

  void write(codec::Writer& w) const {
    w.u64(cfg_.trigram_sketch_width), w.u64(cfg_.trigram_sketch_depth), w.u64(principals_.size());
    w.u64(records_), w.u32(version_);
    w.u64(unseen_path_records_), w.u64(truncated_records_);
    arg_stats_.write(w);
    duration_.write(w);
    all_.write(w);
    w.u64(paths_.size());
    for (const auto& p : paths_) p.write(w);
    uint64_t used = 0;
    for (const auto& s : principals_) used += s.hash != 0;
    w.u64(used);
    for (size_t i = 0; i < principals_.size(); ++i) {
      const auto& s = principals_[i];
      if (s.hash == 0) continue;
      w.u64(i), w.u64(s.hash), w.i64(s.last_ns), w.f64(s.damped_calls);
      w.f64(s.iv_n), w.f64(s.iv_mean), w.f64(s.iv_var);
    }
  }

  void read(codec::Reader& r) {
    if (r.u64() != cfg_.trigram_sketch_width || r.u64() != cfg_.trigram_sketch_depth ||
        r.u64() != principals_.size()) {
      throw std::runtime_error(
          "monitor snapshot: sketch or principal table dimensions differ from config");
    }
    records_ = r.u64(), version_ = r.u32();
    unseen_path_records_ = r.u64(), truncated_records_ = r.u64();
    arg_stats_.read(r);
    duration_.read(r);
    all_.read(r, cfg_.trigram_sketch_width, cfg_.trigram_sketch_depth, cfg_.enum_max_values);
    const uint64_t np = r.u64();
    if (np > std::max<size_t>(cfg_.max_paths_per_model, 4096))
      throw std::runtime_error("monitor snapshot: too many paths");
    paths_.resize(np);
    index_.clear();
    for (size_t i = 0; i < np; ++i) {
      paths_[i].read(r, cfg_.trigram_sketch_width, cfg_.trigram_sketch_depth, cfg_.enum_max_values);
      if (index_.find(paths_[i].name, paths_) >= 0) {
        throw std::runtime_error("monitor snapshot: duplicate path");
      }
      index_.insert(paths_[i].name, static_cast<int>(i));
    }
    const uint64_t used = r.u64();
    if (used > principals_.size())
      throw std::runtime_error("monitor snapshot: too many principals");
    for (uint64_t k = 0; k < used; ++k) {
      const uint64_t i = r.u64();
      if (i >= principals_.size())
        throw std::runtime_error("monitor snapshot: principal slot out of range");
      auto& s = principals_[i];
      s.hash = r.u64(), s.last_ns = r.i64(), s.damped_calls = r.f64();
      s.iv_n = r.f64(), s.iv_mean = r.f64(), s.iv_var = r.f64();
    }
    if (!r.done()) throw std::runtime_error("monitor snapshot: trailing bytes");
    rebuild_names();
  }

 private:
  void collect(const immunizer::v1::Value& v, size_t depth) {
    using K = immunizer::v1::Value;
    if (v.kind_case() == K::kMapValue && depth < cfg_.max_depth) {
      const size_t base = path_buf_.size();
      for (const auto& entry : v.map_value().fields()) {
        path_buf_.push_back('.');
        append_name(entry.key());
        collect(entry.value(), depth + 1);
        path_buf_.resize(base);
      }
      return;
    }
    if (v.kind_case() == K::kListValue && depth < cfg_.max_depth) {
      const size_t base = path_buf_.size();
      path_buf_.append("[]");
      for (const auto& child : v.list_value().items()) collect(child, depth + 1);
      path_buf_.resize(base);
      return;
    }
    if (leaves_.size() >= cfg_.max_leaves_per_record) {
      ++dropped_;
      return;
    }
    int idx = -1;
    if (const int found = index_.find(path_buf_, paths_); found >= 0) {
      idx = found;
    } else if (!frozen() && paths_.size() < cfg_.max_paths_per_model && path_buf_.size() <= 256) {
      idx = static_cast<int>(paths_.size());
      paths_.emplace_back();
      paths_.back().name = path_buf_;
      paths_.back().trigrams = CountMinSketch(cfg_.trigram_sketch_width, cfg_.trigram_sketch_depth);
      paths_.back().enum_values.reserve(cfg_.enum_max_values);  // memory fixed until overflow
      paths_.back().enum_counts.reserve(cfg_.enum_max_values);
      index_.insert(path_buf_, idx);
      grew_ = true;
      ++unseen_;
    } else {
      ++unseen_;
      ++columnless_;
    }
    leaves_.emplace_back(idx, &v);
  }

  // Paths become feature names (proto3 strings): invalid UTF-8 in a name is escaped, counted.
  void append_name(std::string_view name) {
    if (immunizer::v1::is_valid_utf8(name)) {
      path_buf_.append(name);
    } else {
      ++invalid_names_;
      immunizer::v1::append_escaped_utf8(path_buf_, name);
    }
  }

  // Length of a text value as the app saw it: a value the sensor cut keeps its original length.
  static size_t length_of(const immunizer::v1::Value& v) {
    const size_t n = text_of(v).size();
    return v.truncated() && v.original_length() > n ? static_cast<size_t>(v.original_length()) : n;
  }

  static std::string_view text_of(const immunizer::v1::Value& v) {
    using K = immunizer::v1::Value;
    if (v.kind_case() == K::kStringValue) return v.string_value();
    if (v.kind_case() == K::kBytesValue) return v.bytes_value();
    return {};
  }

  static uint64_t enum_hash(const immunizer::v1::Value& v) {
    using K = immunizer::v1::Value;
    char buf[9];
    buf[0] = static_cast<char>(v.kind_case());
    switch (v.kind_case()) {
      case K::kStringValue:
      case K::kBytesValue: {
        const std::string_view s = text_of(v);
        return stable_hash(s) ^ static_cast<uint64_t>(v.kind_case());
      }
      case K::kIntValue: {
        const int64_t x = v.int_value();
        std::memcpy(buf + 1, &x, 8);
        break;
      }
      case K::kDoubleValue: {
        const double x = v.double_value();
        std::memcpy(buf + 1, &x, 8);
        break;
      }
      case K::kBoolValue: {
        const int64_t x = v.bool_value();
        std::memcpy(buf + 1, &x, 8);
        break;
      }
      default:
        std::memset(buf + 1, 0, 8);  // null, or a container beyond max_depth
    }
    return stable_hash(std::string_view(buf, 9));
  }

  static bool number_of(const immunizer::v1::Value& v, double* x) {
    using K = immunizer::v1::Value;
    switch (v.kind_case()) {
      case K::kIntValue:
        *x = static_cast<double>(v.int_value());
        return true;
      case K::kDoubleValue:
        *x = v.double_value();
        return std::isfinite(*x);
      case K::kStringValue:
        return parse_number(v.string_value(), x);
      default:
        return false;
    }
  }

  // A value the path has seen at least kKnownValueCount times while its values still look
  // like an enumeration: its content is known, so only its frequency is measured (and its
  // n-grams are not counted again), which keeps constant headers cheap and quiet.
  static int known_index(const PathState& ps, uint64_t h) {
    if (ps.enum_state == 2) return -1;
    const auto it = std::find(ps.enum_values.begin(), ps.enum_values.end(), h);
    if (it == ps.enum_values.end()) return -1;
    const auto i = static_cast<int>(it - ps.enum_values.begin());
    return ps.enum_counts[i] >= kKnownValueCount ? i : -1;
  }

  // How much rarer than the path's most frequent value this value is, in bits. Relative to
  // the mode rather than to all observations, so the usual value scores exactly 0 however
  // the mix drifts (a feature constant in training that creeps up by a fraction of a bit
  // once some other value turns up would otherwise isolate every normal record).
  static double enum_surprise(const PathState& ps, double count) {
    if (count == ps.enum_mode) return 0.0;  // the usual value: log2(1)
    return std::max(0.0, std::log2((static_cast<double>(ps.enum_mode) + 1.0) / (count + 1.0)));
  }

  // Returns the value's position in the path's enumeration if it is a known member, else -1.
  int measure(const PathState& ps, const immunizer::v1::Value& v, uint64_t h, double* f) const {
    std::fill(f, f + kPathFeatures, 0.0);
    if (const int ki = known_index(ps, h); ki >= 0) {
      if (ps.enum_state == 1) {
        f[kEnumSurprise] = enum_surprise(ps, ps.enum_counts[ki]);
      }
      return ki;
    }
    const std::string_view s = text_of(v);
    const bool textual = v.kind_case() == immunizer::v1::Value::kStringValue ||
                         v.kind_case() == immunizer::v1::Value::kBytesValue;
    if (textual) {
      f[kLengthDeviation] =
          clampd(ps.length.z(static_cast<double>(length_of(v)), 1.0), cfg_.max_deviation);
      const size_t n = std::min(s.size(), cfg_.max_value_bytes);
      const auto* p = reinterpret_cast<const uint8_t*>(s.data());
      uint32_t local[kClasses] = {};
      uint64_t seen[4] = {};
      uint32_t min1 = UINT32_MAX;
      uint32_t unseen_chars = 0, nonprint = 0;
      for (size_t i = 0; i < n; ++i) {
        const uint8_t b = p[i];
        const uint8_t c = kClassOf[b];
        ++local[c];
        nonprint += c == 11;
        const uint64_t bit = uint64_t{1} << (b & 63);
        if (seen[b >> 6] & bit) continue;
        seen[b >> 6] |= bit;
        const uint32_t df = ps.bytes[b];
        unseen_chars += df == 0;
        min1 = std::min(min1, df);
      }
      const double values = static_cast<double>(ps.byte_total);  // textual values learned
      if (n > 0) {
        // KL divergence of this value's class mix from the path's average class mix.
        const double inv_n = 1.0 / static_cast<double>(n);
        const double denom = ps.class_total + kClassSmoothing * kClasses;
        double kl = 0;
        for (int c = 0; c < kClasses; ++c) {
          if (local[c] == 0) continue;
          const double pv = local[c] * inv_n;
          const double q = (ps.classes[c] + kClassSmoothing) / denom;
          kl += pv * std::log(pv / q);
        }
        f[kCharclassDivergence] = std::max(0.0, kl);
        // Rarest byte: in how few of the path's values it ever appeared, in bits.
        f[kRare1gram] = std::log2((values + 1.0) / (min1 + 1.0));
        // 3-grams over the value framed by start/end markers, so short values and
        // prefixes/suffixes count too; counts are per value (document frequency).
        uint32_t min3 = UINT32_MAX, unseen3 = 0, grams = 0;
        uint32_t key = 0x02u << 8;
        for (size_t i = 0; i <= n; ++i) {
          const uint32_t b = i < n ? p[i] : 0x03u;
          key = ((key << 8) | b) & 0xFFFFFFu;
          if (i == 0) continue;
          const uint32_t e = ps.trigrams.estimate(key);
          min3 = std::min(min3, e);
          unseen3 += e == 0;
          ++grams;
        }
        f[kRare3gram] = std::log2((values + 1.0) / (min3 + 1.0));
        f[kUnseen3gramFrac] = static_cast<double>(unseen3) / grams;
      }
      f[kUnseenChars] = unseen_chars;
      f[kNonprintable] = nonprint;
    }
    if (ps.enum_state == 1) {
      const auto it = std::find(ps.enum_values.begin(), ps.enum_values.end(), h);
      const double count =
          it == ps.enum_values.end() ? 0.0 : ps.enum_counts[it - ps.enum_values.begin()];
      f[kEnumSurprise] = enum_surprise(ps, count);
    }
    double x;
    if (number_of(v, &x)) {
      f[kNumericDeviation] =
          clampd(ps.numbers.z(x, 1e-3 * (std::fabs(ps.numbers.mean) + 1.0)), cfg_.max_deviation);
    }
    return -1;
  }

  // Each feature relative to the path's own history of that feature (z >= 0), so the
  // record-level aggregates compare like with like; returns the largest (the novelty).
  static double normalise(const PathState& ps, const double* f, double* z) {
    double novelty = 0;
    for (int i = 0; i < kPathFeatures; ++i) {
      const RunningStats& st = ps.feature_stats[i];
      if (kAggregateSums[i]) {
        z[i] = f[i];
        continue;
      }
      if (i < kFirstNormalised || i > kLastNormalised) {
        z[i] = f[i];  // already a deviation
      } else if (f[i] == 0 && st.mean >= 0) {
        z[i] = 0;  // what the expression below gives for a zero feature, without the divide
      } else if (st.n >= kMinFeatureStats) {
        z[i] = std::max(
            0.0, (f[i] - st.mean) / (st.stddev() + std::max(0.05, 0.1 * std::fabs(st.mean))));
      } else {
        z[i] = f[i];
      }
      novelty = std::max(novelty, std::fabs(z[i]));
    }
    return novelty;
  }

  // Several values of one path (list items) or of all paths (aggregate) in one record;
  // dst starts at zero for every record.
  static void combine(double* dst, const double* f) {
    for (int i = 0; i < kPathFeatures; ++i) {
      if (kAggregateSums[i]) {
        dst[i] += f[i];
      } else if (i == kLengthDeviation || i == kNumericDeviation) {
        // keep the value furthest from normal, with its sign
        if (std::fabs(f[i]) > std::fabs(dst[i])) dst[i] = f[i];
      } else {
        dst[i] = std::max(dst[i], f[i]);
      }
    }
  }

  // Folds a value into a path's state. `f` (the value's features, may be null) always
  // feeds the feature statistics (winsorised); the value itself only when `learn`.
  void fold(PathState& ps, const Leaf& leaf, const double* f, bool learn) {
    const immunizer::v1::Value& v = *leaf.value;
    if (f != nullptr) {
      // Only the features normalise() compares against their own history keep statistics;
      // the first slot also counts the path's values (the learning gate reads its n).
      ps.feature_stats[0].n += 1;
      for (int i = kFirstNormalised; i <= kLastNormalised; ++i)
        ps.feature_stats[i].add_robust(f[i], kWinsor, 0.05);
    }
    if (!learn) return;
    ++ps.observations;
    const std::string_view s = text_of(v);
    const bool textual = v.kind_case() == immunizer::v1::Value::kStringValue ||
                         v.kind_case() == immunizer::v1::Value::kBytesValue;
    if (leaf.known) {
      // known_at stays valid unless an earlier value of this record ended the enumeration.
      const int ki = ps.enum_state == 2 ? -1 : leaf.known_at;
      if (ki >= 0 && ps.enum_counts[ki] != UINT32_MAX)
        ps.enum_mode = std::max(ps.enum_mode, ++ps.enum_counts[ki]);
      if (ps.enum_state == 0 && ps.observations >= cfg_.enum_min_observations) ps.enum_state = 1;
      return;
    }
    if (textual) {
      ps.length.add_robust(static_cast<double>(length_of(*leaf.value)), kWinsor, 1.0);
      const size_t n = std::min(s.size(), cfg_.max_value_bytes);
      if (n > 0) {
        const auto* p = reinterpret_cast<const uint8_t*>(s.data());
        uint32_t local[kClasses] = {};
        uint64_t seen[4] = {};
        uint32_t key = 0x02u << 8;
        GramSet& grams = gram_set();
        grams.next_value(n + 1);
        for (size_t i = 0; i <= n; ++i) {
          const uint32_t b = i < n ? p[i] : 0x03u;
          if (i < n) {
            ++local[kClassOf[b]];
            const uint64_t bit = uint64_t{1} << (b & 63);
            if (!(seen[b >> 6] & bit)) {
              seen[b >> 6] |= bit;
              if (ps.bytes[b] != UINT32_MAX) ++ps.bytes[b];
            }
          }
          key = ((key << 8) | b) & 0xFFFFFFu;
          if (i > 0 && grams.first(key)) ps.trigrams.add(key);
        }
        const double inv_n = 1.0 / static_cast<double>(n);
        for (int c = 0; c < kClasses; ++c) ps.classes[c] += local[c] * inv_n;
        ps.class_total += 1.0;
        ps.byte_total += 1;
      }
    }
    if (ps.enum_state != 2) {
      const uint64_t h = leaf.hash;
      const auto it = std::find(ps.enum_values.begin(), ps.enum_values.end(), h);
      if (it != ps.enum_values.end()) {
        uint32_t& c = ps.enum_counts[it - ps.enum_values.begin()];
        if (c != UINT32_MAX) ps.enum_mode = std::max(ps.enum_mode, ++c);
      } else if (ps.enum_values.size() < cfg_.enum_max_values) {
        ps.enum_values.push_back(h);
        ps.enum_counts.push_back(1);
        ps.enum_mode = std::max<uint32_t>(ps.enum_mode, 1);
      } else if (ps.enum_state == 0) {
        ps.enum_state = 2;  // too many distinct values: not an enumeration
        ps.enum_values.clear();
        ps.enum_values.shrink_to_fit();
        ps.enum_counts.clear();
        ps.enum_counts.shrink_to_fit();
        ps.enum_mode = 0;
      }
      if (ps.enum_state == 0 && ps.observations >= cfg_.enum_min_observations) ps.enum_state = 1;
    }
    double x;
    if (number_of(v, &x))
      ps.numbers.add_robust(x, kWinsor, 1e-3 * (std::fabs(ps.numbers.mean) + 1.0));
  }

  void behaviour(const immunizer::v1::CallRecord& r) {
    if (!cfg_.principal_features) return;
    const auto& p = r.principal();
    uint64_t h;
    if (!p.user().empty())
      h = stable_hash(p.user()) ^ 0x1;
    else if (!p.session().empty())
      h = stable_hash(p.session()) ^ 0x2;
    else if (!p.ip().empty())
      h = stable_hash(p.ip()) ^ 0x3;
    else
      return;
    if (h == 0) h = 1;
    const int64_t now = r.timestamp_unix_nanos();
    if (now <= 0) return;
    const size_t buckets = principals_.size() / kWays;
    PrincipalSlot* set = &principals_[(h % buckets) * kWays];
    PrincipalSlot* slot = nullptr;
    for (size_t i = 0; i < kWays; ++i) {
      if (set[i].hash == h) slot = &set[i];
    }
    if (slot == nullptr) {
      // Evict the least recently seen principal of the set (empty slots have last_ns 0).
      slot = &set[0];
      for (size_t i = 0; i < kWays; ++i) {
        if (set[i].hash == 0) {
          slot = &set[i];
          break;
        }
        if (set[i].last_ns < slot->last_ns) slot = &set[i];
      }
      *slot = PrincipalSlot{};
      slot->hash = h;
      slot->last_ns = now;
      slot->damped_calls = 1;
      vals_[kPrincipalNew] = 1;
      vals_[kPrincipalRecentCalls] = 1;
      return;
    }
    const double dt = std::max(0.0, static_cast<double>(now - slot->last_ns) * 1e-9);
    const double decay = std::exp2(-dt / cfg_.principal_half_life_seconds);
    const double calls = slot->damped_calls * decay + 1.0;
    vals_[kPrincipalRecentCalls] = calls;
    const double liv = std::log(std::max(dt, 1e-6));
    if (slot->iv_n >= 2) {
      vals_[kPrincipalIntervalDeviation] =
          clampd((liv - slot->iv_mean) / (std::sqrt(slot->iv_var) + 0.1), cfg_.max_deviation);
    }
    // Damped incremental mean/variance of the log interval (older intervals fade).
    slot->iv_n = slot->iv_n * decay + 1.0;
    const double a = 1.0 / slot->iv_n;
    const double d = liv - slot->iv_mean;
    slot->iv_mean += a * d;
    slot->iv_var = (1.0 - a) * (slot->iv_var + a * d * d);
    slot->damped_calls = calls;
    slot->last_ns = std::max(slot->last_ns, now);
  }

  void rebuild_names() {
    names_.clear();
    names_.reserve(kGlobalFeatures + paths_.size() * kPathFeatures);
    for (int i = 0; i < kAnyBase; ++i) names_.emplace_back(kGlobalNames[i]);
    for (int i = 0; i < kPathFeatures; ++i)
      names_.emplace_back(std::string("any:") + kPathFeatureNames[i]);
    for (const auto& p : paths_) {
      for (int i = 0; i < kPathFeatures; ++i)
        names_.push_back("arg:" + p.name + ":" + kPathFeatureNames[i]);
    }
  }

  const FeatureConfig cfg_;  // a copy: the extractor may move
  uint64_t records_ = 0;
  uint32_t version_ = 1;
  uint64_t unseen_path_records_ = 0;
  uint64_t truncated_records_ = 0;
  RunningStats arg_stats_;
  RunningStats duration_;
  PathState all_;
  std::vector<PathState> paths_;
  PathIndex index_;
  std::vector<PrincipalSlot> principals_;
  std::vector<std::string> names_;
  // scratch, per record
  std::vector<double> vals_;
  std::vector<Leaf> leaves_;
  std::string path_buf_;
  size_t dropped_ = 0;
  size_t unseen_ = 0;         // leaves whose path had no learned state before this record
  size_t columnless_ = 0;     // leaves whose path has no columns (schema frozen or full)
  size_t invalid_names_ = 0;  // argument names / map keys of this record not valid UTF-8
  bool grew_ = false;
};

// ---------------------------------------------------------------------------------------------
// FeatureExtractor

size_t FeatureExtractor::Hash::operator()(std::string_view s) const noexcept {
  return stable_hash(s);
}

FeatureExtractor::FeatureExtractor(FeatureConfig cfg) : cfg_(sanitize(cfg)) {}
FeatureExtractor::~FeatureExtractor() = default;
FeatureExtractor::FeatureExtractor(FeatureExtractor&&) noexcept = default;
FeatureExtractor& FeatureExtractor::operator=(FeatureExtractor&&) noexcept = default;

std::string FeatureExtractor::model_key(const immunizer::v1::CallRecord& r) {
  std::string k;
  k.reserve(r.id().app().size() + r.call().size() + r.context().size() + 2);
  v1::append_escaped_utf8(k, r.id().app());
  k.push_back('|');
  v1::append_escaped_utf8(k, r.call());
  k.push_back('|');
  v1::append_escaped_utf8(k, r.context());
  return k;
}

bool FeatureExtractor::extract(const immunizer::v1::CallRecord& r,
                               immunizer::v1::FeatureVector* out, std::string* reason) {
  auto fail = [&](const char* why) {
    if (reason) *reason = why;
    return false;
  };
  if (out == nullptr) return fail("no output vector");
  if (r.id().app().empty()) return fail("record has no app");
  if (r.call().empty()) return fail("record has no call name");
  // The model key, call and labels travel downstream as proto3 strings: hostile bytes in
  // them are escaped (and measured by the model as encoding:invalid_utf8).
  key_buf_.clear();
  v1::append_escaped_utf8(key_buf_, r.id().app());
  key_buf_.push_back('|');
  v1::append_escaped_utf8(key_buf_, r.call());
  key_buf_.push_back('|');
  v1::append_escaped_utf8(key_buf_, r.context());
  auto it = models_.find(std::string_view(key_buf_));
  if (it == models_.end()) {
    if (models_.size() >= cfg_.max_models) return fail("model limit reached (max_models)");
    it = models_.emplace(key_buf_, std::make_unique<ModelState>(cfg_)).first;
  }
  ModelState& m = *it->second;
  m.process(r);

  const auto& names = m.names();
  const auto& vals = m.values();
  auto* schema = out->mutable_schema();
  if (out->model_key() != key_buf_ || schema->version() != m.version() ||
      schema->names_size() != static_cast<int>(names.size())) {
    out->set_model_key(key_buf_);
    schema->set_version(m.version());
    schema->clear_names();
    for (const auto& n : names) schema->add_names(n);
  }
  out->mutable_values()->Assign(vals.begin(), vals.end());
  *out->mutable_record_id() = r.id();
  *out->mutable_principal() = r.principal();
  if (v1::is_valid_utf8(r.call())) {
    out->set_call(r.call());
  } else {
    out->set_call(v1::escape_invalid_utf8(r.call()));
  }
  out->set_timestamp_unix_nanos(r.timestamp_unix_nanos());
  auto* labels = out->mutable_labels();
  labels->clear();
  for (const auto& l : r.labels()) {
    // A repeated key: the last one wins, as when labels were a map<string, string>.
    (*labels)[v1::escape_invalid_utf8(l.key())] = v1::escape_invalid_utf8(l.value());
  }
  return true;
}

std::string FeatureExtractor::snapshot(const std::string& model_key) const {
  auto it = models_.find(std::string_view(model_key));
  if (it == models_.end()) return {};
  codec::Writer w;
  w.u32(kSnapshotFormat);
  it->second->write(w);
  return codec::frame(w.bytes(), cfg_.compress_snapshots);
}

void FeatureExtractor::restore(const std::string& model_key, const std::string& bytes) {
  const std::string raw = codec::unframe(bytes, size_t{1} << 30);
  codec::Reader r(raw);
  if (r.u32() != kSnapshotFormat)
    throw std::runtime_error("monitor snapshot: unsupported format version");
  auto m = std::make_unique<ModelState>(cfg_);
  m->read(r);
  auto it = models_.find(std::string_view(model_key));
  if (it != models_.end()) {
    it->second = std::move(m);
  } else {
    if (models_.size() >= cfg_.max_models)
      throw std::runtime_error("monitor snapshot: model limit reached");
    models_.emplace(model_key, std::move(m));
  }
}

bool FeatureExtractor::drop(const std::string& model_key) {
  auto it = models_.find(std::string_view(model_key));
  if (it == models_.end()) return false;
  models_.erase(it);
  return true;
}

std::vector<std::string> FeatureExtractor::model_keys() const {
  std::vector<std::string> keys;
  keys.reserve(models_.size());
  for (const auto& [k, _] : models_) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

immunizer::v1::FeatureSchema FeatureExtractor::schema(const std::string& model_key) const {
  immunizer::v1::FeatureSchema s;
  auto it = models_.find(std::string_view(model_key));
  if (it == models_.end()) return s;
  s.set_version(it->second->version());
  for (const auto& n : it->second->names()) s.add_names(n);
  return s;
}

ModelStats FeatureExtractor::stats(const std::string& model_key) const {
  ModelStats st;
  auto it = models_.find(std::string_view(model_key));
  if (it == models_.end()) return st;
  const ModelState& m = *it->second;
  st.records = m.records();
  st.schema_version = m.version();
  st.features = m.names().size();
  st.paths = m.paths();
  st.frozen = m.frozen();
  st.unseen_path_records = m.unseen_path_records();
  st.truncated_records = m.truncated_records();
  st.memory_bytes = m.memory_bytes();
  return st;
}

uint64_t FeatureExtractor::records_seen(const std::string& model_key) const {
  auto it = models_.find(std::string_view(model_key));
  return it == models_.end() ? 0 : it->second->records();
}

size_t FeatureExtractor::memory_bytes(const std::string& model_key) const {
  auto it = models_.find(std::string_view(model_key));
  return it == models_.end() ? 0 : it->second->memory_bytes() + model_key.size() + 64;
}

size_t FeatureExtractor::memory_bytes() const {
  size_t m = sizeof(*this) + key_buf_.capacity();
  for (const auto& [k, s] : models_) m += s->memory_bytes() + k.size() + 64;
  return m;
}

}  // namespace immunizer::monitor
