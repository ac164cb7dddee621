#include "immunizer/plan/policy.hpp"

#include <algorithm>
#include <iterator>

#include "immunizer/common/enum_names.hpp"
#include "immunizer/v1/names.hpp"

namespace immunizer::plan {

using v1::PrincipalLevel;

namespace {
constexpr int64_t kNanosPerMilli = 1'000'000;

void read_level(const common::Config& c, const std::string& level, const char* distinct,
                LevelThresholds& t) {
  const std::string k = "plan." + level + ".";
  t.alarms_to_act = static_cast<int>(c.get_int(k + "alarms_to_act", t.alarms_to_act, 0, 1000));
  t.distinct_to_act = static_cast<int>(c.get_int(k + distinct, t.distinct_to_act, 1, 1000));
  t.window_ms = c.get_int(k + "window_ms", t.window_ms, 1000, 86'400'000);
  t.min_severity = static_cast<int>(c.get_int(k + "min_severity", t.min_severity, 1, 4));
}

bool reached(const LevelThresholds& t, Evidence::Count n) {
  return t.alarms_to_act > 0 && n.alarms >= t.alarms_to_act && n.distinct >= t.distinct_to_act;
}

// Broader levels come later: a block at a later level covers every earlier one. In the order
// of PrincipalLevel's values (session, ip, prefix, user): session 0, user 1, ip 2, prefix 3.
constexpr int kBreadth[] = {0, 2, 3, 1};
int breadth(PrincipalLevel l) {
  const auto i = static_cast<size_t>(l);
  return i < std::size(kBreadth) ? kBreadth[i] : 0;
}

// A plan for `alarm`, without actions yet. Deterministic: the same alarm read again (a replay
// after a crash) makes the same plan and action ids, which execute recognises.
v1::Plan plan_for(const v1::Alarm& alarm, int64_t now, bool shadow) {
  v1::Plan plan;
  plan.set_id(common::derived_id({"plan", alarm.id()}));
  plan.set_alarm_id(alarm.id());
  *plan.mutable_record_id() = alarm.record_id();
  *plan.mutable_principal() = alarm.principal();
  plan.set_created_unix_nanos(now);
  plan.set_alarm_raised_unix_nanos(alarm.raised_unix_nanos());
  plan.set_call_timestamp_unix_nanos(alarm.timestamp_unix_nanos());
  plan.set_shadow(shadow);
  return plan;
}

v1::Action& add_action(v1::Plan& plan, v1::ActionKind kind, const v1::PrincipalKey& on) {
  v1::Action& a = *plan.add_actions();
  a.set_id(common::derived_id({"action", plan.id(), std::to_string(plan.actions_size() - 1)}));
  a.set_kind(kind);
  a.set_target_field(on.empty() ? v1::PRINCIPAL_FIELD_UNSPECIFIED : on.field());
  a.set_target_value(on.value);
  return a;
}
}  // namespace

int Policy::acting_severity(const v1::Alarm& alarm) const {
  const int sev = static_cast<int>(alarm.severity());
  if (cfg_.load_feature_prefixes.empty() || cfg_.load_share_to_hold >= 1) return sev;
  double total = 0, load = 0;
  for (const auto& f : alarm.top_features()) {
    const double c = std::max(0.0, f.contribution());
    total += c;
    if (std::any_of(cfg_.load_feature_prefixes.begin(), cfg_.load_feature_prefixes.end(),
                    [&](const std::string& p) { return f.feature().starts_with(p); }))
      load += c;
  }
  const bool load_dominated = total > 0 && load > cfg_.load_share_to_hold * total;
  return load_dominated ? std::min(sev, static_cast<int>(v1::SEVERITY_LOW)) : sev;
}

namespace {
// In the order of Outcome's values.
constexpr std::string_view kOutcomeNames[] = {"planned",     "shadow",   "deduplicated",
                                              "allowlisted", "forgiven", "below_severity",
                                              "rate_limited"};
}  // namespace

std::string_view outcome_name(Outcome o) noexcept {
  return common::enum_name(kOutcomeNames, o, "below_severity");
}

PolicyConfig PolicyConfig::from_config(const common::Config& c) {
  PolicyConfig p;
  p.min_severity_to_act =
      static_cast<int>(c.get_int("plan.min_severity", p.min_severity_to_act, 1, 4));
  p.repeat_alarms_to_act =
      static_cast<int>(c.get_int("plan.repeat_alarms_to_act", p.repeat_alarms_to_act, 0, 1000));
  p.repeat_window_ms = c.get_int("plan.repeat_window_ms", p.repeat_window_ms, 1000, 86'400'000);
  p.repeat_min_severity =
      static_cast<int>(c.get_int("plan.repeat_min_severity", p.repeat_min_severity, 1, 4));
  p.repeat_weak_alarms_to_act = static_cast<int>(
      c.get_int("plan.repeat_weak_alarms_to_act", p.repeat_weak_alarms_to_act, 0, 100'000));
  p.load_feature_prefixes = c.get_list("plan.load_feature_prefixes", p.load_feature_prefixes);
  p.load_share_to_hold = c.get_double("plan.load_share_to_hold", p.load_share_to_hold, 0, 1);
  p.response =
      v1::action_kind_from_verb(c.get_enum("plan.response", std::string(v1::verb_of(p.response)),
                                           {"log", "abort", "block", "throttle"}));
  p.target = v1::level_from_name(c.get_enum("plan.target", std::string(v1::level_name(p.target)),
                                            {"session", "ip", "user"}))
                 .value_or(p.target);
  read_level(c, "ip", "distinct_sessions", p.ip);
  read_level(c, "prefix", "distinct_addresses", p.prefix);
  read_level(c, "user", "distinct_sessions", p.user);
  p.prefix_bits.ipv4 =
      static_cast<int>(c.get_int("plan.prefix.ipv4_bits", p.prefix_bits.ipv4, 8, 32));
  p.prefix_bits.ipv6 =
      static_cast<int>(c.get_int("plan.prefix.ipv6_bits", p.prefix_bits.ipv6, 16, 128));
  p.block_ttl_ms = c.get_int("plan.block_ttl_ms", p.block_ttl_ms, 1000, 30LL * 24 * 3600 * 1000);
  p.watch_ttl_ms =
      c.get_int("plan.watch_ttl_seconds", p.watch_ttl_ms / 1000, 0, 30LL * 24 * 3600) * 1000;
  p.throttle_rate_per_s =
      c.get_double("plan.throttle_rate_per_s", p.throttle_rate_per_s, 0.001, 1e6);
  p.throttle_burst = c.get_double("plan.throttle_burst", p.throttle_burst, 1, 1e6);
  p.escalate_severity =
      static_cast<int>(c.get_int("plan.escalate_severity", p.escalate_severity, 1, 5));
  p.allowlist = c.get_list("plan.allowlist", p.allowlist);
  p.max_plans_per_minute = static_cast<int>(
      c.get_int("plan.max_plans_per_minute", p.max_plans_per_minute, 1, 1'000'000));
  p.shadow = c.get_bool("plan.shadow", p.shadow);
  p.forgive_window_ms = c.get_int("plan.forgive_window_ms", p.forgive_window_ms, 0, 86'400'000);
  p.forgive_max_alarms =
      static_cast<int>(c.get_int("plan.forgive_max_alarms", p.forgive_max_alarms, 0, 10'000));
  return p;
}

// ---- Evidence ----

Evidence::Count Evidence::add(const std::string& key, const std::string& child, int64_t now,
                              bool strong) {
  Key& k = by_key_[key];
  k.events.push_back({now, child, strong});
  if (!child.empty()) ++k.children[child];
  if (strong) ++k.strong;
  order_.emplace_back(now, key);
  const Count n{static_cast<int>(k.events.size()), static_cast<int>(k.children.size()), k.strong};
  while (order_.size() > max_events_) pop_oldest();
  return n;
}

void Evidence::pop_oldest() {
  // order_ and every key's events are in time order: the oldest event overall is the
  // oldest of its key (unless that key was forgotten meanwhile).
  const auto it = by_key_.find(order_.front().second);
  order_.pop_front();
  if (it == by_key_.end() || it->second.events.empty()) return;
  Key& k = it->second;
  const std::string& child = k.events.front().child;
  if (k.events.front().strong) --k.strong;
  if (!child.empty())
    if (auto c = k.children.find(child); c != k.children.end() && --c->second == 0)
      k.children.erase(c);
  k.events.pop_front();
  if (k.events.empty()) by_key_.erase(it);
}

void Evidence::expire(int64_t now) {
  while (!order_.empty() && order_.front().first <= now - window_ns_) pop_oldest();
}

// ---- Policy ----

Policy::Policy(PolicyConfig cfg, const common::Clock& clock)
    : cfg_(std::move(cfg)),
      clock_(clock),
      repeats_(cfg_.repeat_window_ms, cfg_.max_tracked_principals),
      by_ip_(cfg_.ip.window_ms, cfg_.max_tracked_principals),
      by_prefix_(cfg_.prefix.window_ms, cfg_.max_tracked_principals),
      by_user_(cfg_.user.window_ms, cfg_.max_tracked_principals) {}

void Policy::expire(int64_t now) {
  std::erase_if(active_, [now](const auto& kv) { return kv.second <= now; });
  while (!forgiven_order_.empty() && (forgiven_order_.front().first <= now ||
                                      forgiven_order_.size() > cfg_.max_tracked_principals)) {
    auto it = forgiven_.find(forgiven_order_.front().second);
    if (it != forgiven_.end() && it->second.until == forgiven_order_.front().first)
      forgiven_.erase(it);
    forgiven_order_.pop_front();
  }
  while (!watching_order_.empty() && (watching_order_.front().first <= now ||
                                      watching_order_.size() > cfg_.max_tracked_principals)) {
    auto it = watching_.find(watching_order_.front().second);
    if (it != watching_.end() && it->second == watching_order_.front().first) watching_.erase(it);
    watching_order_.pop_front();
  }
  while (!recent_plans_.empty() && recent_plans_.front() <= now - 60'000'000'000LL)
    recent_plans_.pop_front();
  for (Evidence* e : {&repeats_, &by_ip_, &by_prefix_, &by_user_}) e->expire(now);
}

std::optional<Policy::Target> Policy::target_of(const v1::Alarm& alarm,
                                                const v1::PrincipalKey& primary,
                                                bool count_evidence, int64_t now) {
  const auto& p = alarm.principal();
  const int sev = acting_severity(alarm);
  // Evidence at every level the alarm has a key for; the broadest level that reached its
  // thresholds is where the attack is stopped.
  std::optional<Target> broad;
  auto aggregate = [&](PrincipalLevel level, Evidence& e, const LevelThresholds& t,
                       const std::string& child, const char* distinct) {
    if (t.alarms_to_act == 0 || !count_evidence || sev < t.min_severity) return;
    v1::PrincipalKey k = v1::key_at(p, level, cfg_.prefix_bits);
    if (k.empty()) return;
    const Evidence::Count n = e.add(k.text(), child, now);
    if (!reached(t, n) || (broad && breadth(broad->key.level) >= breadth(level))) return;
    broad = Target{std::move(k), std::string(v1::level_name(level)) + "_" +
                                     std::to_string(t.alarms_to_act) + "_alarms_from_" +
                                     std::to_string(t.distinct_to_act) + "_" + distinct + "_in_" +
                                     std::to_string(t.window_ms / 1000) + "s"};
  };
  aggregate(PrincipalLevel::kIp, by_ip_, cfg_.ip, p.session(), "sessions");
  aggregate(PrincipalLevel::kPrefix, by_prefix_, cfg_.prefix, p.ip(), "addresses");
  aggregate(PrincipalLevel::kUser, by_user_, cfg_.user, p.session().empty() ? p.ip() : p.session(),
            "sessions");
  bool repeated = false;
  if (count_evidence && cfg_.repeat_alarms_to_act > 0) {
    const Evidence::Count n =
        repeats_.add(primary.text(), "", now, sev >= cfg_.repeat_min_severity);
    repeated = n.alarms >= cfg_.repeat_alarms_to_act &&
               (n.strong > 0 ||
                (cfg_.repeat_weak_alarms_to_act > 0 && n.alarms >= cfg_.repeat_weak_alarms_to_act));
  }
  if (broad && breadth(broad->key.level) > breadth(primary.level)) return broad;
  if (sev >= cfg_.min_severity_to_act)
    return Target{primary, "severity>=" + std::to_string(cfg_.min_severity_to_act)};
  if (repeated)
    return Target{primary, std::to_string(cfg_.repeat_alarms_to_act) + "_alarms_in_" +
                               std::to_string(cfg_.repeat_window_ms / 1000) + "s"};
  return broad;
}

bool Policy::allowlisted(const v1::Principal& p, const v1::PrincipalKey& target) const {
  return std::any_of(cfg_.allowlist.begin(), cfg_.allowlist.end(), [&](const std::string& a) {
    if (a == p.session() || a == p.ip() || (!p.user().empty() && a == p.user())) return true;
    // A network is never blocked over an allowlisted address inside it.
    return target.level == PrincipalLevel::kPrefix &&
           v1::address_prefix(a, cfg_.prefix_bits.ipv4, cfg_.prefix_bits.ipv6) == target.value;
  });
}

bool Policy::covered(const v1::Principal& p, const v1::PrincipalKey& target) const {
  // A block in force on the target, or on any of the alarm's keys at a broader level.
  if (active_.count(target.text())) return true;
  for (PrincipalLevel l : v1::kPrincipalLevels) {
    if (breadth(l) <= breadth(target.level)) continue;
    const v1::PrincipalKey k = v1::key_at(p, l, cfg_.prefix_bits);
    if (!k.empty() && active_.count(k.text())) return true;
  }
  return false;
}

Decision Policy::decide(const v1::Alarm& alarm) {
  const int64_t now = clock_.now_unix_nanos();
  expire(now);
  const auto& p = alarm.principal();
  const v1::PrincipalKey primary = v1::key_or_fallback(p, cfg_.target, cfg_.prefix_bits);
  v1::Plan plan = plan_for(alarm, now, cfg_.shadow);

  if (primary.empty())
    return only_log(std::move(plan), primary, "no_principal:log", Outcome::kBelowSeverity, now);
  // A forgiven principal's alarms are no evidence (a person said they were false positives).
  auto f = forgiven_.find(primary.text());
  const bool forgiven = f != forgiven_.end() && f->second.until > now && f->second.alarms_left > 0;
  const std::optional<Target> target = target_of(alarm, primary, !forgiven, now);
  if (!target || cfg_.response == v1::ACTION_LOG)
    return only_log(std::move(plan), primary, "below_severity:log", Outcome::kBelowSeverity, now);
  if (allowlisted(p, target->key))
    return only_log(std::move(plan), target->key, "allowlist:log", Outcome::kAllowlisted, now);
  if (forgiven) {
    --f->second.alarms_left;  // spent at 0; forgotten when its window ends
    return only_log(std::move(plan), primary, "false_positive_feedback:log", Outcome::kForgiven,
                    now);
  }
  Decision d;
  if (cfg_.response == v1::ACTION_BLOCK_PRINCIPAL && covered(p, target->key)) {
    d.outcome = Outcome::kDeduplicated;  // a block for this principal is already in force
    return d;
  }
  if (static_cast<int>(recent_plans_.size()) >= cfg_.max_plans_per_minute) {
    add_action(plan, v1::ACTION_ESCALATE, target->key);
    plan.set_policy_rule("rate_limited:escalate");
    d.outcome = Outcome::kRateLimited;
  } else {
    respond(plan, alarm, *target, now);
    d.outcome = cfg_.shadow ? Outcome::kShadow : Outcome::kPlanned;
  }
  d.plan = std::move(plan);
  return d;
}

Decision Policy::only_log(v1::Plan plan, const v1::PrincipalKey& on, const char* rule,
                          Outcome outcome, int64_t now) {
  add_action(plan, v1::ACTION_LOG, on);
  if (outcome == Outcome::kBelowSeverity || outcome == Outcome::kForgiven) watch(plan, on, now);
  plan.set_policy_rule(rule);
  Decision d;
  d.outcome = outcome;
  d.plan = std::move(plan);
  return d;
}

void Policy::watch(v1::Plan& plan, const v1::PrincipalKey& on, int64_t now) {
  if (cfg_.watch_ttl_ms <= 0 || on.empty()) return;
  const std::string key = on.text();
  if (auto it = watching_.find(key); it != watching_.end() && it->second > now) return;
  const int64_t until = now + cfg_.watch_ttl_ms * kNanosPerMilli;
  watching_[key] = until;
  watching_order_.emplace_back(until, key);
  add_action(plan, v1::ACTION_WATCH_PRINCIPAL, on).set_ttl_millis(cfg_.watch_ttl_ms);
}

void Policy::respond(v1::Plan& plan, const v1::Alarm& alarm, const Target& target, int64_t now) {
  v1::Action& a = add_action(plan, cfg_.response, target.key);
  a.set_ttl_millis(cfg_.block_ttl_ms);
  if (cfg_.response == v1::ACTION_BLOCK_PRINCIPAL) {
    active_[target.key.text()] = now + cfg_.block_ttl_ms * kNanosPerMilli;
  } else if (cfg_.response == v1::ACTION_THROTTLE_PRINCIPAL) {
    a.set_rate_per_second(cfg_.throttle_rate_per_s);
    a.set_burst(cfg_.throttle_burst);
  } else {  // abort: deny this call for this principal
    a.set_call(alarm.call());
  }
  plan.set_policy_rule(target.why + ":" + std::string(v1::verb_of(cfg_.response)));
  if (static_cast<int>(alarm.severity()) >= cfg_.escalate_severity)
    add_action(plan, v1::ACTION_ESCALATE, target.key);
  recent_plans_.push_back(now);
}

void Policy::on_feedback(const v1::Feedback& f) {
  if (f.verdict() != v1::FEEDBACK_FALSE_POSITIVE) return;
  const v1::PrincipalKey k = v1::key_or_fallback(f.principal(), cfg_.target, cfg_.prefix_bits);
  if (k.empty()) return;
  const std::string key = k.text();
  const int64_t now = clock_.now_unix_nanos();
  expire(now);
  active_.erase(key);
  if (cfg_.forgive_window_ms == 0 || cfg_.forgive_max_alarms == 0) return;
  if (auto it = forgiven_.find(key);
      it != forgiven_.end() && it->second.until > now && it->second.alarms_left > 0)
    return;  // already forgiven: more feedback neither extends nor adds alarms
  const int64_t until = now + cfg_.forgive_window_ms * kNanosPerMilli;
  forgiven_[key] = Forgiven{until, cfg_.forgive_max_alarms};
  forgiven_order_.emplace_back(until, key);
}

}  // namespace immunizer::plan
