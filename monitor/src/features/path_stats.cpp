#include "path_stats.hpp"

#include <bit>
#include <charconv>
#include <cstring>

namespace immunizer::monitor::detail {
namespace {

using immunizer::v1::Value;

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
// Classes: lower, upper, digit, space, dot, dash, at, quote, meta, slash, punct, control, high.
constexpr std::array<uint8_t, 256> kClassOf = make_class_table();
constexpr uint8_t kControlClass = 11;
constexpr double kClassSmoothing = 0.01;
constexpr unsigned kGramSetBits = 13;     // per-value 3-gram de-dup set: 8192 slots
constexpr uint32_t kKnownValueCount = 8;  // enumeration members seen this often are "known"
constexpr uint64_t kEnumMissShare = 100;  // an enumeration misses at most 1 in this many values
// How an aggregate combines a feature over arguments: sums for counts, max otherwise.
constexpr bool kAggregateSums[kPathFeatures] = {false, false, false, false, false,
                                                true,  true,  true,  false};

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

std::string_view text_of(const Value& v) {
  if (v.kind_case() == Value::kStringValue) return v.string_value();
  if (v.kind_case() == Value::kBytesValue) return v.bytes_value();
  return {};
}

bool is_textual(const Value& v) {
  return v.kind_case() == Value::kStringValue || v.kind_case() == Value::kBytesValue;
}

// Length of a text value as the app saw it: a value the sensor cut keeps its original length.
size_t length_of(const Value& v) {
  const size_t n = text_of(v).size();
  return v.truncated() && v.original_length() > n ? static_cast<size_t>(v.original_length()) : n;
}

bool number_of(const Value& v, double* x) {
  switch (v.kind_case()) {
    case Value::kIntValue:
      *x = static_cast<double>(v.int_value());
      return true;
    case Value::kDoubleValue:
      *x = v.double_value();
      return std::isfinite(*x);
    case Value::kStringValue:
      return parse_number(v.string_value(), x);
    default:
      return false;
  }
}

// The value's position among the path's enumeration values, or -1 (also when the path is no
// enumeration). One seen at least kKnownValueCount times while its values still look like
// an enumeration is known: its content is known, so only its frequency is measured (and its
// n-grams are not counted again), which keeps constant headers cheap and quiet.
int enum_index(const PathState& ps, uint64_t h) {
  if (ps.enum_state == 2) return -1;
  const auto it = std::find(ps.enum_values.begin(), ps.enum_values.end(), h);
  return it == ps.enum_values.end() ? -1 : static_cast<int>(it - ps.enum_values.begin());
}

// How much rarer than the path's most frequent value this value is, in bits. Relative to
// the mode rather than to all observations, so the usual value scores exactly 0 however
// the mix drifts (a feature constant in training that creeps up by a fraction of a bit
// once some other value turns up would otherwise isolate every normal record).
double enum_surprise(const PathState& ps, double count) {
  if (count == ps.enum_mode) return 0.0;  // the usual value: log2(1)
  return std::max(0.0, std::log2((static_cast<double>(ps.enum_mode) + 1.0) / (count + 1.0)));
}

// The content features of a text value's first n bytes (n > 0).
void measure_content(const PathState& ps, const uint8_t* p, size_t n, const uint32_t* local,
                     uint32_t min1, double* f) {
  const double values = static_cast<double>(ps.byte_total);  // textual values learned
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

void measure_text(const PathState& ps, const Value& v, const FeatureConfig& cfg, double* f) {
  const std::string_view s = text_of(v);
  f[kLengthDeviation] =
      clampd(ps.length.z(static_cast<double>(length_of(v)), 1.0), cfg.max_deviation);
  const size_t n = std::min(s.size(), cfg.max_value_bytes);
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  uint32_t local[kClasses] = {};
  uint64_t seen[4] = {};
  uint32_t min1 = UINT32_MAX;
  uint32_t unseen_chars = 0, nonprint = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t b = p[i];
    const uint8_t c = kClassOf[b];
    ++local[c];
    nonprint += c == kControlClass;
    const uint64_t bit = uint64_t{1} << (b & 63);
    if (seen[b >> 6] & bit) continue;
    seen[b >> 6] |= bit;
    const uint32_t df = ps.bytes[b];
    unseen_chars += df == 0;
    min1 = std::min(min1, df);
  }
  if (n > 0) measure_content(ps, p, n, local, min1, f);
  f[kUnseenChars] = unseen_chars;
  f[kNonprintable] = nonprint;
}

// Learns a text value's classes, bytes (once per value) and 3-grams (once per value).
void learn_text(PathState& ps, std::string_view s, const FeatureConfig& cfg) {
  const size_t n = std::min(s.size(), cfg.max_value_bytes);
  if (n == 0) return;
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

void end_enumeration(PathState& ps) {
  ps.enum_state = 2;
  ps.enum_values.clear();
  ps.enum_values.shrink_to_fit();
  ps.enum_counts.clear();
  ps.enum_counts.shrink_to_fit();
  ps.enum_mode = 0;
}

// Whether a path judged an enumeration keeps learning values outside its full table often
// enough that it is not one: more than 1 in kEnumMissShare of its learned values (and at
// least kKnownValueCount of them). A numeric path such as a body length looks like an
// enumeration over its first observations (mostly GETs of length 0) and would otherwise
// call every later POST's length unseen and maximally surprising, forever. Learned values
// outside the table are exactly the observations its counts do not hold.
bool outgrew_enumeration(const PathState& ps) {
  uint64_t held = 0;
  for (uint32_t c : ps.enum_counts) held += c;
  const uint64_t misses = ps.observations > held ? ps.observations - held : 0;
  return misses >= kKnownValueCount && misses * kEnumMissShare > ps.observations;
}

// Counts a value into the path's enumeration while it may still be one.
void learn_enumeration(PathState& ps, uint64_t h, const FeatureConfig& cfg) {
  const auto it = std::find(ps.enum_values.begin(), ps.enum_values.end(), h);
  if (it != ps.enum_values.end()) {
    uint32_t& c = ps.enum_counts[it - ps.enum_values.begin()];
    if (c != UINT32_MAX) ps.enum_mode = std::max(ps.enum_mode, ++c);
  } else if (ps.enum_values.size() < cfg.enum_max_values) {
    ps.enum_values.push_back(h);
    ps.enum_counts.push_back(1);
    ps.enum_mode = std::max<uint32_t>(ps.enum_mode, 1);
  } else if (ps.enum_state == 0 || outgrew_enumeration(ps)) {
    end_enumeration(ps);  // too many distinct values: not an enumeration
  }
  if (ps.enum_state == 0 && ps.observations >= cfg.enum_min_observations) ps.enum_state = 1;
}

}  // namespace

PathState make_path_state(std::string_view name, const FeatureConfig& cfg) {
  PathState ps;
  ps.name = name;
  ps.trigrams = CountMinSketch(cfg.trigram_sketch_width, cfg.trigram_sketch_depth);
  ps.enum_values.reserve(cfg.enum_max_values);  // memory fixed until overflow
  ps.enum_counts.reserve(cfg.enum_max_values);
  return ps;
}

uint64_t enum_hash(const Value& v) {
  char buf[9];
  buf[0] = static_cast<char>(v.kind_case());
  switch (v.kind_case()) {
    case Value::kStringValue:
    case Value::kBytesValue: {
      const std::string_view s = text_of(v);
      return stable_hash(s) ^ static_cast<uint64_t>(v.kind_case());
    }
    case Value::kIntValue: {
      const int64_t x = v.int_value();
      std::memcpy(buf + 1, &x, 8);
      break;
    }
    case Value::kDoubleValue: {
      const double x = v.double_value();
      std::memcpy(buf + 1, &x, 8);
      break;
    }
    case Value::kBoolValue: {
      const int64_t x = v.bool_value();
      std::memcpy(buf + 1, &x, 8);
      break;
    }
    default:
      std::memset(buf + 1, 0, 8);  // null, or a container beyond max_depth
  }
  return stable_hash(std::string_view(buf, 9));
}

int measure(const PathState& ps, const Value& v, uint64_t h, const FeatureConfig& cfg, double* f) {
  std::fill(f, f + kPathFeatures, 0.0);
  // The value's place in the enumeration, searched once: it tells a known value (only its
  // frequency is measured) and gives the count of one that is not.
  const int at = enum_index(ps, h);
  if (at >= 0 && ps.enum_counts[at] >= kKnownValueCount) {
    if (ps.enum_state == 1) {
      f[kEnumSurprise] = enum_surprise(ps, ps.enum_counts[at]);
    }
    return at;
  }
  if (is_textual(v)) measure_text(ps, v, cfg, f);
  if (ps.enum_state == 1) f[kEnumSurprise] = enum_surprise(ps, at < 0 ? 0.0 : ps.enum_counts[at]);
  double x;
  if (number_of(v, &x)) {
    f[kNumericDeviation] =
        clampd(ps.numbers.z(x, 1e-3 * (std::fabs(ps.numbers.mean) + 1.0)), cfg.max_deviation);
  }
  return -1;
}

double normalise(const PathState& ps, const double* f, double* z) {
  double novelty = 0;
  for (int i = 0; i < kPathFeatures; ++i) {
    const RunningStats& st = ps.feature_stats[i];
    if (kAggregateSums[i]) {
      z[i] = f[i];
      continue;
    }
    if (i >= kFirstNormalised && i <= kLastNormalised && st.n >= kMinFeatureStats) {
      // A zero feature with a non-negative mean gives 0: skip the divide.
      z[i] = f[i] == 0 && st.mean >= 0
                 ? 0
                 : std::max(0.0, (f[i] - st.mean) /
                                     (st.stddev() + std::max(0.05, 0.1 * std::fabs(st.mean))));
    } else {
      z[i] = f[i];  // already a deviation, or too little history to compare with
    }
    novelty = std::max(novelty, std::fabs(z[i]));
  }
  return novelty;
}

void combine(double* dst, const double* f) {
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

void fold(PathState& ps, const Leaf& leaf, const double* f, bool learn, const FeatureConfig& cfg) {
  const Value& v = *leaf.value;
  if (f != nullptr) {
    // Only the features normalise() compares against their own history keep statistics;
    // the first slot also counts the path's values (the learning gate reads its n).
    ps.feature_stats[0].n += 1;
    for (int i = kFirstNormalised; i <= kLastNormalised; ++i)
      ps.feature_stats[i].add_robust(f[i], kWinsor, 0.05);
  }
  if (!learn) return;
  ++ps.observations;
  if (leaf.known) {
    // known_at stays valid unless an earlier value of this record ended the enumeration.
    const int ki = ps.enum_state == 2 ? -1 : leaf.known_at;
    if (ki >= 0 && ps.enum_counts[ki] != UINT32_MAX)
      ps.enum_mode = std::max(ps.enum_mode, ++ps.enum_counts[ki]);
    if (ps.enum_state == 0 && ps.observations >= cfg.enum_min_observations) ps.enum_state = 1;
    return;
  }
  if (is_textual(v)) {
    ps.length.add_robust(static_cast<double>(length_of(v)), kWinsor, 1.0);
    learn_text(ps, text_of(v), cfg);
  }
  if (ps.enum_state != 2) learn_enumeration(ps, leaf.hash, cfg);
  double x;
  if (number_of(v, &x))
    ps.numbers.add_robust(x, kWinsor, 1e-3 * (std::fabs(ps.numbers.mean) + 1.0));
}

}  // namespace immunizer::monitor::detail
