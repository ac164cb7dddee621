// Principal behaviour of the feature extractor: a fixed-size, 4-way set-associative table of
// the principals (user, else session, else IP) calling one model, with their damped call
// counts and log-interval statistics, and the features a call gets from it.
// Private to immunizer_features. Not thread-safe: a table belongs to one model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "immunizer/common/byte_codec.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::monitor::detail {

struct PrincipalSlot {
  uint64_t hash = 0;  // 0 = empty
  int64_t last_ns = 0;
  double damped_calls = 0;
  double iv_n = 0, iv_mean = 0, iv_var = 0;  // damped stats of log inter-call interval
};

// What one call tells about its principal (all 0 for a call without principal or time).
struct PrincipalFeatures {
  double is_new = 0;              // first call of the principal (or evicted since)
  double recent_calls = 0;        // damped count of its calls, this one included
  double interval_deviation = 0;  // log interval since its last call, in damped sd
};

class PrincipalTable {
 public:
  // `slots` is a power of two of at least 4 (sanitize() makes it so).
  explicit PrincipalTable(size_t slots) : slots_(slots, PrincipalSlot{}) {}

  // Looks the record's principal up (evicting the least recently seen of its set when it is
  // new), returns its features and learns the call.
  PrincipalFeatures observe(const immunizer::v1::CallRecord& r, double half_life_seconds,
                            double max_deviation);

  size_t slots() const { return slots_.size(); }
  size_t memory_bytes() const { return slots_.capacity() * sizeof(PrincipalSlot); }
  void write(common::ByteWriter& w) const;  // snapshot.cpp
  void read(common::ByteReader& r);

 private:
  std::vector<PrincipalSlot> slots_;
};

}  // namespace immunizer::monitor::detail
