// The plan stage's policy engine: turns alarms into response plans (log, abort the call,
// block the principal for a TTL, escalate) with deduplication, an allowlist, a rate limit
// and shadow mode. Evidence adds up at several principal levels at once (session, address,
// the address's network, user), each with its own thresholds, and a block is placed at the
// broadest level whose evidence says the attack spans it: an attacker rotating session
// cookies from one address gets the address blocked, one rotating addresses within a /24
// the network. Pure logic with an injected clock; not thread-safe (one owner thread).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "immunizer/common/config.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/v1/principal.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::plan {

// Thresholds of one aggregate level (address, network, user): its alarms within the window
// act when there are at least `alarms_to_act` of them from at least `distinct_to_act`
// distinct narrower principals (sessions for an address or a user, addresses for a network).
// Only alarms of at least `min_severity` count as evidence at the level: the broader the
// block, the more bystanders it hits, and low alarms (tail probability just under
// analyze.risk) are what normal traffic raises at the false-positive budget, so a busy
// network collects them in proportion to its traffic, not to malice.
struct LevelThresholds {
  int alarms_to_act = 0;  // 0: this level never acts
  int distinct_to_act = 1;
  int64_t window_ms = 60'000;
  int min_severity = 1;  // 1 low .. 4 critical
};

struct PolicyConfig {
  // The primary target: alarms at or above min_severity_to_act act on it at once.
  // Alarms below this severity are only logged (1 low .. 4 critical).
  int min_severity_to_act = 3;
  // Below that severity, act anyway when one principal raises this many alarms within
  // repeat_window_ms (evidence adds up: an attacker probing, not one odd request). 0: never.
  int repeat_alarms_to_act = 3;
  int64_t repeat_window_ms = 60'000;
  // ... and only when at least one of those alarms is of at least this severity: low alarms
  // alone (tail probability just under analyze.risk) are what a long normal session raises at
  // the false-positive budget, in proportion to its traffic (1: any three alarms act).
  int repeat_min_severity = 2;
  // Weaker alarms alone act once there are this many within the window (0: never): an
  // attacker whose every request raises a low alarm is not a normal session's odd few.
  int repeat_weak_alarms_to_act = 10;
  // Features that measure the server rather than the request (its response time rises for
  // every visitor when the app is saturated). A high alarm whose explanation owes more than
  // load_share_to_hold of its contributions to features with these prefixes does not act on
  // its own: it counts as a low alarm (the repeat and level rules still see it).
  std::vector<std::string> load_feature_prefixes{"outcome:duration"};
  double load_share_to_hold = 0.5;
  // Principals whose alarm history is kept (oldest forgotten first), per level.
  size_t max_tracked_principals = 100'000;
  // What the response is for alarms that act: ACTION_LOG, ACTION_ABORT_CALL,
  // ACTION_BLOCK_PRINCIPAL or ACTION_THROTTLE_PRINCIPAL (configured by verb: log | abort |
  // block | throttle).
  v1::ActionKind response = v1::ACTION_BLOCK_PRINCIPAL;
  // The primary target's level (session, ip or user); when the alarm has no such field,
  // the first of session, ip, user it has (v1::key_or_fallback).
  v1::PrincipalLevel target = v1::PrincipalLevel::kSession;
  // Aggregate levels, each acting on its own key.
  LevelThresholds ip{5, 3, 60'000};          // distinct: sessions
  LevelThresholds prefix{10, 4, 60'000, 2};  // distinct: addresses; medium and above
  LevelThresholds user{5, 2, 60'000};        // distinct: sessions (else addresses)
  v1::PrefixBits prefix_bits;                // the network of an address: /24, /64
  int64_t block_ttl_ms = 300'000;
  // A principal's first alarm that does not act on it (below severity, forgiven) adds an
  // ACTION_WATCH_PRINCIPAL for this long: its sensors record every one of its calls whatever
  // their sampling, so that what follows is seen. Not again while the watch lasts. 0: never.
  int64_t watch_ttl_ms = 300'000;
  // Throttle response: allowed rate and burst per principal.
  double throttle_rate_per_s = 1.0;
  double throttle_burst = 5.0;
  // Severity from which a human is paged (an ESCALATE action is added).
  int escalate_severity = 4;
  // Principals (session ids, user names or ip addresses) never blocked, nor any network
  // that contains an allowlisted address.
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

// What the policy did with an alarm (the immunizer_plans_total outcome).
enum class Outcome : uint8_t {
  kPlanned,        // an enforcing plan
  kShadow,         // an enforcing plan, in shadow mode
  kDeduplicated,   // a block already in force covers it: nothing published
  kAllowlisted,    // logged only
  kForgiven,       // logged only (false-positive feedback)
  kBelowSeverity,  // logged only (also: no principal, or response log)
  kRateLimited,    // escalated instead of enforced
};
// "planned", "shadow", "deduplicated", "allowlisted", "forgiven", "below_severity",
// "rate_limited" (metric label values; stable).
std::string_view outcome_name(Outcome o) noexcept;

struct Decision {
  std::optional<v1::Plan> plan;  // empty: nothing to publish
  Outcome outcome = Outcome::kBelowSeverity;
  // Whether the plan enforces something (planned or shadow).
  bool enforcing() const { return outcome == Outcome::kPlanned || outcome == Outcome::kShadow; }
};

// Alarms per principal key within a sliding window, with the distinct narrower principals
// they came from. Bounded: at most max_events alarms are remembered (oldest forgotten).
class Evidence {
 public:
  struct Count {
    int alarms = 0;
    int distinct = 0;
    int strong = 0;  // of the alarms, those added as strong
  };
  Evidence(int64_t window_ms, size_t max_events)
      : window_ns_(window_ms * 1'000'000), max_events_(max_events) {}
  // Records an alarm of `key` from `child` ("" counts no distinct principal) at `now`;
  // `strong`: it counts in Count::strong too.
  Count add(const std::string& key, const std::string& child, int64_t now, bool strong = false);
  void expire(int64_t now);
  size_t keys() const { return by_key_.size(); }

 private:
  struct Event {
    int64_t at;
    std::string child;
    bool strong;
  };
  struct Key {
    std::deque<Event> events;                       // oldest first
    std::unordered_map<std::string, int> children;  // child -> alarms in the window
    int strong = 0;                                 // strong events in the window
  };
  void pop_oldest();
  int64_t window_ns_;
  size_t max_events_;
  std::unordered_map<std::string, Key> by_key_;
  std::deque<std::pair<int64_t, std::string>> order_;  // (time, key) of every event
};

class Policy {
 public:
  Policy(PolicyConfig cfg, const common::Clock& clock);
  Decision decide(const v1::Alarm& alarm);
  // An analyst said an alarm was a false positive: only log that principal's alarms for a
  // bounded window and number of alarms (forgive_window_ms, forgive_max_alarms).
  void on_feedback(const v1::Feedback& f);

 private:
  // Where an acting alarm's response goes, and why.
  struct Target {
    v1::PrincipalKey key;
    std::string why;  // the policy_rule's reason
  };
  std::optional<Target> target_of(const v1::Alarm& alarm, const v1::PrincipalKey& primary,
                                  bool count_evidence, int64_t now);
  // The alarm's severity as far as acting goes: a load-dominated explanation counts as low.
  int acting_severity(const v1::Alarm& alarm) const;
  bool allowlisted(const v1::Principal& p, const v1::PrincipalKey& target) const;
  bool covered(const v1::Principal& p, const v1::PrincipalKey& target) const;
  // Ends `plan` with a log action on `on` (and a watch, unless allowlisted).
  Decision only_log(v1::Plan plan, const v1::PrincipalKey& on, const char* rule, Outcome outcome,
                    int64_t now);
  // The principal's first alarm (no watch in force): watch it, so that its next calls are all
  // recorded. After the plan's other actions.
  void watch(v1::Plan& plan, const v1::PrincipalKey& on, int64_t now);
  // The configured response on the target, its rule and, when severe, an escalation.
  void respond(v1::Plan& plan, const v1::Alarm& alarm, const Target& target, int64_t now);
  void expire(int64_t now);
  PolicyConfig cfg_;
  const common::Clock& clock_;
  std::unordered_map<std::string, int64_t> active_;  // block key text -> until (unix ns)
  struct Forgiven {
    int64_t until = 0;  // unix ns
    int alarms_left = 0;
  };
  std::unordered_map<std::string, Forgiven> forgiven_;  // key text -> forgiveness
  std::deque<std::pair<int64_t, std::string>>
      forgiven_order_;                // (until, key), for bounded forgetting
  std::deque<int64_t> recent_plans_;  // times of enforcing plans, last minute
  // Watches in force: key text -> until (unix ns), with their order for bounded forgetting.
  std::unordered_map<std::string, int64_t> watching_;
  std::deque<std::pair<int64_t, std::string>> watching_order_;
  Evidence repeats_;  // the primary target's alarms
  Evidence by_ip_, by_prefix_, by_user_;
};

}  // namespace immunizer::plan
