#include "immunizer/plan/policy.hpp"

#include <algorithm>

namespace immunizer::plan {

PolicyConfig PolicyConfig::from_config(const common::Config& c) {
  PolicyConfig p;
  p.min_severity_to_act =
      static_cast<int>(c.get_int("plan.min_severity", p.min_severity_to_act, 1, 4));
  p.repeat_alarms_to_act =
      static_cast<int>(c.get_int("plan.repeat_alarms_to_act", p.repeat_alarms_to_act, 0, 1000));
  p.repeat_window_ms = c.get_int("plan.repeat_window_ms", p.repeat_window_ms, 1000, 86'400'000);
  p.response = c.get_enum("plan.response", p.response, {"log", "abort", "block", "throttle"});
  p.target = c.get_enum("plan.target", p.target, {"session", "ip", "user"});
  p.block_ttl_ms = c.get_int("plan.block_ttl_ms", p.block_ttl_ms, 1000, 30LL * 24 * 3600 * 1000);
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

std::pair<v1::PrincipalField, std::string> Policy::target_of(const v1::Principal& p) const {
  if (cfg_.target == "user" && !p.user().empty()) return {v1::PRINCIPAL_FIELD_USER, p.user()};
  if (cfg_.target == "session" && !p.session().empty())
    return {v1::PRINCIPAL_FIELD_SESSION, p.session()};
  if (!p.ip().empty()) return {v1::PRINCIPAL_FIELD_IP, p.ip()};
  if (!p.session().empty()) return {v1::PRINCIPAL_FIELD_SESSION, p.session()};
  return {v1::PRINCIPAL_FIELD_UNSPECIFIED, ""};
}

void Policy::expire(int64_t now) {
  std::erase_if(active_, [now](const auto& kv) { return kv.second <= now; });
  while (!forgiven_order_.empty() && (forgiven_order_.front().first <= now ||
                                      forgiven_order_.size() > cfg_.max_tracked_principals)) {
    auto it = forgiven_.find(forgiven_order_.front().second);
    if (it != forgiven_.end() && it->second.until == forgiven_order_.front().first)
      forgiven_.erase(it);
    forgiven_order_.pop_front();
  }
  while (!recent_plans_.empty() && recent_plans_.front() <= now - 60'000'000'000LL)
    recent_plans_.pop_front();
  const int64_t window = cfg_.repeat_window_ms * 1'000'000;
  while (!alarm_order_.empty() && (alarm_order_.front().first <= now - window ||
                                   alarm_order_.size() > cfg_.max_tracked_principals)) {
    auto it = alarm_times_.find(alarm_order_.front().second);
    if (it != alarm_times_.end()) {
      while (!it->second.empty() && it->second.front() <= now - window) it->second.pop_front();
      if (it->second.empty() || alarm_order_.size() > cfg_.max_tracked_principals)
        alarm_times_.erase(it);
    }
    alarm_order_.pop_front();
  }
}

Decision Policy::decide(const v1::Alarm& alarm) {
  const int64_t now = clock_.now_unix_nanos();
  expire(now);
  Decision d;
  const auto [field, value] = target_of(alarm.principal());
  const std::string tkey = std::to_string(field) + ":" + value;
  const auto& p = alarm.principal();
  const bool allowlisted =
      std::any_of(cfg_.allowlist.begin(), cfg_.allowlist.end(), [&](const std::string& a) {
        return a == p.session() || a == p.ip() || (!p.user().empty() && a == p.user());
      });

  v1::Plan plan;
  // Deterministic: the same alarm read again (a replay after a crash) makes the same plan
  // and action ids, which execute recognises.
  plan.set_id(common::derived_id({"plan", alarm.id()}));
  plan.set_alarm_id(alarm.id());
  *plan.mutable_record_id() = alarm.record_id();
  *plan.mutable_principal() = alarm.principal();
  plan.set_created_unix_nanos(now);
  plan.set_alarm_raised_unix_nanos(alarm.raised_unix_nanos());
  plan.set_call_timestamp_unix_nanos(alarm.timestamp_unix_nanos());
  plan.set_shadow(cfg_.shadow);
  // Explicit captures: clang 14 (the fuzz preset) cannot capture structured bindings implicitly.
  auto add = [&, &field = field, &value = value](v1::ActionKind kind) -> v1::Action& {
    v1::Action& a = *plan.add_actions();
    a.set_id(common::derived_id({"action", plan.id(), std::to_string(plan.actions_size() - 1)}));
    a.set_kind(kind);
    a.set_target_field(field);
    a.set_target_value(value);
    return a;
  };

  const int sev = static_cast<int>(alarm.severity());
  bool repeated = false;
  if (!value.empty() && cfg_.repeat_alarms_to_act > 0) {
    auto& times = alarm_times_[tkey];
    times.push_back(now);
    alarm_order_.emplace_back(now, tkey);
    repeated = static_cast<int>(times.size()) >= cfg_.repeat_alarms_to_act;
  }
  if ((sev < cfg_.min_severity_to_act && !repeated) || value.empty() || cfg_.response == "log") {
    add(v1::ACTION_LOG);
    plan.set_policy_rule(value.empty() ? "no_principal:log" : "below_severity:log");
    d.outcome = "below_severity";
    d.plan = std::move(plan);
    return d;
  }
  if (allowlisted) {
    add(v1::ACTION_LOG);
    plan.set_policy_rule("allowlist:log");
    d.outcome = "allowlisted";
    d.plan = std::move(plan);
    return d;
  }
  if (auto f = forgiven_.find(tkey);
      f != forgiven_.end() && f->second.until > now && f->second.alarms_left > 0) {
    // Bounded: this alarm uses up one of the forgiveness's alarms.
    --f->second.alarms_left;  // spent at 0; forgotten when its window ends
    add(v1::ACTION_LOG);
    plan.set_policy_rule("false_positive_feedback:log");
    d.outcome = "forgiven";
    d.plan = std::move(plan);
    return d;
  }
  if (cfg_.response == "block" && active_.count(tkey)) {
    d.outcome = "deduplicated";  // a block for this principal is already in force
    return d;
  }
  if (static_cast<int>(recent_plans_.size()) >= cfg_.max_plans_per_minute) {
    add(v1::ACTION_ESCALATE);
    plan.set_policy_rule("rate_limited:escalate");
    d.outcome = "rate_limited";
    d.plan = std::move(plan);
    return d;
  }
  const std::string why = sev >= cfg_.min_severity_to_act
                              ? "severity>=" + std::to_string(cfg_.min_severity_to_act)
                              : std::to_string(cfg_.repeat_alarms_to_act) + "_alarms_in_" +
                                    std::to_string(cfg_.repeat_window_ms / 1000) + "s";
  if (cfg_.response == "block") {
    add(v1::ACTION_BLOCK_PRINCIPAL).set_ttl_millis(cfg_.block_ttl_ms);
    plan.set_policy_rule(why + ":block");
    active_[tkey] = now + cfg_.block_ttl_ms * 1'000'000;
  } else if (cfg_.response == "throttle") {
    auto& a = add(v1::ACTION_THROTTLE_PRINCIPAL);
    a.set_ttl_millis(cfg_.block_ttl_ms);
    a.set_rate_per_second(cfg_.throttle_rate_per_s);
    a.set_burst(cfg_.throttle_burst);
    plan.set_policy_rule(why + ":throttle");
  } else {  // abort: deny this call for this principal
    auto& a = add(v1::ACTION_ABORT_CALL);
    a.set_call(alarm.call());
    a.set_ttl_millis(cfg_.block_ttl_ms);
    plan.set_policy_rule(why + ":abort");
  }
  if (sev >= cfg_.escalate_severity) add(v1::ACTION_ESCALATE);
  recent_plans_.push_back(now);
  d.outcome = cfg_.shadow ? "shadow" : "planned";
  d.plan = std::move(plan);
  return d;
}

void Policy::on_feedback(const v1::Feedback& f) {
  if (f.verdict() != v1::FEEDBACK_FALSE_POSITIVE) return;
  const auto [field, value] = target_of(f.principal());
  if (value.empty()) return;
  const std::string tkey = std::to_string(field) + ":" + value;
  const int64_t now = clock_.now_unix_nanos();
  expire(now);
  active_.erase(tkey);
  if (cfg_.forgive_window_ms == 0 || cfg_.forgive_max_alarms == 0) return;
  if (auto it = forgiven_.find(tkey);
      it != forgiven_.end() && it->second.until > now && it->second.alarms_left > 0)
    return;  // already forgiven: more feedback neither extends nor adds alarms
  const int64_t until = now + cfg_.forgive_window_ms * 1'000'000;
  forgiven_[tkey] = Forgiven{until, cfg_.forgive_max_alarms};
  forgiven_order_.emplace_back(until, tkey);
}

}  // namespace immunizer::plan
