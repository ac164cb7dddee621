// Process-wide conversion of CPU ticks (TSC on x86-64, detail::ticks()) to nanoseconds and to
// wall-clock time. Reading the TSC costs a fraction of clock_gettime on virtual machines, and
// a call record needs two readings. Writers (each sensor's producer thread, about once a
// second) re-anchor under a mutex; readers use a seqlock and never block.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

namespace immunizer::sensor::detail {

class TickClock {
 public:
  static TickClock& instance();
  double ns_per_tick() const noexcept { return ns_per_tick_.load(std::memory_order_relaxed); }
  int64_t to_ns(int64_t ticks) const noexcept {
    return static_cast<int64_t>(static_cast<double>(ticks) * ns_per_tick());
  }
  int64_t wall_ns(int64_t ticks) const noexcept;  // unix time of a tick reading
  void recalibrate() noexcept;                    // refines the rate, re-anchors wall time

 private:
  TickClock();
  void anchor(int64_t ticks, int64_t wall, double rate) noexcept;
  std::mutex mu_;
  int64_t base_ticks_ = 0, base_steady_ = 0;  // long baseline for the rate (writers only)
  std::atomic<uint32_t> seq_{0};
  std::atomic<int64_t> anchor_ticks_{0}, anchor_wall_{0};
  std::atomic<double> ns_per_tick_{1.0};
};

}  // namespace immunizer::sensor::detail
