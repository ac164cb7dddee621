// Clocks and identifiers shared by the services. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace immunizer::common {

inline int64_t now_unix_nanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// 128 random bits as 32 hex characters.
std::string random_id();

// 32 hex characters (128 bits of SHA-256) determined by `parts` (each length-prefixed, so
// ("ab","c") and ("a","bc") differ). For ids that a replay after a crash must reproduce:
// an alarm's from its record id, model key and model version; a plan's from its alarm's.
std::string derived_id(std::initializer_list<std::string_view> parts);

// Injected time source, so tests control TTLs and grace periods (ManualClock, in the testing
// library: common/testing).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_unix_nanos() const = 0;
};
class SystemClock final : public Clock {
 public:
  int64_t now_unix_nanos() const override { return immunizer::common::now_unix_nanos(); }
};

}  // namespace immunizer::common
