// Path statistics of the feature extractor: what one argument path's values looked like
// (length, character classes, byte and 3-gram document frequencies, enumeration, numbers),
// the per-value features measured against that, and how a value is learned into it.
// Private to immunizer_features. Not thread-safe: a PathState belongs to one model.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "immunizer/common/byte_codec.hpp"
#include "immunizer/monitor/features.hpp"
#include "immunizer/monitor/sketch.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::monitor::detail {

// Character classes: what a value is made of. Attacks change the mix (quotes, brackets,
// control characters in a path that held letters and digits).
constexpr int kClasses = 13;
constexpr double kWinsor = 4.0;          // winsorising limit of running statistics, in sd
constexpr double kMinFeatureStats = 30;  // history needed before features are normalised

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

inline double clampd(double v, double lim) { return std::clamp(v, -lim, lim); }

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
  void write(common::ByteWriter& w) const;  // snapshot.cpp
  void read(common::ByteReader& r);
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
  void write(common::ByteWriter& w) const;  // snapshot.cpp
  void read(common::ByteReader& r, size_t width, size_t depth, size_t enum_max);
};

// A new, empty path with the configured sketch size and its enumeration memory reserved.
PathState make_path_state(std::string_view name, const FeatureConfig& cfg);

// One leaf value of the current record, kept until the record is folded in.
struct Leaf {
  Leaf(int p, const immunizer::v1::Value* v) : path(p), value(v) {}  // the rest is filled later
  int path;  // index into the schema's paths, or -1 for a path without columns
  const immunizer::v1::Value* value;
  double f[kPathFeatures];  // features against the path (or the model-wide profile)
  double z[kPathFeatures];  // the same relative to the path's own feature history
  double novelty;
  uint64_t hash;  // enum_hash of the value
  bool known;     // a frequent member of its path's value set: content not re-measured
  int known_at;   // its position in the path's enumeration when known
};

// Hash of a value's kind and content (the identity of an enumeration member).
uint64_t enum_hash(const immunizer::v1::Value& v);

// Computes the value's features `f` against the path. Returns the value's position in the
// path's enumeration if it is a known member (only its frequency is measured), else -1.
int measure(const PathState& ps, const immunizer::v1::Value& v, uint64_t h,
            const FeatureConfig& cfg, double* f);

// Each feature relative to the path's own history of that feature (z >= 0), so the
// record-level aggregates compare like with like; returns the largest (the novelty).
double normalise(const PathState& ps, const double* f, double* z);

// Several values of one path (list items) or of all paths (aggregate) in one record;
// dst starts at zero for every record.
void combine(double* dst, const double* f);

// Folds a value into a path's state. `f` (the value's features, may be null) always
// feeds the feature statistics (winsorised); the value itself only when `learn`.
void fold(PathState& ps, const Leaf& leaf, const double* f, bool learn, const FeatureConfig& cfg);

}  // namespace immunizer::monitor::detail
