// A Clock that stands still until a test moves it, for TTLs, grace periods and snapshot
// intervals under test control. Not thread-safe: set and read it from the test's thread (or
// the thread the code under test runs on, not both at once). Part of the testing library
// (common/testing): linked by tests, benchmarks and fuzz targets only.
#pragma once

#include <chrono>
#include <cstdint>

#include "immunizer/common/ids.hpp"

namespace immunizer::common {

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t t = 1'700'000'000'000'000'000) : t_(t) {}
  int64_t now_unix_nanos() const override { return t_; }
  void advance(std::chrono::nanoseconds d) { t_ += d.count(); }

 private:
  int64_t t_;
};

}  // namespace immunizer::common
