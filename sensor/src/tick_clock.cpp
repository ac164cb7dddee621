#ifndef IMMUNIZER_SENSOR_DISABLED
#include "tick_clock.hpp"

#include <time.h>

#include "immunizer/sensor/sensor.hpp"

namespace immunizer::sensor::detail {
namespace {
int64_t read_clock(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

TickClock& TickClock::instance() {
  static TickClock c;
  return c;
}

TickClock::TickClock() {
  base_ticks_ = ticks();
  base_steady_ = read_clock(CLOCK_MONOTONIC);
#if defined(__x86_64__) || defined(__i386__)
  // Initial rate over ~2 ms; recalibrate() refines it over a growing baseline.
  int64_t t, s;
  do {
    t = ticks();
    s = read_clock(CLOCK_MONOTONIC);
  } while (s - base_steady_ < 2'000'000);
  const double rate = static_cast<double>(s - base_steady_) / static_cast<double>(t - base_ticks_);
#else
  const double rate = 1.0;
#endif
  anchor(ticks(), read_clock(CLOCK_REALTIME), rate);
}

void TickClock::anchor(int64_t t, int64_t wall, double rate) noexcept {
  seq_.fetch_add(1, std::memory_order_acq_rel);  // odd: readers retry
  anchor_ticks_.store(t, std::memory_order_relaxed);
  anchor_wall_.store(wall, std::memory_order_relaxed);
  ns_per_tick_.store(rate, std::memory_order_relaxed);
  seq_.fetch_add(1, std::memory_order_release);
}

int64_t TickClock::wall_ns(int64_t t) const noexcept {
  for (;;) {
    const uint32_t s1 = seq_.load(std::memory_order_acquire);
    const int64_t at = anchor_ticks_.load(std::memory_order_relaxed);
    const int64_t aw = anchor_wall_.load(std::memory_order_relaxed);
    const double r = ns_per_tick_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if ((s1 & 1) == 0 && seq_.load(std::memory_order_relaxed) == s1)
      return aw + static_cast<int64_t>(static_cast<double>(t - at) * r);
  }
}

void TickClock::recalibrate() noexcept {
  std::unique_lock lk(mu_, std::try_to_lock);
  if (!lk.owns_lock()) return;
  const int64_t t = ticks();
  const int64_t s = read_clock(CLOCK_MONOTONIC);
  const int64_t w = read_clock(CLOCK_REALTIME);
  double rate = ns_per_tick();
#if defined(__x86_64__) || defined(__i386__)
  if (t > base_ticks_ && s - base_steady_ > 100'000'000)
    rate = static_cast<double>(s - base_steady_) / static_cast<double>(t - base_ticks_);
#endif
  anchor(t, w, rate);
}

}  // namespace immunizer::sensor::detail

#endif  // IMMUNIZER_SENSOR_DISABLED
