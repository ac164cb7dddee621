// The effector's decision core, without any transport: verifies directives, keeps the set of
// active actions and answers allows(). Writers (handle, expire, resync) are serialised by an
// internal mutex; readers (allows) are lock-free: they read an immutable Snapshot published
// through an atomic pointer, protected by a per-thread hazard pointer (hazard.hpp) so that a
// writer frees an old snapshot only once no reader can still hold it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/effector.hpp"
#include "immunizer/v1/control.pb.h"

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

struct Rule {
  std::string action_id;
  immunizer::v1::ActionKind kind;
  int field = -1;  // 0 user, 1 session, 2 ip; -1: no principal (DISABLE_CALL)
  std::string value;
  std::string call;  // empty: every call
  int64_t end_ns = INT64_MAX;
  std::shared_ptr<Gcra> bucket;  // THROTTLE only; survives snapshot rebuilds
};

// Open-addressing string -> rule list index, built once per snapshot, read lock-free.
// Keys are views into the snapshot's own rules.
class FlatIndex {
 public:
  void build(const StringMap<std::vector<const Rule*>>& from);
  bool empty() const noexcept { return lists_.empty(); }
  const std::vector<const Rule*>* find(std::string_view key) const noexcept {
    if (lists_.empty()) return nullptr;
    const uint64_t h = hash(key);
    for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.list == 0) return nullptr;
      if (s.hash == h && s.key == key) return &lists_[s.list - 1];
    }
  }
  static uint64_t hash(std::string_view s) noexcept;  // defined in enforcer.cpp

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

struct Snapshot {
  std::vector<std::shared_ptr<const Rule>> rules;  // owns what the indexes point at
  std::array<FlatIndex, 3> by_principal;           // user, session, ip
  FlatIndex by_call;                               // DISABLE_CALL
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
  // Lock-free. False when an active action denies the call.
  bool allows(const PrincipalView& p, std::string_view call) const noexcept;
  size_t expire();      // removes actions whose end has passed; returns how many
  void begin_resync();  // every action must be seen again ...
  size_t end_resync();  // ... or is dropped now; returns how many were dropped
  size_t active() const noexcept { return active_.load(std::memory_order_acquire); }
  uint64_t count(Outcome o) const noexcept {
    return counts_[static_cast<size_t>(o)].load(std::memory_order_relaxed);
  }
  int64_t now() const { return clock_(); }

 private:
  struct Entry {
    std::shared_ptr<const Rule> rule;
    std::string directive_id;
    std::string signature;
    bool confirmed = true;
  };
  struct Seen {
    std::string signature;
  };
  HandleResult apply_locked(const immunizer::v1::Directive& d, int64_t now);
  void remember_locked(const immunizer::v1::Directive& d);
  void publish_locked();

  EnforcerOptions opt_;
  Clock clock_;
  std::mutex mu_;
  StringMap<Entry> actions_;  // by action id
  StringMap<Seen> seen_;      // by directive id
  std::deque<std::string> seen_order_;
  StringMap<bool> stale_;    // action ids dropped by end_resync (not revoked)
  StringMap<bool> revoked_;  // action ids lifted by a revoke
  std::deque<std::string> revoked_order_;

  const bool light_;  // readers may skip the store fence (membarrier on the writer side)
  std::atomic<const Snapshot*> current_{nullptr};
  std::atomic<size_t> active_{0};
  std::array<std::atomic<uint64_t>, kOutcomes> counts_{};
};

}  // namespace immunizer::effector
