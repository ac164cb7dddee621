#include "rule_index.hpp"

#include <algorithm>
#include <cstring>

namespace immunizer::effector {

uint64_t key_hash(std::string_view s) noexcept {
  // Tails read as two overlapping words: no variable-length memcpy call.
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

namespace {

using Node = RuleIndex::Node;
using Leaf = RuleIndex::Leaf;
using NodePtr = std::shared_ptr<const Node>;
using LeafPtr = std::shared_ptr<const Leaf>;
using Edit = std::function<RuleList(const RuleList*)>;

uint32_t bit_at(uint64_t hash, unsigned shift) { return 1u << ((hash >> shift) & 31); }
size_t rank(uint32_t bits, uint32_t bit) { return std::popcount(bits & (bit - 1)); }

// Puts `x` into the slot of `bit` in a compressed array (the entries of the bits set, in bit
// order), or takes the slot out.
template <typename Ptr>
void put_slot(std::vector<Ptr>& v, uint32_t& bits, uint32_t bit, Ptr x) {
  v.insert(v.begin() + static_cast<ptrdiff_t>(rank(bits, bit)), std::move(x));
  bits |= bit;
}
template <typename Ptr>
void drop_slot(std::vector<Ptr>& v, uint32_t& bits, uint32_t bit) {
  v.erase(v.begin() + static_cast<ptrdiff_t>(rank(bits, bit)));
  bits &= ~bit;
}
void put_leaf(Node& n, uint32_t bit, LeafPtr l) {
  put_slot(n.leaves, n.leaf_bits, bit, std::move(l));
}
void drop_leaf(Node& n, uint32_t bit) { drop_slot(n.leaves, n.leaf_bits, bit); }
void put_node(Node& n, uint32_t bit, NodePtr c) {
  put_slot(n.nodes, n.node_bits, bit, std::move(c));
}
void drop_node(Node& n, uint32_t bit) { drop_slot(n.nodes, n.node_bits, bit); }
NodePtr publish(Node&& n) {
  if (n.node_bits == 0 && n.leaf_bits == 0) return nullptr;
  return std::make_shared<const Node>(std::move(n));
}

// `l` (may be null) with the rules of `key` replaced by edit(old); null when nothing is left.
LeafPtr edit_leaf(const Leaf* l, uint64_t hash, std::string_view key, const Edit& edit) {
  Leaf out{hash, l ? l->sets : std::vector<RuleIndex::Set>{}};
  auto it = std::find_if(out.sets.begin(), out.sets.end(),
                         [&](const RuleIndex::Set& s) { return s.key == key; });
  RuleList rules = edit(it == out.sets.end() ? nullptr : &it->rules);
  if (it != out.sets.end()) {
    if (rules.empty())
      out.sets.erase(it);
    else
      it->rules = std::move(rules);
  } else if (!rules.empty()) {
    out.sets.push_back(RuleIndex::Set{std::string(key), std::move(rules)});
  }
  if (out.sets.empty()) return nullptr;
  return std::make_shared<const Leaf>(std::move(out));
}

// A node holding two leaves whose hashes agree below `shift` and differ somewhere above it.
NodePtr pair(LeafPtr a, LeafPtr b, unsigned shift) {
  Node n;
  const uint32_t ba = bit_at(a->hash, shift), bb = bit_at(b->hash, shift);
  if (ba != bb) {
    put_leaf(n, ba, std::move(a));
    put_leaf(n, bb, std::move(b));
  } else {
    put_node(n, ba, pair(std::move(a), std::move(b), shift + 5));
  }
  return publish(std::move(n));
}

NodePtr edit_node(const NodePtr& np, unsigned shift, uint64_t hash, std::string_view key,
                  const Edit& edit) {
  const uint32_t bit = bit_at(hash, shift);
  if (!np) {
    LeafPtr l = edit_leaf(nullptr, hash, key, edit);
    if (!l) return nullptr;
    Node n;
    put_leaf(n, bit, std::move(l));
    return publish(std::move(n));
  }
  const Node& n = *np;
  if (n.leaf_bits & bit) {
    const LeafPtr& l = n.leaves[rank(n.leaf_bits, bit)];
    Node out = n;
    if (l->hash == hash) {
      LeafPtr nl = edit_leaf(l.get(), hash, key, edit);
      drop_leaf(out, bit);
      if (nl) put_leaf(out, bit, std::move(nl));
      return publish(std::move(out));
    }
    LeafPtr nl = edit_leaf(nullptr, hash, key, edit);
    if (!nl) return np;  // removing a key that is not there
    LeafPtr old = l;
    drop_leaf(out, bit);
    put_node(out, bit, pair(std::move(old), std::move(nl), shift + 5));
    return publish(std::move(out));
  }
  if (n.node_bits & bit) {
    const NodePtr& c = n.nodes[rank(n.node_bits, bit)];
    NodePtr nc = edit_node(c, shift + 5, hash, key, edit);
    if (nc == c) return np;
    Node out = n;
    drop_node(out, bit);
    if (nc && nc->node_bits == 0 && std::popcount(nc->leaf_bits) == 1)
      put_leaf(out, bit, nc->leaves.front());  // a lone leaf moves up: paths stay short
    else if (nc)
      put_node(out, bit, std::move(nc));
    return publish(std::move(out));
  }
  LeafPtr nl = edit_leaf(nullptr, hash, key, edit);
  if (!nl) return np;
  Node out = n;
  put_leaf(out, bit, std::move(nl));
  return publish(std::move(out));
}

}  // namespace

RuleIndex RuleIndex::edit(std::string_view key, const Edit& e) const {
  return RuleIndex(edit_node(root_, 0, key_hash(key), key, e));
}

RuleIndex RuleIndex::with(std::string_view key, RulePtr rule) const {
  return edit(key, [&](const RuleList* old) {
    RuleList out = old ? *old : RuleList{};
    out.push_back(rule);
    return out;
  });
}

RuleIndex RuleIndex::without(std::string_view key, const Rule* rule) const {
  const Set* s = find(key);
  if (s == nullptr || std::none_of(s->rules.begin(), s->rules.end(),
                                   [&](const RulePtr& r) { return r.get() == rule; }))
    return *this;
  return edit(key, [&](const RuleList* old) {
    RuleList out;
    for (const RulePtr& r : *old)
      if (r.get() != rule) out.push_back(r);
    return out;
  });
}

}  // namespace immunizer::effector
