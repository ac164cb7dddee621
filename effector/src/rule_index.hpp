// The effector's index of recent changes: a persistent (immutable, structurally shared) hash
// array mapped trie from a key (principal value or call name) to the rules that name it. Changing
// one key copies only the path to it (O(log32 n) nodes, each at most 32 pointers) and shares
// every other node with the previous version, so a directive is applied or removed in
// O(log n) whatever the number of active rules, while readers keep walking the old version.
// Thread-safety: a RuleIndex is immutable; any number of threads may read one. Nodes are
// reference-counted (shared_ptr): a version lives as long as someone holds its root.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "immunizer/v1/control.pb.h"

namespace immunizer::effector {

// Bucket of a Gcra-style token bucket lives in enforcer.hpp; a Rule only points at it.
class Gcra;

struct Rule {
  std::string action_id;
  immunizer::v1::ActionKind kind;
  int field = -1;  // 0 user, 1 session, 2 ip, 3 ip prefix; -1: no principal (DISABLE_CALL)
  std::string value;
  std::string call;  // empty: every call
  int64_t end_ns = INT64_MAX;
  std::shared_ptr<Gcra> bucket;  // THROTTLE only
  // Set once the action is removed (revoked, expired, replaced, dropped by a resync): a
  // snapshot's base index may still list the rule until its next rebuild.
  mutable std::atomic<bool> dead{false};
};

using RulePtr = std::shared_ptr<const Rule>;
using RuleList = std::vector<RulePtr>;

// 64-bit hash of a short key (IPs, user names, session ids, call names): a handful of
// multiplies, fixed-size loads only. Not keyed: the index holds only what execute signed.
uint64_t key_hash(std::string_view s) noexcept;

class RuleIndex {
 public:
  struct Set {  // the rules of one key
    std::string key;
    RuleList rules;
  };

  RuleIndex() = default;
  bool empty() const noexcept { return root_ == nullptr; }
  // The rules under `key` (hash = key_hash(key)), or nullptr. Allocation-free, no locks.
  const Set* find(uint64_t hash, std::string_view key) const noexcept;
  const Set* find(std::string_view key) const noexcept { return find(key_hash(key), key); }
  // A new version with `rule` added under `key` (this one is unchanged).
  RuleIndex with(std::string_view key, RulePtr rule) const;
  // A new version without `rule` under `key` (the same version when it is not there).
  RuleIndex without(std::string_view key, const Rule* rule) const;

  struct Node;
  struct Leaf;

 private:
  using Edit = std::function<RuleList(const RuleList*)>;
  explicit RuleIndex(std::shared_ptr<const Node> root) : root_(std::move(root)) {}
  RuleIndex edit(std::string_view key, const Edit& e) const;
  std::shared_ptr<const Node> root_;
};

// Keys whose 64-bit hashes are equal (practically always one).
struct RuleIndex::Leaf {
  uint64_t hash;
  std::vector<Set> sets;
};

// 32-way node: a bit per slot of the 5 hash bits at this depth, children in bit order.
struct RuleIndex::Node {
  uint32_t node_bits = 0;
  uint32_t leaf_bits = 0;
  std::vector<std::shared_ptr<const Node>> nodes;
  std::vector<std::shared_ptr<const Leaf>> leaves;
};

inline const RuleIndex::Set* RuleIndex::find(uint64_t hash, std::string_view key) const noexcept {
  const Node* n = root_.get();
  for (unsigned shift = 0; n != nullptr && shift < 64; shift += 5) {
    const uint32_t bit = 1u << ((hash >> shift) & 31);
    const uint32_t below = bit - 1;
    if (n->leaf_bits & bit) {
      const Leaf& l = *n->leaves[std::popcount(n->leaf_bits & below)];
      if (l.hash != hash) return nullptr;
      for (const Set& s : l.sets)
        if (s.key == key) return &s;
      return nullptr;
    }
    if ((n->node_bits & bit) == 0) return nullptr;
    n = n->nodes[std::popcount(n->node_bits & below)].get();
  }
  return nullptr;
}

}  // namespace immunizer::effector
