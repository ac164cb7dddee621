#include "enforcer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "hazard.hpp"

#include "immunizer/effector/directive_signing.hpp"

namespace immunizer::effector {

using immunizer::v1::ActionKind;

std::string_view to_string(Outcome o) noexcept {
  switch (o) {
    case Outcome::kApplied:
      return "applied";
    case Outcome::kRevoked:
      return "revoked";
    case Outcome::kDuplicate:
      return "duplicate";
    case Outcome::kIgnored:
      return "ignored";
    case Outcome::kRejectedSignature:
      return "rejected_signature";
    case Outcome::kRejectedExpired:
      return "rejected_expired";
    case Outcome::kRejectedReplay:
      return "rejected_replay";
    case Outcome::kRejectedInvalid:
      return "rejected_invalid";
  }
  return "unknown";
}

// ---- Gcra ----

Gcra::Gcra(double rate_per_second, double burst) {
  deny_all_ = !(rate_per_second > 0.0) || !std::isfinite(rate_per_second);
  const double interval = deny_all_ ? 1e9 : 1e9 / rate_per_second;
  interval_ns_ = static_cast<int64_t>(std::max(1.0, interval));
  const double b = std::max(1.0, std::isfinite(burst) ? burst : 1.0);
  tolerance_ns_ =
      static_cast<int64_t>(std::min(9e18, (b - 1.0) * static_cast<double>(interval_ns_)));
}

bool Gcra::take(int64_t now) noexcept {
  if (deny_all_) return false;
  int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t base = std::max(tat, now);
    if (base - now > tolerance_ns_) return false;
    if (tat_.compare_exchange_weak(tat, base + interval_ns_, std::memory_order_relaxed))
      return true;
  }
}

// ---- Enforcer: readers ----

namespace {
int field_index(immunizer::v1::PrincipalField f) {
  switch (f) {
    case immunizer::v1::PRINCIPAL_FIELD_USER:
      return 0;
    case immunizer::v1::PRINCIPAL_FIELD_SESSION:
      return 1;
    case immunizer::v1::PRINCIPAL_FIELD_IP:
      return 2;
    default:
      return -1;
  }
}
}  // namespace

uint64_t FlatIndex::hash(std::string_view s) noexcept {
  // Short keys (IPs, user names, session ids) in a handful of multiplies; fixed-size loads
  // only (no variable-length memcpy call), tails read as two overlapping words.
  auto load64 = [](const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  };
  auto load32 = [](const char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return static_cast<uint64_t>(v);
  };
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n > 8) {
    h = (h ^ load64(p)) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  uint64_t v;
  if (n >= 4)
    v = (load32(p) << 32) | load32(p + n - 4);
  else if (n > 0)
    v = (static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16) |
        (static_cast<uint64_t>(static_cast<uint8_t>(p[n >> 1])) << 8) |
        static_cast<uint8_t>(p[n - 1]);
  else
    v = 0;
  h = (h ^ v) * 0x94d049bb133111ebull;
  h ^= h >> 29;
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}

void FlatIndex::build(const StringMap<std::vector<const Rule*>>& from) {
  lists_.clear();
  slots_.clear();
  if (from.empty()) return;
  size_t cap = 8;
  while (cap < from.size() * 2) cap <<= 1;  // load factor <= 0.5: misses stop at once
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  lists_.reserve(from.size());
  for (const auto& [key, rules] : from) {
    // The key must outlive the index: point it at the first rule's own string.
    const Rule* r = rules.front();
    const std::string_view k =
        r->field >= 0 ? std::string_view(r->value) : std::string_view(r->call);
    lists_.push_back(rules);
    const uint64_t h = hash(k);
    uint64_t i = h & mask_;
    while (slots_[i].list != 0) i = (i + 1) & mask_;
    slots_[i] = Slot{h, k, static_cast<uint32_t>(lists_.size())};
  }
}

bool Enforcer::allows(const PrincipalView& p, std::string_view call) const noexcept {
  detail::HazardRec* h = detail::HazardDomain::mine();
  const Snapshot* snap = current_.load(std::memory_order_relaxed);
  if (snap == nullptr) return true;
  for (;;) {  // publish the hazard, then check the snapshot is still current
    if (light_) {
      h->ptr.store(snap, std::memory_order_relaxed);
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      h->ptr.store(snap, std::memory_order_seq_cst);
    }
    const Snapshot* again = current_.load(std::memory_order_acquire);
    if (again == snap) break;
    snap = again;
    if (snap == nullptr) {
      h->ptr.store(nullptr, std::memory_order_release);
      return true;
    }
  }
  bool ok = true;
  {
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
      const auto* rules = m.find(fields[f]);
      if (rules == nullptr) continue;
      for (const Rule* r : *rules) {
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
      if (const auto* rules = snap->by_call.find(call))
        for (const Rule* r : *rules)
          if (live(r)) {
            ok = false;
            break;
          }
    }
  }
  h->ptr.store(nullptr, std::memory_order_release);
  return ok;
}

// ---- Enforcer: writers ----

Enforcer::Enforcer(EnforcerOptions options, Clock clock)
    : opt_(std::move(options)),
      clock_(std::move(clock)),
      light_(detail::HazardDomain::instance().light()) {}

Enforcer::~Enforcer() { delete current_.load(); }

void Enforcer::publish_locked() {
  auto* snap = new Snapshot;
  snap->rules.reserve(actions_.size());
  std::array<StringMap<std::vector<const Rule*>>, 3> by_principal;
  StringMap<std::vector<const Rule*>> by_call;
  for (const auto& [id, e] : actions_) {
    const Rule* r = e.rule.get();
    snap->rules.push_back(e.rule);
    if (r->field >= 0)
      by_principal[r->field][r->value].push_back(r);
    else
      by_call[r->call].push_back(r);
  }
  for (int f = 0; f < 3; ++f) snap->by_principal[f].build(by_principal[f]);
  snap->by_call.build(by_call);
  const Snapshot* publish = actions_.empty() ? nullptr : snap;
  if (!publish) delete snap;
  const Snapshot* old = current_.exchange(publish, std::memory_order_seq_cst);
  active_.store(actions_.size(), std::memory_order_release);
  if (old) {
    // Readers that saw `old` have published it by now (or will re-read current_).
    detail::HazardDomain& d = detail::HazardDomain::instance();
    d.heavy_barrier();
    while (d.is_protected(old)) std::this_thread::yield();
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
  if (!opt_.trusted_keys || opt_.trusted_keys->find(d.key_id()) == nullptr)
    return count(Outcome::kRejectedSignature,
                 "untrusted key id '" + d.key_id().substr(0, 64) + "'");
  if (!verify(d, *opt_.trusted_keys)) return count(Outcome::kRejectedSignature, "bad signature");
  if (d.id().empty()) return count(Outcome::kRejectedInvalid, "no directive id");
  if (d.issued_unix_nanos() > now + opt_.max_clock_skew_ns)
    return count(Outcome::kRejectedExpired, "issued in the future");
  if (d.expires_unix_nanos() != 0 && d.expires_unix_nanos() <= now)
    return count(Outcome::kRejectedExpired, "expired");

  std::lock_guard lk(mu_);
  if (const auto it = seen_.find(d.id()); it != seen_.end()) {
    if (it->second.signature != d.signature())
      return count(Outcome::kRejectedReplay, "directive id reused");
    const auto a = actions_.find(d.action().id());
    if (!d.revoke() && a != actions_.end() && a->second.directive_id == d.id()) {
      a->second.confirmed = true;
      return count(Outcome::kDuplicate, "already applied");
    }
    if (d.revoke() && a == actions_.end()) return count(Outcome::kDuplicate, "already revoked");
    // execute re-sent an active directive after our resync window dropped it: it is still
    // active there, so apply it again (never after a revoke: see apply_locked).
    if (!d.revoke() && a == actions_.end() && stale_.erase(d.action().id())) {
      HandleResult r = apply_locked(d, now);
      counts_[static_cast<size_t>(r.outcome)].fetch_add(1, std::memory_order_relaxed);
      return r;
    }
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
      if (stale_.size() < opt_.replay_cache_size) stale_.emplace(it->first, true);
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
