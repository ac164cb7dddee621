#include "principals.hpp"

#include <algorithm>
#include <cmath>

#include "immunizer/monitor/sketch.hpp"
#include "path_stats.hpp"

namespace immunizer::monitor::detail {
namespace {
constexpr size_t kWays = 4;

// 0 when the record names no principal; user, session and IP keys never collide.
uint64_t principal_hash(const immunizer::v1::Principal& p) {
  uint64_t h;
  if (!p.user().empty())
    h = stable_hash(p.user()) ^ 0x1;
  else if (!p.session().empty())
    h = stable_hash(p.session()) ^ 0x2;
  else if (!p.ip().empty())
    h = stable_hash(p.ip()) ^ 0x3;
  else
    return 0;
  return h == 0 ? 1 : h;
}
}  // namespace

PrincipalFeatures PrincipalTable::observe(const immunizer::v1::CallRecord& r,
                                          double half_life_seconds, double max_deviation) {
  PrincipalFeatures out;
  const uint64_t h = principal_hash(r.principal());
  if (h == 0) return out;
  const int64_t now = r.timestamp_unix_nanos();
  if (now <= 0) return out;
  // slots_ is a power of two: h & (buckets - 1) is h % buckets without a division.
  const size_t buckets = slots_.size() / kWays;
  PrincipalSlot* set = &slots_[(h & (buckets - 1)) * kWays];
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
    out.is_new = 1;
    out.recent_calls = 1;
    return out;
  }
  const double dt = std::max(0.0, static_cast<double>(now - slot->last_ns) * 1e-9);
  const double decay = std::exp2(-dt / half_life_seconds);
  const double calls = slot->damped_calls * decay + 1.0;
  out.recent_calls = calls;
  const double liv = std::log(std::max(dt, 1e-6));
  if (slot->iv_n >= 2) {
    out.interval_deviation =
        clampd((liv - slot->iv_mean) / (std::sqrt(slot->iv_var) + 0.1), max_deviation);
  }
  // Damped incremental mean/variance of the log interval (older intervals fade).
  slot->iv_n = slot->iv_n * decay + 1.0;
  const double a = 1.0 / slot->iv_n;
  const double d = liv - slot->iv_mean;
  slot->iv_mean += a * d;
  slot->iv_var = (1.0 - a) * (slot->iv_var + a * d * d);
  slot->damped_calls = calls;
  slot->last_ns = std::max(slot->last_ns, now);
  return out;
}

}  // namespace immunizer::monitor::detail
