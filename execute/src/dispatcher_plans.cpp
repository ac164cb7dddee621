#include "immunizer/execute/dispatcher.hpp"

#include <algorithm>

#include "dispatcher_internal.hpp"
#include "immunizer/plan/plan_signing.hpp"

namespace immunizer::execute {

using namespace internal;  // NOLINT(google-build-using-namespace): this component's own helpers

std::string Dispatcher::admit(const v1::Plan& plan) {
  std::string why = plan::verify(plan, plan_keys_);
  if (!why.empty()) plans_refused_.Add({{"reason", why}}).Increment();
  return why;
}

std::string Dispatcher::guard_locked(const v1::Plan& plan, v1::Action& a, std::string& note,
                                     int64_t now) {
  if (!automatic_kinds_.count(a.kind())) {
    guard_.Add({{"decision", "refused_kind"}}).Increment();
    log()->warn(
        "guard: plan {} action {}: automatic plans may not {} (execute.guard.automatic_actions); "
        "refused",
        plan.id(), a.id(), kind_label(a.kind()));
    return "guard: automatic plans may not " + kind_label(a.kind()) +
           " (execute.guard.automatic_actions)";
  }
  // The circuit breaker: a model gone wrong must not lock everyone out.
  while (!automatic_blocks_.empty() && automatic_blocks_.front() <= now - 60'000'000'000LL)
    automatic_blocks_.pop_front();
  if (breaker_open_until_ != 0 && breaker_open_until_ <= now) {
    breaker_open_until_ = 0;
    automatic_blocks_.clear();
    breaker_gauge_.Set(0);
    guard_.Add({{"decision", "breaker_closed"}}).Increment();
    log()->warn("guard: circuit breaker closed; automatic enforcement resumes");
    v1::Action e;
    e.set_id("breaker-closed-" + std::to_string(now));
    e.set_kind(v1::ACTION_ESCALATE);
    event_locked(v1::ACTION_EVENT_DISPATCHED, e.id(), e, plan.id(), plan.alarm_id(), 0, "execute",
                 "circuit breaker closed: automatic enforcement resumes");
  }
  if (breaker_open_until_ != 0) {
    guard_.Add({{"decision", "breaker_open"}}).Increment();
    return "guard: circuit breaker open (more than " +
           std::to_string(cfg_.guard_max_automatic_blocks_per_minute) +
           " automatic blocks within a minute); logged, not enforced";
  }
  const bool new_lockout = !by_target_.count(target_key(a));
  if (new_lockout) {
    if (static_cast<int64_t>(automatic_blocks_.size()) >=
        cfg_.guard_max_automatic_blocks_per_minute) {
      breaker_open_until_ = now + cfg_.guard_breaker_cooldown_ms * kNanosPerMilli;
      breaker_gauge_.Set(1);
      guard_.Add({{"decision", "breaker_tripped"}}).Increment();
      guard_.Add({{"decision", "breaker_open"}}).Increment();
      const std::string what =
          "circuit breaker opened: more than " +
          std::to_string(cfg_.guard_max_automatic_blocks_per_minute) +
          " new automatic blocks within a minute; automatic enforcement stopped for " +
          std::to_string(cfg_.guard_breaker_cooldown_ms / 1000) +
          " s (plans are still logged; manual blocks still work)";
      log()->error("ALARM: guard: {} (plan {})", what, plan.id());
      // In the audit trail as an escalation, so operators see it next to the actions.
      v1::Action e;
      e.set_id("breaker-opened-" + std::to_string(now));
      e.set_kind(v1::ACTION_ESCALATE);
      event_locked(v1::ACTION_EVENT_DISPATCHED, e.id(), e, plan.id(), plan.alarm_id(), 0, "execute",
                   what);
      count("escalate");
      return "guard: " + what;
    }
    automatic_blocks_.push_back(now);
  }
  const int64_t ttl_ms = a.ttl_millis() > 0 ? a.ttl_millis() : cfg_.default_ttl_ms;
  if (ttl_ms > cfg_.guard_automatic_max_ttl_ms) {
    a.set_ttl_millis(cfg_.guard_automatic_max_ttl_ms);
    guard_.Add({{"decision", "ttl_clamped"}}).Increment();
    note = "guard: ttl clamped from " + std::to_string(ttl_ms) + " ms to " +
           std::to_string(cfg_.guard_automatic_max_ttl_ms) +
           " ms (execute.guard.automatic_max_ttl_ms)";
  }
  return {};
}

void Dispatcher::on_plan(const v1::Plan& plan) {
  {
    std::lock_guard lk(mu_);
    if (!seen_plans_.insert(plan.id()).second) {
      duplicates_.Add({{"what", "plan"}}).Increment();
      log()->debug("plan {} read again; dropped", plan.id());
      return;
    }
    seen_plans_order_.push_back(plan.id());
    if (seen_plans_order_.size() > kRecentPlans) {
      seen_plans_.erase(seen_plans_order_.front());
      seen_plans_order_.pop_front();
    }
  }
  if (plan.shadow()) {
    for (int i = 0; i < plan.actions_size(); ++i) count("shadow");
    log()->info("plan {} is shadow: {} action(s) recorded, not enforced", plan.id(),
                plan.actions_size());
    return;
  }
  Links overflowed;
  {
    std::lock_guard lk(mu_);
    const int64_t now = clock_.now_unix_nanos();
    for (const auto& a : plan.actions()) plan_action_locked(plan, a, now, overflowed);
  }
  close_all(overflowed);
}

void Dispatcher::plan_action_locked(const v1::Plan& plan, const v1::Action& a, int64_t now,
                                    Links& overflowed) {
  if (decided_.count(a.id())) {
    // Decided already: by this run (the plan id was forgotten) or by the run before a crash,
    // whose events recall() read back although the plan's offset was never committed.
    duplicates_.Add({{"what", "action"}}).Increment();
    log()->debug("plan {} action {} already decided; dropped", plan.id(), a.id());
    return;
  }
  const int64_t call_ts = plan.call_timestamp_unix_nanos();
  switch (a.kind()) {
    case v1::ACTION_LOG:
      event_locked(v1::ACTION_EVENT_DISPATCHED, a.id(), a, plan.id(), plan.alarm_id(), call_ts, "",
                   "logged only");
      count("log");
      return;
    case v1::ACTION_ESCALATE:
      log()->warn(
          "ESCALATION: plan {} (alarm {}, rule '{}') asks for a human: principal user='{}' "
          "session='{}' ip='{}'",
          plan.id(), plan.alarm_id(), plan.policy_rule(), plan.principal().user(),
          plan.principal().session(), plan.principal().ip());
      event_locked(v1::ACTION_EVENT_DISPATCHED, a.id(), a, plan.id(), plan.alarm_id(), call_ts, "",
                   "escalated to operators");
      count("escalate");
      return;
    default:
      enforce_plan_action_locked(plan, a, now, overflowed);
  }
}

void Dispatcher::enforce_plan_action_locked(const v1::Plan& plan, const v1::Action& a, int64_t now,
                                            Links& overflowed) {
  const int64_t call_ts = plan.call_timestamp_unix_nanos();
  auto reject = [&](const std::string& why) {
    event_locked(v1::ACTION_EVENT_REJECTED, a.id(), a, plan.id(), plan.alarm_id(), call_ts,
                 "execute", why);
    count("reject");
  };
  if (!enforceable(a.kind()))
    return reject("unknown action kind " + std::to_string(static_cast<int>(a.kind())));
  if (std::string why = invalid_reason(a); !why.empty()) {
    log()->warn("plan {} action {}: not enforceable: {}", plan.id(), a.id(), why);
    return reject(why);
  }
  const int64_t ttl_ms =
      a.ttl_millis() > 0 ? std::min(a.ttl_millis(), cfg_.max_ttl_ms) : cfg_.default_ttl_ms;
  if (plan.created_unix_nanos() > 0 && plan.created_unix_nanos() + ttl_ms * kNanosPerMilli <= now) {
    // A plan read long after it was made (a new consumer group from the start of the topic).
    log()->debug("plan {} action {}: TTL already over, not dispatched", plan.id(), a.id());
    count("stale");
    return;
  }
  if (alias_.count(a.id())) {  // the same action again (a plan read twice): already in force
    duplicates_.Add({{"what", "action"}}).Increment();
    return;
  }
  if (a.kind() == v1::ACTION_WATCH_PRINCIPAL) {
    // Denies nothing (sensors record the principal's every call): signed and sent like any
    // directive, outside the guard, whose limits are about lockouts.
    enforce_locked(a, plan.id(), plan.alarm_id(), call_ts, "watch: record every call", overflowed);
    return;
  }
  v1::Action guarded = a;
  std::string note;
  if (std::string why = guard_locked(plan, guarded, note, now); !why.empty()) return reject(why);
  enforce_locked(guarded, plan.id(), plan.alarm_id(), call_ts, note, overflowed);
}

bool Dispatcher::remember_decided_locked(const std::string& action_id) {
  if (action_id.empty() || !decided_.insert(action_id).second) return false;
  decided_order_.push_back(action_id);
  if (decided_order_.size() > kRecentDecisions) {
    decided_.erase(decided_order_.front());
    decided_order_.pop_front();
  }
  return true;
}

size_t Dispatcher::recall(const std::vector<v1::ActionEvent>& events,
                          int64_t complete_since_unix_nanos) {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const auto& e : events)
    if (is_decision(e.type(), e.effector()) && remember_decided_locked(e.action_id())) ++n;
  // In force (its state acknowledged) but not dispatched on the topic, although the read covers
  // the time it was dispatched: the process died between its state and its event.
  size_t rewritten = 0;
  for (const auto& [primary, a] : active_) {
    const std::string& last = a.aliases.back();  // the action of the current directive
    if (decided_.count(last) ||
        a.directive.issued_unix_nanos() - kRecallMarginNanos < complete_since_unix_nanos)
      continue;
    v1::Action action = a.directive.action();
    action.set_id(last);
    event_locked(v1::ACTION_EVENT_DISPATCHED, last, action, a.directive.plan_id(), a.alarm_id, 0,
                 "", "dispatched before a restart; its event was not written then");
    ++rewritten;
  }
  log()->info(
      "recalled {} action decision(s) from {} recent action event(s); {} dispatched event(s) "
      "written again for actions in force",
      n, events.size(), rewritten);
  return n;
}

}  // namespace immunizer::execute
