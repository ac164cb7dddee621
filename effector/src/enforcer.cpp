#include "enforcer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <thread>

#include "hazard.hpp"

#include "immunizer/common/enum_names.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/v1/principal.hpp"

namespace immunizer::effector {

using immunizer::v1::ActionKind;

namespace {
constexpr std::string_view kOutcomeNames[] = {
    "applied",          "revoked",         "duplicate",       "ignored", "rejected_signature",
    "rejected_expired", "rejected_replay", "rejected_invalid"};
static_assert(std::size(kOutcomeNames) == kOutcomes);
}  // namespace

std::string_view to_string(Outcome o) noexcept {
  return common::enum_name(kOutcomeNames, o, "unknown");
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

size_t prefix_key(bool v6, int bits, const uint8_t* masked_bytes, char* out) noexcept {
  const size_t n = v6 ? 16 : 4;
  out[0] = v6 ? '6' : '4';
  out[1] = static_cast<char>(bits);
  std::memcpy(out + 2, masked_bytes, n);
  return n + 2;
}

namespace {
int field_index(immunizer::v1::PrincipalField f) {
  switch (f) {
    case immunizer::v1::PRINCIPAL_FIELD_USER:
      return 0;
    case immunizer::v1::PRINCIPAL_FIELD_SESSION:
      return 1;
    case immunizer::v1::PRINCIPAL_FIELD_IP:
      return 2;
    case immunizer::v1::PRINCIPAL_FIELD_IP_PREFIX:
      return 3;
    default:
      return -1;
  }
}
}  // namespace

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
    const uint64_t h = key_hash(k);
    uint64_t i = h & mask_;
    while (slots_[i].list != 0) i = (i + 1) & mask_;
    slots_[i] = Slot{h, k, static_cast<uint32_t>(lists_.size())};
  }
}

bool Enforcer::allows(const PrincipalView& p, std::string_view call) const noexcept {
  int64_t now = 0;
  // True when `r` denies this call now (a throttle that has a token left denies nothing).
  return !any_rule(p, call, true, [&](const Rule* r) {
    if (r->kind == ActionKind::ACTION_WATCH_PRINCIPAL) return false;
    if (!r->call.empty() && r->call != call) return false;
    if (r->end_ns != INT64_MAX) {
      if (now == 0) now = clock_();
      if (r->end_ns <= now) return false;
    }
    if (r->bucket) {
      if (now == 0) now = clock_();
      if (r->bucket->take(now)) return false;
    }
    return true;
  });
}

bool Enforcer::watched(const PrincipalView& p) const noexcept {
  int64_t now = 0;
  return any_rule(p, {}, false, [&](const Rule* r) {
    if (r->kind != ActionKind::ACTION_WATCH_PRINCIPAL) return false;
    if (r->end_ns != INT64_MAX) {
      if (now == 0) now = clock_();
      if (r->end_ns <= now) return false;
    }
    return true;
  });
}

template <class Match>
bool Enforcer::any_rule(const PrincipalView& p, std::string_view call, bool by_call,
                        Match&& match) const noexcept {
  detail::HazardRec* h = detail::HazardDomain::mine();
  const Snapshot* snap = current_.load(std::memory_order_relaxed);
  if (snap == nullptr) return false;
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
      return false;
    }
  }
  bool found = false;
  {
    auto matches = [&](const Rule* r) {
      return !r->dead.load(std::memory_order_acquire) && match(r);
    };
    auto any = [&](const FlatIndex& base, const RuleIndex& added, std::string_view key) {
      if (key.empty() || (base.empty() && added.empty())) return false;
      const uint64_t h = key_hash(key);
      if (const auto* rules = base.find(h, key))
        for (const Rule* r : *rules)
          if (matches(r)) return true;
      if (!added.empty())
        if (const RuleIndex::Set* set = added.find(h, key))
          for (const RulePtr& r : set->rules)
            if (matches(r.get())) return true;
      return false;
    };
    const BaseIndex& base = *snap->base;
    found = any(base.by_principal[0], snap->added_by_principal[0], p.user) ||
            any(base.by_principal[1], snap->added_by_principal[1], p.session) ||
            any(base.by_principal[2], snap->added_by_principal[2], p.ip) ||
            (by_call && any(base.by_call, snap->added_by_call, call));
    immunizer::v1::IpBytes addr;
    if (!found && !snap->prefix_lengths.empty() && immunizer::v1::parse_ip(p.ip, &addr)) {
      for (const auto& [v6, bits] : snap->prefix_lengths) {
        if (v6 != addr.v6) continue;
        char key[kPrefixKeyMax];
        const auto net = immunizer::v1::masked(addr, bits);
        const size_t n = prefix_key(v6, bits, net.b.data(), key);
        if (any(base.by_principal[3], snap->added_by_principal[3], std::string_view(key, n))) {
          found = true;
          break;
        }
      }
    }
  }
  h->ptr.store(nullptr, std::memory_order_release);
  return found;
}

// ---- Enforcer: writers ----

Enforcer::Enforcer(EnforcerOptions options, Clock clock)
    : opt_(std::move(options)),
      clock_(std::move(clock)),
      light_(detail::HazardDomain::instance().light()) {
  state_.base = std::make_shared<const BaseIndex>();
}

Enforcer::~Enforcer() {
  delete current_.load();
  for (const Snapshot* s : retired_) delete s;
}

namespace {
// Swapped-out snapshots are freed in batches: one barrier and one scan of the hazards for
// many, instead of one per change (a replay of 10,000 directives is 10,000 changes).
constexpr size_t kRetireBatch = 64;
constexpr size_t kSmallSet = 128;  // at most this many actions: always one flat index

std::string_view index_key(const Rule& r) { return r.field >= 0 ? r.value : r.call; }
}  // namespace

void Enforcer::rebuild_base_locked() {
  auto base = std::make_shared<BaseIndex>();
  base->rules.reserve(actions_.size());
  std::array<StringMap<std::vector<const Rule*>>, 4> by_principal;
  StringMap<std::vector<const Rule*>> by_call;
  for (auto& [id, e] : actions_) {
    const Rule* r = e.rule.get();
    base->rules.push_back(e.rule);
    (r->field >= 0 ? by_principal[r->field][r->value] : by_call[r->call]).push_back(r);
    e.in_base = true;
  }
  for (int f = 0; f < 4; ++f) base->by_principal[f].build(by_principal[f]);
  base->by_call.build(by_call);
  state_.base = std::move(base);
  state_.added_by_principal = {};
  state_.added_by_call = RuleIndex();
  added_ = 0;
  dead_in_base_ = 0;
}

void Enforcer::publish_locked(bool compact) {
  if (batching_) {  // handle(DirectiveBatch) publishes once, at its end
    publish_pending_ = true;
    return;
  }
  publish_pending_ = false;
  // Fold the changes into a new base when they outgrow it (amortized O(1) a change), when
  // asked (the housekeeping tick), or always while the set is small (a rebuild then costs
  // less than a few trie lookups on every read).
  const size_t limit = std::max<size_t>(256, state_.base->rules.size() / 2);
  const bool changed = added_ > 0 || dead_in_base_ > 0;
  if ((changed && (compact || actions_.size() <= kSmallSet)) || added_ > limit ||
      dead_in_base_ > limit)
    rebuild_base_locked();
  const Snapshot* publish = actions_.empty() ? nullptr : new Snapshot(state_);
  const Snapshot* old = current_.exchange(publish, std::memory_order_seq_cst);
  active_.store(actions_.size(), std::memory_order_release);
  // Removed rules stop matching in snapshots that still list them (after the new version is
  // out, so that a replaced action is never unenforced in between).
  for (const RulePtr& r : dying_) r->dead.store(true, std::memory_order_release);
  dying_.clear();
  if (old) retired_.push_back(old);
  if (retired_.size() >= kRetireBatch) reclaim_locked();
}

void Enforcer::reclaim_locked() {
  if (retired_.empty()) return;
  // Readers that saw a retired snapshot have published it by now (or will re-read current_).
  detail::HazardDomain& d = detail::HazardDomain::instance();
  d.heavy_barrier();
  size_t kept = 0;
  for (const Snapshot* s : retired_) {
    if (d.is_protected(s))
      retired_[kept++] = s;  // a reader is in it: next time
    else
      delete s;
  }
  retired_.resize(kept);
}

void Enforcer::insert_locked(const std::string& action_id, Entry e) {
  if (auto it = actions_.find(action_id); it != actions_.end()) erase_locked(it);
  const Rule& r = *e.rule;
  RuleIndex& added = r.field >= 0 ? state_.added_by_principal[r.field] : state_.added_by_call;
  added = added.with(index_key(r), e.rule);
  if (r.field == 3) {
    const std::pair<bool, int> len{r.value[0] == '6', static_cast<uint8_t>(r.value[1])};
    auto& lens = state_.prefix_lengths;
    if (std::find(lens.begin(), lens.end(), len) == lens.end()) lens.push_back(len);
  }
  ++added_;
  e.in_base = false;
  e.expiry = r.end_ns == INT64_MAX ? expiry_.end() : expiry_.emplace(r.end_ns, action_id);
  actions_.emplace(action_id, std::move(e));
}

StringMap<Enforcer::Entry>::iterator Enforcer::erase_locked(StringMap<Entry>::iterator it) {
  const Entry& e = it->second;
  const Rule& r = *e.rule;
  if (e.in_base) {
    ++dead_in_base_;
  } else {
    RuleIndex& added = r.field >= 0 ? state_.added_by_principal[r.field] : state_.added_by_call;
    added = added.without(index_key(r), &r);
    --added_;
  }
  dying_.push_back(e.rule);
  if (e.expiry != expiry_.end()) expiry_.erase(e.expiry);
  return actions_.erase(it);
}

void Enforcer::remember_locked(const immunizer::v1::Directive& d, const std::string& digest) {
  if (seen_.emplace(d.id(), Seen{d.signature(), digest}).second) {
    seen_order_.push_back(d.id());
    while (seen_order_.size() > opt_.replay_cache_size) {
      seen_.erase(seen_order_.front());
      seen_order_.pop_front();
    }
  }
}

bool Enforcer::verified_before(const immunizer::v1::Directive& d, const std::string& digest) {
  std::lock_guard lk(mu_);
  const auto it = seen_.find(d.id());
  return it != seen_.end() && it->second.digest == digest;
}

HandleResult Enforcer::counted(Outcome o, std::string reason) {
  counts_[static_cast<size_t>(o)].fetch_add(1, std::memory_order_relaxed);
  return HandleResult{o, std::move(reason)};
}

std::optional<HandleResult> Enforcer::check_key(const immunizer::v1::Directive& d) {
  if (d.signature().empty()) return counted(Outcome::kRejectedSignature, "unsigned");
  if (!opt_.trusted_keys || opt_.trusted_keys->find(d.key_id()) == nullptr)
    return counted(Outcome::kRejectedSignature,
                   "untrusted key id '" + d.key_id().substr(0, 64) + "'");
  return std::nullopt;
}

HandleResult Enforcer::handle(const immunizer::v1::Directive& d) {
  const int64_t now = clock_();
  if (auto r = check_key(d)) return std::move(*r);
  // The exact bytes of a directive verified before (execute replays every active directive
  // on each reconnect) verify again: skip the Ed25519 check, the dominant cost of a replay.
  const std::string digest = directive_digest(d);
  if (!verified_before(d, digest)) {
    verifications_.fetch_add(1, std::memory_order_relaxed);
    if (!verify(d, *opt_.trusted_keys))
      return counted(Outcome::kRejectedSignature, "bad signature");
  }
  std::lock_guard lk(mu_);
  return decide_locked(d, digest, now);
}

std::vector<HandleResult> Enforcer::handle(const immunizer::v1::DirectiveBatch& b,
                                           bool* batch_verified) {
  const int64_t now = clock_();
  std::vector<std::string> digests;
  digests.reserve(static_cast<size_t>(b.directives_size()));
  for (const auto& d : b.directives()) digests.push_back(directive_digest(d));
  bool ok = false;
  if (opt_.trusted_keys && !b.signature().empty() &&
      opt_.trusted_keys->find(b.key_id()) != nullptr) {
    verifications_.fetch_add(1, std::memory_order_relaxed);
    ok = verify(b, digests, *opt_.trusted_keys);
  }
  if (batch_verified) *batch_verified = ok;
  std::vector<HandleResult> out;
  out.reserve(digests.size());
  if (!ok) {  // forged or altered somewhere: each directive on its own signature
    for (const auto& d : b.directives()) out.push_back(handle(d));
    return out;
  }
  std::lock_guard lk(mu_);
  struct Batching {  // one publication for the batch, even when a decision throws
    Enforcer& e;
    explicit Batching(Enforcer& en) : e(en) { e.batching_ = true; }
    ~Batching() {
      e.batching_ = false;
      if (e.publish_pending_) e.publish_locked();
    }
  } batching(*this);
  for (int i = 0; i < b.directives_size(); ++i) {
    const auto& d = b.directives(i);
    if (auto r = check_key(d))
      out.push_back(std::move(*r));
    else
      out.push_back(decide_locked(d, digests[static_cast<size_t>(i)], now));
  }
  return out;
}

HandleResult Enforcer::decide_locked(const immunizer::v1::Directive& d, const std::string& digest,
                                     int64_t now) {
  if (d.id().empty()) return counted(Outcome::kRejectedInvalid, "no directive id");
  if (d.issued_unix_nanos() > now + opt_.max_clock_skew_ns)
    return counted(Outcome::kRejectedExpired, "issued in the future");
  if (d.expires_unix_nanos() != 0 && d.expires_unix_nanos() <= now)
    return counted(Outcome::kRejectedExpired, "expired");
  if (const auto it = seen_.find(d.id()); it != seen_.end()) {
    if (it->second.signature != d.signature())
      return counted(Outcome::kRejectedReplay, "directive id reused");
    const auto a = actions_.find(d.action().id());
    if (!d.revoke() && a != actions_.end() && a->second.directive_id == d.id()) {
      a->second.confirmed = true;
      return counted(Outcome::kDuplicate, "already applied");
    }
    if (d.revoke() && a == actions_.end()) return counted(Outcome::kDuplicate, "already revoked");
    // execute re-sent an active directive after our resync window dropped it: it is still
    // active there, so apply it again (never after a revoke: see apply_locked).
    if (!d.revoke() && a == actions_.end() && stale_.erase(d.action().id())) {
      HandleResult r = apply_locked(d, now);
      counts_[static_cast<size_t>(r.outcome)].fetch_add(1, std::memory_order_relaxed);
      return r;
    }
    return counted(Outcome::kRejectedReplay, "replayed");
  }
  HandleResult r = apply_locked(d, now);
  counts_[static_cast<size_t>(r.outcome)].fetch_add(1, std::memory_order_relaxed);
  if (accepted(r.outcome) || r.outcome == Outcome::kRejectedReplay) remember_locked(d, digest);
  return r;
}

HandleResult Enforcer::revoke_locked(const immunizer::v1::Directive& d) {
  const std::string& id = d.action().id();
  if (revoked_.emplace(id, true).second) {
    revoked_order_.push_back(id);
    while (revoked_order_.size() > opt_.replay_cache_size) {
      revoked_.erase(revoked_order_.front());
      revoked_order_.pop_front();
    }
  }
  if (const auto it = actions_.find(id); it != actions_.end()) {
    erase_locked(it);
    publish_locked();
  }
  return {Outcome::kRevoked, ""};
}

HandleResult Enforcer::apply_locked(const immunizer::v1::Directive& d, int64_t now) {
  const auto& a = d.action();
  if (a.id().empty()) return {Outcome::kRejectedInvalid, "no action id"};
  if (d.revoke()) return revoke_locked(d);
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
    case ActionKind::ACTION_WATCH_PRINCIPAL:  // denies nothing: watched() reports it
      rule->field = field_index(a.target_field());
      if (rule->field < 0) return {Outcome::kRejectedInvalid, "no target field"};
      if (a.target_value().empty()) return {Outcome::kRejectedInvalid, "no target value"};
      rule->value = a.target_value();
      if (rule->field == 3) {  // an ip prefix: indexed by family, length and network bytes
        const auto net = immunizer::v1::parse_network(a.target_value());
        if (!net) return {Outcome::kRejectedInvalid, "target value is not a network"};
        char key[kPrefixKeyMax];
        rule->value.assign(key, prefix_key(net->base.v6, net->bits, net->base.b.data(), key));
      }
      if (a.kind() != ActionKind::ACTION_WATCH_PRINCIPAL) rule->call = a.call();
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
  // A copy older than the directive that set this action (a replayed one handled after a live
  // one read ahead of it, see Inbox in effector.cpp) does not replace it.
  if (const auto it = actions_.find(a.id());
      it != actions_.end() && it->second.issued_ns > d.issued_unix_nanos()) {
    it->second.confirmed = true;
    return {Outcome::kDuplicate, "superseded by a newer directive"};
  }
  insert_locked(a.id(), Entry{std::move(rule), d.id(), d.signature(), true, expiry_.end(), false,
                              d.issued_unix_nanos()});
  publish_locked();
  return {Outcome::kApplied, ""};
}

size_t Enforcer::expire() {
  const int64_t now = clock_();
  std::lock_guard lk(mu_);
  size_t n = 0;
  while (!expiry_.empty() && expiry_.begin()->first <= now) {
    erase_locked(actions_.find(expiry_.begin()->second));
    ++n;
  }
  // The periodic tick folds the changes since the last base into a new one (reads go back to
  // one flat probe) and frees what the last batch of retired snapshots left.
  if (n || added_ > 0 || dead_in_base_ > 0) publish_locked(/*compact=*/true);
  reclaim_locked();
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
      it = erase_locked(it);
      ++n;
    } else {
      ++it;
    }
  }
  if (n) publish_locked();
  return n;
}

}  // namespace immunizer::effector
