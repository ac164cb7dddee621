// The effector's decision core, without any transport: verifies directives, keeps the set of
// active actions and answers allows(). Writers (handle, expire, resync) are serialised by an
// internal mutex; readers (allows) are lock-free: they read an immutable Snapshot published
// through an atomic pointer, protected by a per-thread hazard pointer (hazard.hpp) so that a
// writer frees an old snapshot only once no reader can still hold it. Changes are
// incremental: a directive applied, revoked or expired changes one key of a persistent index
// (rule_index.hpp) in O(log n), and old snapshots are reclaimed in batches (one barrier for
// many), so a replay of n directives costs O(n log n), not O(n^2). Reads stay one probe of a
// flat index: changes are folded into it at the housekeeping tick (see Snapshot).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/effector.hpp"
#include "immunizer/v1/control.pb.h"
#include "rule_index.hpp"

namespace immunizer::effector {

enum class Outcome : uint8_t {
  kApplied,
  kRevoked,
  kDuplicate,
  kIgnored,
  kRejectedSignature,
  kRejectedExpired,
  kRejectedReplay,
  kRejectedInvalid,
};
inline constexpr size_t kOutcomes = 8;
std::string_view to_string(Outcome o) noexcept;
inline bool accepted(Outcome o) { return o <= Outcome::kIgnored; }

struct HandleResult {
  Outcome outcome;
  std::string reason;  // human readable, sent back in the ack
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// Generic cell rate algorithm: a token bucket in one atomic (theoretical arrival time).
class Gcra {
 public:
  Gcra(double rate_per_second, double burst);
  bool take(int64_t now_ns) noexcept;

 private:
  int64_t interval_ns_;
  int64_t tolerance_ns_;
  bool deny_all_;
  std::atomic<int64_t> tat_{0};
};

// Open-addressing key -> rules index, built in one go from every active rule, read lock-free:
// one probe for a key that is not listed (load factor <= 0.5). Keys are views into the rules.
class FlatIndex {
 public:
  void build(const StringMap<std::vector<const Rule*>>& from);
  bool empty() const noexcept { return lists_.empty(); }
  const std::vector<const Rule*>* find(uint64_t h, std::string_view key) const noexcept {
    if (lists_.empty()) return nullptr;
    for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.list == 0) return nullptr;
      if (s.hash == h && s.key == key) return &lists_[s.list - 1];
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    std::string_view key;
    uint32_t list = 0;  // index + 1 into lists_; 0: empty slot
  };
  std::vector<Slot> slots_;
  std::vector<std::vector<const Rule*>> lists_;
  uint64_t mask_ = 0;
};

// Every rule active when it was built, indexed flat for the fastest reads.
struct BaseIndex {
  std::vector<RulePtr> rules;             // owns what the indexes point at
  std::array<FlatIndex, 4> by_principal;  // user, session, ip, ip prefix
  FlatIndex by_call;
};

// Index key of an ip-prefix rule, and of a client address masked to one prefix length:
// family, length, masked address bytes. `out` holds at least kPrefixKeyMax bytes.
inline constexpr size_t kPrefixKeyMax = 18;
size_t prefix_key(bool v6, int bits, const uint8_t* masked_bytes, char* out) noexcept;

// The version readers see: the base, plus the rules added since it was built (persistent
// tries, changed in O(log n) per directive). Rules removed since are marked dead. The base is
// rebuilt (O(n)) when the changes since outgrow it or at the housekeeping tick, so a change
// costs O(log n) amortized and a quiet effector reads the flat base only.
struct Snapshot {
  std::shared_ptr<const BaseIndex> base;
  std::array<RuleIndex, 4> added_by_principal;  // user, session, ip, ip prefix
  // The (family, length) pairs of every ip-prefix rule applied so far (an address is masked
  // to each; at most 33 + 129, never shrunk: a stale length costs one lookup).
  std::vector<std::pair<bool, int>> prefix_lengths;
  RuleIndex added_by_call;  // DISABLE_CALL
};

struct EnforcerOptions {
  // Public keys whose directives are accepted (execute's; several during a rotation).
  std::shared_ptr<const crypto::KeyRing> trusted_keys;
  int64_t max_clock_skew_ns = 30'000'000'000;
  size_t replay_cache_size = 100000;
};

class Enforcer {
 public:
  using Clock = std::function<int64_t()>;  // unix time in nanoseconds
  Enforcer(EnforcerOptions options, Clock clock);
  ~Enforcer();
  Enforcer(const Enforcer&) = delete;
  Enforcer& operator=(const Enforcer&) = delete;

  HandleResult handle(const immunizer::v1::Directive& d);
  // A batch from execute's replay: one Ed25519 check of the batch signature covers every
  // directive's exact bytes, then each is decided as handle() does, all under one lock and
  // published once (readers see the whole batch at once). When the batch signature does not
  // verify (`*batch_verified` false), each directive is verified alone. One result each.
  std::vector<HandleResult> handle(const immunizer::v1::DirectiveBatch& b,
                                   bool* batch_verified = nullptr);
  // Lock-free. False when an active action denies the call.
  bool allows(const PrincipalView& p, std::string_view call) const noexcept;
  // Lock-free. True when an active ACTION_WATCH_PRINCIPAL names any field of `p`.
  bool watched(const PrincipalView& p) const noexcept;
  size_t expire();      // removes actions whose end has passed; returns how many. O(k log n).
  void begin_resync();  // every action must be seen again ...
  size_t end_resync();  // ... or is dropped now; returns how many were dropped
  size_t active() const noexcept { return active_.load(std::memory_order_acquire); }
  uint64_t count(Outcome o) const noexcept {
    return counts_[static_cast<size_t>(o)].load(std::memory_order_relaxed);
  }
  int64_t now() const { return clock_(); }
  // Ed25519 verifications done so far (directives and batches).
  uint64_t verifications() const noexcept { return verifications_.load(std::memory_order_relaxed); }

 private:
  // True when a live rule listed under a field of `p` (or under `call`, if by_call) has
  // match(rule) true. Lock-free (hazard pointer on the current snapshot).
  template <class Match>
  bool any_rule(const PrincipalView& p, std::string_view call, bool by_call,
                Match&& match) const noexcept;
  using Expiry = std::multimap<int64_t, std::string>;  // end -> action id
  struct Entry {
    RulePtr rule;
    std::string directive_id;
    std::string signature;
    bool confirmed = true;
    Expiry::iterator expiry;
    bool in_base = false;   // false: in the snapshot's added tries
    int64_t issued_ns = 0;  // the directive's issued_unix_nanos
  };
  struct Seen {
    std::string signature;
    std::string digest;  // of the verified bytes: the same directive again needs no verify
  };
  bool verified_before(const immunizer::v1::Directive& d, const std::string& digest);
  HandleResult counted(Outcome o, std::string reason);
  // Unsigned, or signed by a key not trusted: the result; else nothing.
  std::optional<HandleResult> check_key(const immunizer::v1::Directive& d);
  // Everything after the signature: id, time, replay, then apply or revoke. Counts the result.
  HandleResult decide_locked(const immunizer::v1::Directive& d, const std::string& digest,
                             int64_t now);
  HandleResult apply_locked(const immunizer::v1::Directive& d, int64_t now);
  HandleResult revoke_locked(const immunizer::v1::Directive& d);
  void remember_locked(const immunizer::v1::Directive& d, const std::string& digest);
  void insert_locked(const std::string& action_id, Entry e);  // replaces an entry of that id
  StringMap<Entry>::iterator erase_locked(StringMap<Entry>::iterator it);
  void rebuild_base_locked();
  void publish_locked(bool compact = false);  // compact: fold the changes into a new base
  void reclaim_locked();

  EnforcerOptions opt_;
  Clock clock_;
  std::mutex mu_;
  StringMap<Entry> actions_;              // by action id
  Expiry expiry_;                         // actions with an end, by end
  Snapshot state_;                        // the latest version (what current_ points at, or empty)
  size_t added_ = 0;                      // rules in state_'s added tries
  size_t dead_in_base_ = 0;               // rules of state_.base removed since it was built
  std::vector<RulePtr> dying_;            // removed: marked dead once the next version is published
  std::vector<const Snapshot*> retired_;  // swapped out, freed once no reader holds them
  StringMap<Seen> seen_;                  // by directive id
  std::deque<std::string> seen_order_;
  StringMap<bool> stale_;    // action ids dropped by end_resync (not revoked)
  StringMap<bool> revoked_;  // action ids lifted by a revoke
  std::deque<std::string> revoked_order_;

  bool batching_ = false;         // guarded by mu_: publish_locked() defers to the batch's end
  bool publish_pending_ = false;  // guarded by mu_: a change waits for that publication

  const bool light_;  // readers may skip the store fence (membarrier on the writer side)
  std::atomic<uint64_t> verifications_{0};
  std::atomic<const Snapshot*> current_{nullptr};
  std::atomic<size_t> active_{0};
  std::array<std::atomic<uint64_t>, kOutcomes> counts_{};
};

}  // namespace immunizer::effector
