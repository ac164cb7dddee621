#include "immunizer/execute/dispatcher.hpp"

#include <algorithm>

#include "dispatcher_internal.hpp"
#include "immunizer/common/ids.hpp"

namespace immunizer::execute {

using namespace internal;  // NOLINT(google-build-using-namespace): this component's own helpers

std::string Dispatcher::extend_locked(const std::string& primary, const v1::Action& action,
                                      v1::Directive& d, int64_t expires, const std::string& note,
                                      Links& overflowed) {
  // Same target already in force: supersede its directive with one that keeps the primary
  // action id (so the effector replaces the rule in place, without a gap) and runs to the later
  // of both expiries.
  const int64_t now = d.issued_unix_nanos();
  Active& a = active_.at(primary);
  const int64_t until = std::max(a.directive.expires_unix_nanos(), expires);
  v1::Action merged = a.directive.action();
  merged.set_ttl_millis((until - now + kNanosPerMilli - 1) / kNanosPerMilli);
  if (action.kind() == v1::ACTION_THROTTLE_PRINCIPAL) {
    merged.set_rate_per_second(action.rate_per_second());
    merged.set_burst(action.burst());
  }
  *d.mutable_action() = merged;
  d.set_expires_unix_nanos(until);
  sign_and_send_locked(d, overflowed);
  a.directive = d;
  a.acked_by.clear();
  if (a.aliases.size() < kMaxAliases) {
    a.aliases.push_back(action.id());
    alias_[action.id()] = primary;
  }
  persist_locked(primary, &a);
  log()->info("{} {} extended to {} s from now by action {} (plan '{}')", kind_label(action.kind()),
              target_text(action), (until - now) / 1'000'000'000, action.id(), d.plan_id());
  return (note.empty() ? "" : note + "; ") + "extends active action " + primary;
}

std::string Dispatcher::enforce_locked(const v1::Action& requested, const std::string& plan_id,
                                       const std::string& alarm_id, int64_t call_ts,
                                       const std::string& note, Links& overflowed) {
  const int64_t now = clock_.now_unix_nanos();
  v1::Action action = requested;
  if (action.id().empty()) action.set_id(common::random_id());
  int64_t ttl_ms = action.ttl_millis() > 0 ? action.ttl_millis() : cfg_.default_ttl_ms;
  ttl_ms = std::min(ttl_ms, cfg_.max_ttl_ms);
  action.set_ttl_millis(ttl_ms);
  const int64_t expires = now + ttl_ms * kNanosPerMilli;

  if (alias_.count(action.id())) {
    // The same action again (a plan read twice after a rebalance): already in force.
    log()->debug("action {} already in force; ignoring the repeat", action.id());
    return action.id();
  }

  v1::Directive d;
  d.set_id(common::random_id());
  d.set_issued_unix_nanos(now);
  d.set_plan_id(plan_id);
  const std::string key = target_key(action);
  std::string reason = note;
  if (auto it = by_target_.find(key); it != by_target_.end()) {
    reason = extend_locked(it->second, action, d, expires, note, overflowed);
  } else {
    *d.mutable_action() = action;
    d.set_expires_unix_nanos(expires);
    sign_and_send_locked(d, overflowed);
    Active a;
    a.directive = d;
    a.aliases.push_back(action.id());
    a.alarm_id = alarm_id;
    persist_locked(action.id(), &a);
    active_.emplace(action.id(), std::move(a));
    by_target_[key] = action.id();
    alias_[action.id()] = action.id();
    log()->info("{} {} for {} ms: action {} (plan '{}') sent to {} effector(s)",
                kind_label(action.kind()), target_text(action), ttl_ms, action.id(), plan_id,
                sessions_.size());
  }
  remember_locked(d, Sent{action.id(), action, plan_id, alarm_id, call_ts, false, {}});
  event_locked(v1::ACTION_EVENT_DISPATCHED, action.id(), action, plan_id, alarm_id, call_ts, "",
               reason);
  count(kind_label(action.kind()));
  update_gauges_locked();
  return action.id();
}

std::string Dispatcher::block(const v1::BlockRequest& req) {
  v1::Action a;
  a.set_id(common::random_id());
  const bool has_principal = req.field() != v1::PRINCIPAL_FIELD_UNSPECIFIED || !req.value().empty();
  if (!has_principal && req.call().empty())
    throw InvalidRequest("give a principal (field and value) or a call");
  if (!has_principal) {
    a.set_kind(v1::ACTION_DISABLE_CALL);
  } else {
    a.set_kind(req.call().empty() ? v1::ACTION_BLOCK_PRINCIPAL : v1::ACTION_ABORT_CALL);
    a.set_target_field(req.field());
    a.set_target_value(req.value());
  }
  a.set_call(req.call());
  if (req.ttl_millis() < 0) throw InvalidRequest("ttl_millis must not be negative");
  a.set_ttl_millis(req.ttl_millis());
  if (std::string why = invalid_reason(a); !why.empty()) throw InvalidRequest(why);
  if (req.ttl_millis() > cfg_.max_ttl_ms) {
    // Refused, not clamped: the operator asked for something else than execute would do,
    // and is told so at once (automatic plans, which nobody can ask, are clamped instead).
    const std::string why = "ttl_millis " + std::to_string(req.ttl_millis()) +
                            " exceeds execute.max_ttl_ms (" + std::to_string(cfg_.max_ttl_ms) +
                            " ms, " + std::to_string(cfg_.max_ttl_ms / 3'600'000) + " h)";
    guard_.Add({{"decision", "manual_ttl_refused"}}).Increment();
    count("reject");
    log()->warn("manual block of {} refused: {} (reason: {})", target_text(a), why,
                req.reason().substr(0, 200));
    std::lock_guard lk(mu_);
    event_locked(v1::ACTION_EVENT_REJECTED, a.id(), a, "", "", 0, "execute",
                 "manual block refused: " + why +
                     (req.reason().empty() ? "" : " (" + req.reason().substr(0, 500) + ")"));
    throw InvalidRequest(why);
  }
  Links overflowed;
  std::string id;
  {
    std::lock_guard lk(mu_);
    id = enforce_locked(a, "", "", 0, "manual" + (req.reason().empty() ? "" : ": " + req.reason()),
                        overflowed);
  }
  close_all(overflowed);
  // Acknowledged only once durable: a restart right after the answer keeps the block.
  if (!flush_state())
    throw std::runtime_error("block " + id +
                             " is in force but its state was not persisted by Kafka in time");
  return id;
}

bool Dispatcher::unblock(const std::string& action_id) {
  Links overflowed;
  {
    std::lock_guard lk(mu_);
    const auto al = alias_.find(action_id);
    if (al == alias_.end()) return false;
    const std::string primary = al->second;
    auto it = active_.find(primary);
    if (it == active_.end()) return false;
    Active a = std::move(it->second);
    active_.erase(it);
    by_target_.erase(target_key(a.directive.action()));
    for (const auto& id : a.aliases) alias_.erase(id);

    const int64_t now = clock_.now_unix_nanos();
    v1::Directive d;
    d.set_id(common::random_id());
    *d.mutable_action() = a.directive.action();
    d.set_issued_unix_nanos(now);
    d.set_expires_unix_nanos(a.directive.expires_unix_nanos());
    d.set_revoke(true);
    d.set_plan_id(a.directive.plan_id());
    sign_and_send_locked(d, overflowed);
    remember_locked(d, Sent{primary, d.action(), d.plan_id(), a.alarm_id, 0, true, {}});
    for (const auto& id : a.aliases)
      event_locked(
          v1::ACTION_EVENT_REVOKED, id, a.directive.action(), a.directive.plan_id(), a.alarm_id, 0,
          "",
          id == action_id ? "revoked by operator" : "revoked by operator (via " + action_id + ")");
    count("revoke");
    persist_locked(primary, nullptr);
    update_gauges_locked();
    log()->info("revoked action {} ({} {})", primary, kind_label(d.action().kind()),
                target_text(d.action()));
  }
  close_all(overflowed);
  if (!flush_state())
    throw std::runtime_error("unblock of " + action_id +
                             " is done but its state was not persisted by Kafka in time");
  return true;
}

}  // namespace immunizer::execute
