#include "immunizer/execute/dispatcher.hpp"

#include <algorithm>

#include "dispatcher_internal.hpp"
#include "immunizer/common/metrics.hpp"
#include "immunizer/effector/directive_signing.hpp"

namespace immunizer::execute {

using namespace internal;  // NOLINT(google-build-using-namespace): this component's own helpers

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
      actions_(common::counter_family(
          registry, "immunizer_actions_total",
          "Actions handled by execute, by type (block, abort, throttle, disable, log, escalate, "
          "expire, revoke, reject, shadow, stale)")),
      latency_(common::register_histogram(
          registry, "immunizer_mitigation_latency_seconds",
          "From the offending call to an effector acknowledging the directive as applied",
          {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120})),
      connected_(common::register_gauge(registry, "immunizer_execute_effectors_connected",
                                        "Effector streams currently connected (after hello)")),
      active_gauge_(common::register_gauge(registry, "immunizer_execute_active_directives",
                                           "Directives in force (not expired, not revoked)")),
      acks_(common::counter_family(
          registry, "immunizer_execute_acks_total",
          "Directive acknowledgements from effectors, by result (applied, rejected, unknown)")),
      events_dropped_(
          common::register_counter(registry, "immunizer_execute_events_dropped_total",
                                   "Action events dropped because the producer queue was full")),
      slow_effectors_(common::register_counter(
          registry, "immunizer_execute_slow_effectors_total",
          "Effector streams closed because they did not read their directives")),
      plans_refused_(common::counter_family(
          registry, "immunizer_execute_plans_refused_total",
          "Plans dead-lettered unenforced, by reason (unsigned_plan, untrusted_plan_key, "
          "bad_plan_signature)")),
      guard_(common::counter_family(
          registry, "immunizer_execute_guard_total",
          "Guard policy decisions (automatic actions: refused_kind, ttl_clamped, breaker_open, "
          "breaker_tripped, breaker_closed; manual blocks: manual_ttl_refused)")),
      breaker_gauge_(
          common::register_gauge(registry, "immunizer_execute_breaker_open",
                                 "1 while the circuit breaker stops automatic enforcement")),
      duplicates_(common::counter_family(
          registry, "immunizer_duplicates_dropped_total",
          "Inputs read again (a replay after a crash or rebalance) and dropped, by what (plan, "
          "action)")) {
  for (const auto& pem : cfg_.plan_public_keys_pem)
    plan_keys_.add(crypto::VerifyingKey::from_pem(pem));
  for (const auto& k : cfg_.guard_automatic_actions) {
    const v1::ActionKind kind = v1::action_kind_from_verb(k);
    if (!enforceable(kind))
      throw std::invalid_argument("execute guard: unknown action kind '" + k + "'");
    automatic_kinds_.insert(kind);
  }
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
  if (is_decision(type, effector)) remember_decided_locked(action_id);
  if (outbox_.size() + held_.size() >= cfg_.event_queue_limit) {
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
  Out o{topics_.actions, action_id, e.SerializeAsString()};
  // After a state record not yet acknowledged (with a state sink), the event waits for it: on
  // the topic, an event implies that the state it describes survives a restart.
  if (state_gen_ > acked_gen_ || !held_.empty()) {
    held_.emplace_back(state_gen_, std::move(o));
  } else {
    outbox_.push_back(std::move(o));
  }
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
    // Replay under the lock: no new directive can be queued before the replay. An effector
    // that takes batches gets runs of kReplayBatch signed once (one verification per run on
    // its side instead of one per directive: a cold replay of 10,000 in well under a second).
    const auto& caps = hello.capabilities();
    const bool batches =
        std::find(caps.begin(), caps.end(), effector::kBatchCapability) != caps.end();
    v1::DirectiveBatch batch;
    auto send_batch = [&] {
      if (batch.directives_size() == 0) return true;
      effector::sign(batch, *cfg_.signing_key);
      if (!link->send_batch(batch)) return false;
      replayed += static_cast<size_t>(batch.directives_size());
      batch.Clear();
      return true;
    };
    bool complete = true;
    for (const auto& [aid, a] : active_) {
      if (batches) {
        *batch.add_directives() = a.directive;
        if (batch.directives_size() >= static_cast<int>(effector::kReplayBatch) && !send_batch()) {
          complete = false;
          break;
        }
        continue;
      }
      if (!link->send(a.directive)) {
        complete = false;
        break;
      }
      ++replayed;
    }
    if (complete && !send_batch()) complete = false;
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
