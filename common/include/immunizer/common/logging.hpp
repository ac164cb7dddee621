// Named spdlog loggers, one per component, and a throttle for hot error paths.
// Thread-safe: loggers are created once and shared.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace immunizer::common {

// Sets the default level and pattern for every logger (stderr). Throws ConfigError on a bad level.
void init_logging(const std::string& level);
// The named logger, created on first use.
std::shared_ptr<spdlog::logger> logger(const std::string& name);

// Lets at most one message through per interval and counts the ones it suppressed.
class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::milliseconds interval = std::chrono::seconds(5))
      : interval_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(interval).count()) {}
  // True when this call may log; *suppressed receives how many were dropped since the last.
  bool allow(uint64_t* suppressed);

 private:
  int64_t interval_ns_;
  std::atomic<int64_t> next_ns_{0};
  std::atomic<uint64_t> suppressed_{0};
};

}  // namespace immunizer::common
