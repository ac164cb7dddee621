#include "immunizer/execute/dispatcher.hpp"

#include <algorithm>

#include "immunizer/common/logging.hpp"
#include "immunizer/common/snapshots.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/plan/plan_signing.hpp"
#include "immunizer/v1/names.hpp"
#include "immunizer/v1/principal.hpp"

namespace immunizer::execute {
namespace {

constexpr int64_t kNanosPerMilli = 1'000'000;
// How long after its expiry an issued directive is still recognised in a late ack.
constexpr int64_t kAckGraceNanos = 120LL * 1'000'000'000;
// Action ids remembered per active entry (each extension adds one).
constexpr size_t kMaxAliases = 256;
// Plan ids remembered to drop a plan read again (oldest forgotten first).
constexpr size_t kRecentPlans = 100'000;

std::shared_ptr<spdlog::logger> log() { return common::logger("execute"); }

// "session=abc", "ip=1.2.3.4", "prefix=1.2.3.0/24", "" for call-wide actions; for log lines.
std::string target_text(const v1::Action& a) {
  const std::string_view f = v1::name_of(a.target_field());
  std::string s = f.empty() ? "" : std::string(f) + "=" + a.target_value();
  if (!a.call().empty()) s += (s.empty() ? "call '" : " call '") + a.call() + "'";
  return s;
}

bool needs_principal(v1::ActionKind k) {
  return k == v1::ACTION_BLOCK_PRINCIPAL || k == v1::ACTION_ABORT_CALL ||
         k == v1::ACTION_THROTTLE_PRINCIPAL;
}
bool enforceable(v1::ActionKind k) { return needs_principal(k) || k == v1::ACTION_DISABLE_CALL; }

// Empty when the action can be enforced by an effector, else why not.
std::string invalid_reason(const v1::Action& a) {
  if (needs_principal(a.kind())) {
    if (v1::name_of(a.target_field()).empty()) return "no target field";
    if (a.target_value().empty()) return "no target value";
    if (a.target_field() == v1::PRINCIPAL_FIELD_IP_PREFIX && !v1::parse_network(a.target_value()))
      return "target value is not a network (canonical CIDR, e.g. 198.51.100.0/24)";
  }
  if ((a.kind() == v1::ACTION_ABORT_CALL || a.kind() == v1::ACTION_DISABLE_CALL) &&
      a.call().empty())
    return kind_label(a.kind()) + " needs a call";
  if (a.kind() == v1::ACTION_THROTTLE_PRINCIPAL && (a.rate_per_second() < 0 || a.burst() < 0))
    return "negative throttle rate or burst";
  return {};
}

}  // namespace

std::string kind_label(v1::ActionKind k) { return std::string(v1::verb_of(k)); }

std::string target_key(const v1::Action& a) {
  std::string k = std::to_string(static_cast<int>(a.kind()));
  k += '|';
  if (a.kind() != v1::ACTION_DISABLE_CALL) {
    k += std::to_string(static_cast<int>(a.target_field()));
    k += '|';
    k += std::to_string(a.target_value().size());
    k += ':';
    k += a.target_value();
  }
  k += '|';
  k += a.call();
  return k;
}

Dispatcher::Dispatcher(ExecuteConfig cfg, common::Topics topics, const common::Clock& clock,
                       prometheus::Registry& registry)
    : cfg_(std::move(cfg)),
      topics_(std::move(topics)),
      clock_(clock),
      actions_(prometheus::BuildCounter()
                   .Name("immunizer_actions_total")
                   .Help("Actions handled by execute, by type (block, abort, throttle, disable, "
                         "log, escalate, "
                         "expire, revoke, reject, shadow, stale)")
                   .Register(registry)),
      latency_(
          prometheus::BuildHistogram()
              .Name("immunizer_mitigation_latency_seconds")
              .Help("From the offending call to an effector acknowledging the directive as applied")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                               0.5, 1, 2.5, 5, 10, 30, 60, 120})),
      connected_(prometheus::BuildGauge()
                     .Name("immunizer_execute_effectors_connected")
                     .Help("Effector streams currently connected (after hello)")
                     .Register(registry)
                     .Add({})),
      active_gauge_(prometheus::BuildGauge()
                        .Name("immunizer_execute_active_directives")
                        .Help("Directives in force (not expired, not revoked)")
                        .Register(registry)
                        .Add({})),
      acks_(prometheus::BuildCounter()
                .Name("immunizer_execute_acks_total")
                .Help("Directive acknowledgements from effectors, by result (applied, rejected, "
                      "unknown)")
                .Register(registry)),
      events_dropped_(prometheus::BuildCounter()
                          .Name("immunizer_execute_events_dropped_total")
                          .Help("Action events dropped because the producer queue was full")
                          .Register(registry)
                          .Add({})),
      slow_effectors_(
          prometheus::BuildCounter()
              .Name("immunizer_execute_slow_effectors_total")
              .Help("Effector streams closed because they did not read their directives")
              .Register(registry)
              .Add({})),
      plans_refused_(
          prometheus::BuildCounter()
              .Name("immunizer_execute_plans_refused_total")
              .Help("Plans dead-lettered unenforced, by reason (unsigned_plan, untrusted_plan_key, "
                    "bad_plan_signature)")
              .Register(registry)),
      guard_(prometheus::BuildCounter()
                 .Name("immunizer_execute_guard_total")
                 .Help("Guard policy decisions (automatic actions: refused_kind, ttl_clamped, "
                       "breaker_open, breaker_tripped, breaker_closed; manual blocks: "
                       "manual_ttl_refused)")
                 .Register(registry)),
      breaker_gauge_(prometheus::BuildGauge()
                         .Name("immunizer_execute_breaker_open")
                         .Help("1 while the circuit breaker stops automatic enforcement")
                         .Register(registry)
                         .Add({})),
      duplicates_(prometheus::BuildCounter()
                      .Name("immunizer_duplicates_dropped_total")
                      .Help("Inputs read again (a replay after a crash or rebalance) and dropped, "
                            "by what (plan, "
                            "action)")
                      .Register(registry)) {
  for (const auto& pem : cfg_.plan_public_keys_pem)
    plan_keys_.add(crypto::VerifyingKey::from_pem(pem));
  for (const auto& k : cfg_.guard_automatic_actions) {
    const v1::ActionKind kind = v1::action_kind_from_verb(k);
    if (!enforceable(kind))
      throw std::invalid_argument("execute guard: unknown action kind '" + k + "'");
    automatic_kinds_.insert(kind);
  }
}

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

void Dispatcher::count(const std::string& type) { actions_.Add({{"type", type}}).Increment(); }

void Dispatcher::update_gauges_locked() {
  connected_.Set(static_cast<double>(sessions_.size()));
  active_gauge_.Set(static_cast<double>(active_.size()));
}

void Dispatcher::close_all(const Links& links) {
  for (const auto& l : links) l->close("directive queue full: the effector does not read");
}

void Dispatcher::event_locked(v1::ActionEventType type, const std::string& action_id,
                              const v1::Action& action, const std::string& plan_id,
                              const std::string& alarm_id, int64_t call_ts,
                              const std::string& effector, const std::string& reason) {
  if (outbox_.size() >= cfg_.event_queue_limit) {
    events_dropped_.Increment();
    return;
  }
  v1::ActionEvent e;
  e.set_action_id(action_id);
  e.set_plan_id(plan_id);
  e.set_alarm_id(alarm_id);
  e.set_type(type);
  *e.mutable_action() = action;
  e.set_effector(effector);
  e.set_reason(reason);
  e.set_at_unix_nanos(clock_.now_unix_nanos());
  e.set_call_timestamp_unix_nanos(call_ts);
  outbox_.push_back({topics_.actions, action_id, e.SerializeAsString()});
}

// State of one entry: a ValueMap {directive: bytes, aliases: [string], alarm_id: string}.
void Dispatcher::persist_locked(const std::string& primary, const Active* a) {
  v1::ModelSnapshot snap;
  snap.set_model_key(primary);
  snap.set_kind(kSnapshotKind);
  snap.set_format_version(kSnapshotFormat);
  snap.set_taken_unix_nanos(clock_.now_unix_nanos());
  if (a) {
    v1::ValueMap m;
    auto& f = *m.mutable_fields();
    f["directive"].set_bytes_value(a->directive.SerializeAsString());
    auto* list = f["aliases"].mutable_list_value();
    for (const auto& id : a->aliases) list->add_items()->set_string_value(id);
    f["alarm_id"].set_string_value(a->alarm_id);
    snap.set_state(m.SerializeAsString());
  }
  // State is what survives a restart: never dropped for queue limits.
  (state_sink_ ? state_outbox_ : outbox_)
      .push_back(
          {topics_.models, common::snapshot_key(kSnapshotKind, primary), snap.SerializeAsString()});
}

size_t Dispatcher::restore(const std::map<std::string, v1::ModelSnapshot>& snapshots) {
  std::lock_guard lk(mu_);
  const int64_t now = clock_.now_unix_nanos();
  size_t n = 0;
  for (const auto& [key, snap] : snapshots) {
    if (snap.kind() != kSnapshotKind || snap.state().empty()) continue;
    v1::ValueMap m;
    if (!m.ParseFromString(snap.state())) {
      log()->warn("persisted entry {} is unreadable; skipped", key);
      continue;
    }
    const auto& f = m.fields();
    Active a;
    if (!f.count("directive") || !a.directive.ParseFromString(f.at("directive").bytes_value()) ||
        a.directive.action().id().empty())
      continue;
    if (a.directive.expires_unix_nanos() != 0 && a.directive.expires_unix_nanos() <= now) continue;
    const std::string primary = a.directive.action().id();
    if (active_.count(primary)) continue;
    if (f.count("aliases"))
      for (const auto& v : f.at("aliases").list_value().items())
        a.aliases.push_back(v.string_value());
    if (a.aliases.empty()) a.aliases.push_back(primary);
    if (f.count("alarm_id")) a.alarm_id = f.at("alarm_id").string_value();
    by_target_[target_key(a.directive.action())] = primary;
    for (const auto& id : a.aliases) alias_[id] = primary;
    // Acks for the replayed directive are reported under the primary action.
    remember_locked(
        a.directive,
        Sent{primary, a.directive.action(), a.directive.plan_id(), a.alarm_id, 0, false, {}});
    active_.emplace(primary, std::move(a));
    ++n;
  }
  update_gauges_locked();
  if (n) log()->info("restored {} active directive(s) from the previous run", n);
  return n;
}

void Dispatcher::remember_locked(const v1::Directive& d, Sent s) {
  const int64_t base = d.expires_unix_nanos() != 0 ? d.expires_unix_nanos() : d.issued_unix_nanos();
  forget_.emplace(base + kAckGraceNanos, d.id());
  sent_[d.id()] = std::move(s);
}

void Dispatcher::sign_and_send_locked(v1::Directive& d, Links& overflowed) {
  effector::sign(d, *cfg_.signing_key);
  for (auto& [id, s] : sessions_) {
    if (!s.link->send(d)) {
      slow_effectors_.Increment();
      overflowed.push_back(s.link);
    }
  }
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
    // Same target already in force: supersede its directive with one that keeps the
    // primary action id (so the effector replaces the rule in place, without a gap) and
    // runs to the later of both expiries.
    Active& a = active_.at(it->second);
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
      alias_[action.id()] = it->second;
    }
    persist_locked(it->second, &a);
    reason = (note.empty() ? "" : note + "; ") + "extends active action " + it->second;
    log()->info("{} {} extended to {} s from now by action {} (plan '{}')",
                kind_label(action.kind()), target_text(action), (until - now) / 1'000'000'000,
                action.id(), plan_id);
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
    for (const auto& a : plan.actions()) {
      const int64_t call_ts = plan.call_timestamp_unix_nanos();
      switch (a.kind()) {
        case v1::ACTION_LOG:
          event_locked(v1::ACTION_EVENT_DISPATCHED, a.id(), a, plan.id(), plan.alarm_id(), call_ts,
                       "", "logged only");
          count("log");
          break;
        case v1::ACTION_ESCALATE:
          log()->warn(
              "ESCALATION: plan {} (alarm {}, rule '{}') asks for a human: principal user='{}' "
              "session='{}' ip='{}'",
              plan.id(), plan.alarm_id(), plan.policy_rule(), plan.principal().user(),
              plan.principal().session(), plan.principal().ip());
          event_locked(v1::ACTION_EVENT_DISPATCHED, a.id(), a, plan.id(), plan.alarm_id(), call_ts,
                       "", "escalated to operators");
          count("escalate");
          break;
        default: {
          if (!enforceable(a.kind())) {
            event_locked(v1::ACTION_EVENT_REJECTED, a.id(), a, plan.id(), plan.alarm_id(), call_ts,
                         "execute",
                         "unknown action kind " + std::to_string(static_cast<int>(a.kind())));
            count("reject");
            break;
          }
          if (std::string why = invalid_reason(a); !why.empty()) {
            log()->warn("plan {} action {}: not enforceable: {}", plan.id(), a.id(), why);
            event_locked(v1::ACTION_EVENT_REJECTED, a.id(), a, plan.id(), plan.alarm_id(), call_ts,
                         "execute", why);
            count("reject");
            break;
          }
          const int64_t ttl_ms =
              a.ttl_millis() > 0 ? std::min(a.ttl_millis(), cfg_.max_ttl_ms) : cfg_.default_ttl_ms;
          if (plan.created_unix_nanos() > 0 &&
              plan.created_unix_nanos() + ttl_ms * kNanosPerMilli <= now) {
            // A plan read long after it was made (a new consumer group from the start of the
            // topic).
            log()->debug("plan {} action {}: TTL already over, not dispatched", plan.id(), a.id());
            count("stale");
            break;
          }
          if (alias_.count(
                  a.id())) {  // the same action again (a plan read twice): already in force
            duplicates_.Add({{"what", "action"}}).Increment();
            break;
          }
          v1::Action guarded = a;
          std::string note;
          if (std::string why = guard_locked(plan, guarded, note, now); !why.empty()) {
            event_locked(v1::ACTION_EVENT_REJECTED, a.id(), a, plan.id(), plan.alarm_id(), call_ts,
                         "execute", why);
            count("reject");
            break;
          }
          enforce_locked(guarded, plan.id(), plan.alarm_id(), call_ts, note, overflowed);
        }
      }
    }
  }
  close_all(overflowed);
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

v1::ListActiveResponse Dispatcher::list_active() const {
  std::lock_guard lk(mu_);
  v1::ListActiveResponse r;
  for (const auto& [id, a] : active_) {
    auto* x = r.add_actions();
    *x->mutable_action() = a.directive.action();
    x->set_expires_unix_nanos(a.directive.expires_unix_nanos());
    x->set_plan_id(a.directive.plan_id());
    x->set_acks(static_cast<int32_t>(a.acked_by.size()));
  }
  for (const auto& [id, s] : sessions_) *r.add_effectors() = s.hello;
  return r;
}

uint64_t Dispatcher::connect(const v1::EffectorHello& hello, std::shared_ptr<EffectorLink> link) {
  Links overflowed;
  uint64_t id = 0;
  size_t replayed = 0;
  {
    std::lock_guard lk(mu_);
    id = next_session_++;
    // Replay under the lock: no new directive can be queued before the replay.
    bool complete = true;
    for (const auto& [aid, a] : active_) {
      if (!link->send(a.directive)) {
        complete = false;
        break;
      }
      ++replayed;
    }
    // The marker lets the effector drop at once what was revoked while it was away.
    if (!complete || !link->end_replay(static_cast<uint32_t>(replayed))) {
      slow_effectors_.Increment();
      overflowed.push_back(link);
    }
    sessions_[id] = Session{hello, hello.app() + "/" + hello.instance(), std::move(link)};
    update_gauges_locked();
  }
  log()->info("effector {}/{} connected (session {}), {} active directive(s) replayed", hello.app(),
              hello.instance(), id, replayed);
  close_all(overflowed);
  return id;
}

void Dispatcher::disconnect(uint64_t session) {
  std::string name;
  {
    std::lock_guard lk(mu_);
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    name = it->second.name;
    sessions_.erase(it);
    update_gauges_locked();
  }
  log()->info("effector {} disconnected (session {})", name, session);
}

void Dispatcher::on_ack(uint64_t session, const v1::DirectiveAck& ack) {
  std::lock_guard lk(mu_);
  const auto ss = sessions_.find(session);
  const std::string name = ss == sessions_.end() ? "unknown" : ss->second.name;
  const auto it = sent_.find(ack.directive_id());
  if (it == sent_.end()) {
    acks_.Add({{"result", "unknown"}}).Increment();
    log()->debug("ack from {} for unknown directive {}", name, ack.directive_id());
    return;
  }
  Sent& s = it->second;
  acks_.Add({{"result", ack.applied() ? "applied" : "rejected"}}).Increment();
  if (s.revoke) return;  // the REVOKED event was written when the revoke was issued
  // One event per effector and directive: a replay after a reconnect is acked again.
  if (!s.acked_by.insert(name).second) return;
  if (ack.applied()) {
    if (auto al = alias_.find(s.action_id); al != alias_.end()) {
      auto a = active_.find(al->second);
      if (a != active_.end() && a->second.directive.id() == ack.directive_id())
        a->second.acked_by.insert(name);
    }
    event_locked(v1::ACTION_EVENT_APPLIED, s.action_id, s.action, s.plan_id, s.alarm_id, s.call_ts,
                 name, ack.reason());
    if (s.call_ts > 0) {
      const int64_t at =
          ack.applied_unix_nanos() > 0 ? ack.applied_unix_nanos() : clock_.now_unix_nanos();
      if (at >= s.call_ts) latency_.Observe(static_cast<double>(at - s.call_ts) / 1e9);
    }
  } else {
    log()->warn("effector {} rejected directive {} (action {}): {}", name, ack.directive_id(),
                s.action_id, ack.reason());
    event_locked(v1::ACTION_EVENT_REJECTED, s.action_id, s.action, s.plan_id, s.alarm_id, s.call_ts,
                 name, ack.reason().empty() ? "rejected by effector" : ack.reason());
    count("reject");
  }
}

size_t Dispatcher::expire() {
  std::lock_guard lk(mu_);
  const int64_t now = clock_.now_unix_nanos();
  size_t n = 0;
  for (auto it = active_.begin(); it != active_.end();) {
    const Active& a = it->second;
    const int64_t exp = a.directive.expires_unix_nanos();
    if (exp == 0 || exp > now) {
      ++it;
      continue;
    }
    for (const auto& id : a.aliases) {
      event_locked(v1::ACTION_EVENT_EXPIRED, id, a.directive.action(), a.directive.plan_id(),
                   a.alarm_id, 0, "", "ttl over");
      alias_.erase(id);
    }
    by_target_.erase(target_key(a.directive.action()));
    log()->info("action {} expired ({} {})", it->first, kind_label(a.directive.action().kind()),
                target_text(a.directive.action()));
    count("expire");
    persist_locked(it->first, nullptr);
    it = active_.erase(it);
    ++n;
  }
  while (!forget_.empty() && forget_.begin()->first <= now) {
    sent_.erase(forget_.begin()->second);
    forget_.erase(forget_.begin());
  }
  if (n) update_gauges_locked();
  return n;
}

size_t Dispatcher::drain(common::Producer& out) {
  std::vector<Out> outs;
  {
    std::lock_guard lk(mu_);
    outs.swap(outbox_);
  }
  for (const auto& o : outs) out.produce(o.topic, o.key, o.payload);
  size_t n = outs.size();
  if (state_sink_) {
    std::lock_guard sl(state_mu_);
    {
      std::lock_guard lk(mu_);
      n += state_outbox_.size();
    }
    produce_state();
  }
  return n;
}

void Dispatcher::set_state_sink(common::Producer* sink, std::chrono::milliseconds timeout) {
  std::lock_guard sl(state_mu_);
  std::lock_guard lk(mu_);
  state_sink_ = sink;
  state_timeout_ = timeout;
}

void Dispatcher::produce_state() {
  std::vector<Out> outs;
  {
    std::lock_guard lk(mu_);
    if (repersist_all_) {
      // A flush failed: what it carried may be lost; the current state of every entry again.
      repersist_all_ = false;
      for (const auto& [primary, a] : active_) persist_locked(primary, &a);
    }
    outs.swap(state_outbox_);
  }
  for (const auto& o : outs) state_sink_->produce(o.topic, o.key, o.payload);
}

bool Dispatcher::flush_state() {
  if (!state_sink_) return true;
  std::lock_guard sl(state_mu_);
  produce_state();
  const common::FlushResult r = state_sink_->flush(state_timeout_);
  if (r.ok()) return true;
  log()->error("active-action state not acknowledged by Kafka ({} failed, {}); it is written again",
               r.failed, r.complete ? "delivery failed" : "timed out");
  std::lock_guard lk(mu_);
  repersist_all_ = true;
  return false;
}

size_t Dispatcher::active_count() const {
  std::lock_guard lk(mu_);
  return active_.size();
}

bool Dispatcher::breaker_open() const {
  std::lock_guard lk(mu_);
  return breaker_open_until_ != 0 && breaker_open_until_ > clock_.now_unix_nanos();
}

size_t Dispatcher::effectors_connected() const {
  std::lock_guard lk(mu_);
  return sessions_.size();
}

}  // namespace immunizer::execute
