#include "enforcer.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

#include "immunizer/effector/directive_signing.hpp"

namespace immunizer::effector {

using immunizer::v1::ActionKind;

std::string_view to_string(Outcome o) noexcept {
  switch (o) {
    case Outcome::kApplied: return "applied";
    case Outcome::kRevoked: return "revoked";
    case Outcome::kDuplicate: return "duplicate";
    case Outcome::kIgnored: return "ignored";
    case Outcome::kRejectedSignature: return "rejected_signature";
    case Outcome::kRejectedExpired: return "rejected_expired";
    case Outcome::kRejectedReplay: return "rejected_replay";
    case Outcome::kRejectedInvalid: return "rejected_invalid";
  }
  return "unknown";
}

// ---- Gcra ----

Gcra::Gcra(double rate_per_second, double burst) {
  deny_all_ = !(rate_per_second > 0.0) || !std::isfinite(rate_per_second);
  const double interval = deny_all_ ? 1e9 : 1e9 / rate_per_second;
  interval_ns_ = static_cast<int64_t>(std::max(1.0, interval));
  const double b = std::max(1.0, std::isfinite(burst) ? burst : 1.0);
  tolerance_ns_ = static_cast<int64_t>(std::min(9e18, (b - 1.0) * static_cast<double>(interval_ns_)));
}

bool Gcra::take(int64_t now) noexcept {
  if (deny_all_) return false;
  int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t base = std::max(tat, now);
    if (base - now > tolerance_ns_) return false;
    if (tat_.compare_exchange_weak(tat, base + interval_ns_, std::memory_order_relaxed)) return true;
  }
}

// ---- Enforcer: readers ----

namespace {
thread_local unsigned tl_slot = 0;  // 0: not assigned yet; else slot + 1
std::atomic<unsigned> g_next_slot{0};

int field_index(immunizer::v1::PrincipalField f) {
  switch (f) {
    case immunizer::v1::PRINCIPAL_FIELD_USER: return 0;
    case immunizer::v1::PRINCIPAL_FIELD_SESSION: return 1;
    case immunizer::v1::PRINCIPAL_FIELD_IP: return 2;
    default: return -1;
  }
}
}  // namespace

const Snapshot* Enforcer::enter(unsigned& slot, unsigned& parity) const noexcept {
  unsigned s = tl_slot;
  if (s == 0) [[unlikely]]
    tl_slot = s = (g_next_slot.fetch_add(1, std::memory_order_relaxed) % kSlots) + 1;
  slot = s - 1;
  parity = epoch_.load(std::memory_order_seq_cst) & 1;
  slots_[slot].n[parity].fetch_add(1, std::memory_order_seq_cst);
  return current_.load(std::memory_order_seq_cst);
}

void Enforcer::leave(unsigned slot, unsigned parity) const noexcept {
  slots_[slot].n[parity].fetch_sub(1, std::memory_order_release);
}

bool Enforcer::allows(const PrincipalView& p, std::string_view call) const noexcept {
  unsigned slot, parity;
  const Snapshot* snap = enter(slot, parity);
  bool ok = true;
  if (snap) {
    int64_t now = 0;
    auto live = [&](const Rule* r) {
      if (r->end_ns == INT64_MAX) return true;
      if (now == 0) now = clock_();
      return r->end_ns > now;
    };
    const std::string_view fields[3] = {p.user, p.session, p.ip};
    for (int f = 0; f < 3 && ok; ++f) {
      const auto& m = snap->by_principal[f];
      if (fields[f].empty() || m.empty()) continue;
      const auto it = m.find(fields[f]);
      if (it == m.end()) continue;
      for (const Rule* r : it->second) {
        if (!r->call.empty() && r->call != call) continue;
        if (!live(r)) continue;
        if (r->bucket) {
          if (now == 0) now = clock_();
          if (r->bucket->take(now)) continue;
        }
        ok = false;
        break;
      }
    }
    if (ok && !snap->by_call.empty()) {
      const auto it = snap->by_call.find(call);
      if (it != snap->by_call.end())
        for (const Rule* r : it->second)
          if (live(r)) {
            ok = false;
            break;
          }
    }
  }
  leave(slot, parity);
  return ok;
}

// ---- Enforcer: writers ----

Enforcer::Enforcer(EnforcerOptions options, Clock clock) : opt_(std::move(options)), clock_(std::move(clock)) {}

Enforcer::~Enforcer() { delete current_.load(); }

// Waits until no reader can hold a snapshot older than the current one (two epoch flips,
// as in classic userspace RCU: a reader that read the epoch before the first flip is
// drained by the first wait or the second).
void Enforcer::synchronize_readers() {
  for (int phase = 0; phase < 2; ++phase) {
    const unsigned old = epoch_.fetch_add(1, std::memory_order_seq_cst) & 1;
    for (;;) {
      int64_t n = 0;
      for (const auto& s : slots_) n += s.n[old].load(std::memory_order_seq_cst);
      if (n == 0) break;
      std::this_thread::yield();
    }
  }
}

void Enforcer::publish_locked() {
  auto* snap = new Snapshot;
  snap->rules.reserve(actions_.size());
  for (const auto& [id, e] : actions_) {
    const Rule* r = e.rule.get();
    snap->rules.push_back(e.rule);
    if (r->field >= 0)
      snap->by_principal[r->field][r->value].push_back(r);
    else
      snap->by_call[r->call].push_back(r);
  }
  const Snapshot* publish = actions_.empty() ? nullptr : snap;
  if (!publish) delete snap;
  const Snapshot* old = current_.exchange(publish, std::memory_order_seq_cst);
  active_.store(actions_.size(), std::memory_order_release);
  if (old) {
    synchronize_readers();
    delete old;
  }
}

void Enforcer::remember_locked(const immunizer::v1::Directive& d) {
  if (seen_.emplace(d.id(), Seen{d.signature()}).second) {
    seen_order_.push_back(d.id());
    while (seen_order_.size() > opt_.replay_cache_size) {
      seen_.erase(seen_order_.front());
      seen_order_.pop_front();
    }
  }
}

HandleResult Enforcer::handle(const immunizer::v1::Directive& d) {
  const int64_t now = clock_();
  auto count = [&](Outcome o, std::string reason) {
    counts_[static_cast<size_t>(o)].fetch_add(1, std::memory_order_relaxed);
    return HandleResult{o, std::move(reason)};
  };
  if (d.signature().empty()) return count(Outcome::kRejectedSignature, "unsigned");
  if (!opt_.key_id.empty() && d.key_id() != opt_.key_id)
    return count(Outcome::kRejectedSignature, "unknown key id '" + d.key_id() + "'");
  if (!verify(d, opt_.signing_key)) return count(Outcome::kRejectedSignature, "bad signature");
  if (d.id().empty()) return count(Outcome::kRejectedInvalid, "no directive id");
  if (d.issued_unix_nanos() > now + opt_.max_clock_skew_ns)
    return count(Outcome::kRejectedExpired, "issued in the future");
  if (d.expires_unix_nanos() != 0 && d.expires_unix_nanos() <= now) return count(Outcome::kRejectedExpired, "expired");

  std::lock_guard lk(mu_);
  if (const auto it = seen_.find(d.id()); it != seen_.end()) {
    if (it->second.signature != d.signature()) return count(Outcome::kRejectedReplay, "directive id reused");
    const auto a = actions_.find(d.action().id());
    if (!d.revoke() && a != actions_.end() && a->second.directive_id == d.id()) {
      a->second.confirmed = true;
      return count(Outcome::kDuplicate, "already applied");
    }
    if (d.revoke() && a == actions_.end()) return count(Outcome::kDuplicate, "already revoked");
    return count(Outcome::kRejectedReplay, "replayed");
  }
  HandleResult r = apply_locked(d, now);
  counts_[static_cast<size_t>(r.outcome)].fetch_add(1, std::memory_order_relaxed);
  if (accepted(r.outcome) || r.outcome == Outcome::kRejectedReplay) remember_locked(d);
  return r;
}

HandleResult Enforcer::apply_locked(const immunizer::v1::Directive& d, int64_t now) {
  const auto& a = d.action();
  if (a.id().empty()) return {Outcome::kRejectedInvalid, "no action id"};
  if (d.revoke()) {
    if (revoked_.emplace(a.id(), true).second) {
      revoked_order_.push_back(a.id());
      while (revoked_order_.size() > opt_.replay_cache_size) {
        revoked_.erase(revoked_order_.front());
        revoked_order_.pop_front();
      }
    }
    if (actions_.erase(a.id())) publish_locked();
    return {Outcome::kRevoked, ""};
  }
  if (revoked_.count(a.id())) return {Outcome::kRejectedReplay, "action was revoked"};

  auto rule = std::make_shared<Rule>();
  rule->action_id = a.id();
  rule->kind = a.kind();
  switch (a.kind()) {
    case ActionKind::ACTION_LOG:
    case ActionKind::ACTION_ESCALATE:
      return {Outcome::kIgnored, "nothing to enforce in the effector"};
    case ActionKind::ACTION_BLOCK_PRINCIPAL:
    case ActionKind::ACTION_ABORT_CALL:
    case ActionKind::ACTION_THROTTLE_PRINCIPAL:
      rule->field = field_index(a.target_field());
      if (rule->field < 0) return {Outcome::kRejectedInvalid, "no target field"};
      if (a.target_value().empty()) return {Outcome::kRejectedInvalid, "no target value"};
      rule->value = a.target_value();
      rule->call = a.call();
      if (a.kind() == ActionKind::ACTION_ABORT_CALL && a.call().empty())
        return {Outcome::kRejectedInvalid, "ABORT_CALL needs a call"};
      if (a.kind() == ActionKind::ACTION_THROTTLE_PRINCIPAL)
        rule->bucket = std::make_shared<Gcra>(a.rate_per_second(), a.burst());
      break;
    case ActionKind::ACTION_DISABLE_CALL:
      if (a.call().empty()) return {Outcome::kRejectedInvalid, "DISABLE_CALL needs a call"};
      rule->call = a.call();
      break;
    default:
      return {Outcome::kRejectedInvalid, "unknown action kind"};
  }
  int64_t end = INT64_MAX;
  if (d.expires_unix_nanos() != 0) end = d.expires_unix_nanos();
  if (a.ttl_millis() > 0) {
    const int64_t base = d.issued_unix_nanos() > 0 ? d.issued_unix_nanos() : now;
    end = std::min(end, base + a.ttl_millis() * 1'000'000);
  }
  if (end <= now) return {Outcome::kRejectedExpired, "TTL already over"};
  rule->end_ns = end;
  actions_[a.id()] = Entry{std::move(rule), d.id(), d.signature(), true};
  publish_locked();
  return {Outcome::kApplied, ""};
}

size_t Enforcer::expire() {
  const int64_t now = clock_();
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (auto it = actions_.begin(); it != actions_.end();) {
    if (it->second.rule->end_ns <= now) {
      it = actions_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  if (n) publish_locked();
  return n;
}

void Enforcer::begin_resync() {
  std::lock_guard lk(mu_);
  for (auto& [id, e] : actions_) e.confirmed = false;
}

size_t Enforcer::end_resync() {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (auto it = actions_.begin(); it != actions_.end();) {
    if (!it->second.confirmed) {
      it = actions_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  if (n) publish_locked();
  return n;
}

}  // namespace immunizer::effector
