// The plan stage's policy engine: turns alarms into response plans (log, abort the call,
// block the principal for a TTL, escalate) with deduplication, an allowlist, a rate limit
// and shadow mode. Pure logic with an injected clock; not thread-safe (one owner thread).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "immunizer/common/config.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::plan {

struct PolicyConfig {
  // Alarms below this severity are only logged (1 low .. 4 critical).
  int min_severity_to_act = 3;
  // Below that severity, act anyway when one principal raises this many alarms within
  // repeat_window_ms (evidence adds up: an attacker probing, not one odd request). 0: never.
  int repeat_alarms_to_act = 3;
  int64_t repeat_window_ms = 60'000;
  // Principals whose alarm history is kept (oldest forgotten first).
  size_t max_tracked_principals = 100'000;
  // What the response is for alarms at or above min_severity_to_act.
  std::string response = "block";  // log | abort | block | throttle
  // Which principal field a block or throttle targets; falls back to ip when empty.
  std::string target = "session";  // session | ip | user
  int64_t block_ttl_ms = 300'000;
  // Throttle response: allowed rate and burst per principal.
  double throttle_rate_per_s = 1.0;
  double throttle_burst = 5.0;
  // Severity from which a human is paged (an ESCALATE action is added).
  int escalate_severity = 4;
  // Principals (session ids, user names or ip addresses) never blocked.
  std::vector<std::string> allowlist;
  // At most this many enforcing plans per minute; beyond it, plans escalate instead.
  int max_plans_per_minute = 600;
  // Decide and publish plans marked shadow: execute records them, effectors never see them.
  bool shadow = false;
  // A false-positive feedback forgives the alarm's principal (only logs its alarms) for at
  // most this long and for at most this many of its alarms, whichever ends first; further
  // feedback for it while forgiven neither extends the window nor adds alarms.
  int64_t forgive_window_ms = 600'000;
  int forgive_max_alarms = 10;

  static PolicyConfig from_config(const common::Config& c);
};

struct Decision {
  std::optional<v1::Plan> plan;  // empty: nothing to publish
  std::string outcome;  // "planned", "deduplicated", "allowlisted", "forgiven", "below_severity",
                        // "rate_limited", "shadow"
};

class Policy {
 public:
  Policy(PolicyConfig cfg, const common::Clock& clock) : cfg_(std::move(cfg)), clock_(clock) {}
  Decision decide(const v1::Alarm& alarm);
  // An analyst said an alarm was a false positive: only log that principal's alarms for a
  // bounded window and number of alarms (forgive_window_ms, forgive_max_alarms).
  void on_feedback(const v1::Feedback& f);
  size_t active_blocks() const { return active_.size(); }

 private:
  std::pair<v1::PrincipalField, std::string> target_of(const v1::Principal& p) const;
  void expire(int64_t now);
  PolicyConfig cfg_;
  const common::Clock& clock_;
  std::unordered_map<std::string, int64_t> active_;  // target -> until (unix ns)
  struct Forgiven {
    int64_t until = 0;  // unix ns
    int alarms_left = 0;
  };
  std::unordered_map<std::string, Forgiven> forgiven_;  // target -> forgiveness (false positives)
  std::deque<std::pair<int64_t, std::string>>
      forgiven_order_;                // (until, target), for bounded forgetting
  std::deque<int64_t> recent_plans_;  // times of enforcing plans, last minute
  std::unordered_map<std::string, std::deque<int64_t>>
      alarm_times_;                                          // target -> recent alarm times
  std::deque<std::pair<int64_t, std::string>> alarm_order_;  // for bounded forgetting
};

}  // namespace immunizer::plan
