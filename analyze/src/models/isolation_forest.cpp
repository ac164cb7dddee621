#include "immunizer/analyze/models/isolation_forest.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

#include "immunizer/common/byte_codec.hpp"
#include "models/rng.hpp"

namespace immunizer::analyze {

namespace {

constexpr double kEulerGamma = 0.5772156649015329;
constexpr uint32_t kForestMagic = 0x54534649;  // "IFST"
constexpr uint32_t kForestVersion = 2;

double harmonic(double i) {
  if (i < 16) {
    double h = 0;
    for (int k = 1; k <= static_cast<int>(i); ++k) h += 1.0 / k;
    return h;
  }
  const double i2 = i * i;  // asymptotic expansion, exact to ~1e-12 here
  return std::log(i) + kEulerGamma + 1.0 / (2 * i) - 1.0 / (12 * i2) + 1.0 / (120 * i2 * i2);
}

// Builds one tree over the rows listed in idx (a private copy per tree).
class TreeBuilder {
 public:
  struct Node {
    double value;
    uint32_t feature;
    uint32_t left;
  };

  TreeBuilder(const Matrix& data, Rng& rng, int max_depth, double c_psi)
      : data_(data), rng_(rng), max_depth_(max_depth), inv_c_(1.0 / c_psi), features_(data.cols) {
    for (std::size_t j = 0; j < data.cols; ++j) features_[j] = static_cast<uint32_t>(j);
  }

  void build(std::vector<uint32_t>& idx, std::vector<Node>& nodes, std::vector<uint32_t>& counts) {
    nodes_ = &nodes;
    counts_ = &counts;
    idx_ = idx.data();
    nodes.push_back({});
    counts.push_back(0);
    grow(0, 0, idx.size(), 0);
  }

 private:
  void make_leaf(uint32_t node, std::size_t n, int depth) {
    (*nodes_)[node] = {(depth + average_path_length(static_cast<double>(n))) * inv_c_, 0xFFFFFFFFu,
                       0};
  }

  void grow(uint32_t node, std::size_t begin, std::size_t end, int depth) {
    const std::size_t n = end - begin;
    (*counts_)[node] = static_cast<uint32_t>(n);
    if (depth >= max_depth_ || n <= 1) return make_leaf(node, n, depth);
    // Draw features without replacement until one is not constant on this node; a node whose
    // points are all identical becomes a leaf (its c(n) accounts for the tied points).
    const std::size_t d = features_.size();
    for (std::size_t k = 0; k < d; ++k) {
      const std::size_t pick = k + rng_.below(d - k);
      std::swap(features_[k], features_[pick]);
      const uint32_t f = features_[k];
      double lo = data_.at(idx_[begin], f), hi = lo;
      for (std::size_t i = begin + 1; i < end; ++i) {
        const double v = data_.at(idx_[i], f);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      if (!(hi > lo)) continue;  // constant here (or NaN): try another feature
      double split = lo + rng_.uniform() * (hi - lo);
      if (split <= lo) split = std::nextafter(lo, hi);  // left gets x < split: keep both sides
      const auto mid = std::partition(idx_ + begin, idx_ + end,
                                      [&](uint32_t r) { return data_.at(r, f) < split; }) -
                       idx_;
      const auto left = static_cast<uint32_t>(nodes_->size());
      (*nodes_)[node] = {split, f, left};
      nodes_->resize(nodes_->size() + 2);
      counts_->resize(counts_->size() + 2);
      grow(left, begin, static_cast<std::size_t>(mid), depth + 1);
      grow(left + 1, static_cast<std::size_t>(mid), end, depth + 1);
      return;
    }
    make_leaf(node, n, depth);
  }

  const Matrix& data_;
  Rng& rng_;
  int max_depth_;
  double inv_c_;  // leaves store normalised path lengths, so trees of any psi mix
  std::vector<uint32_t> features_;
  std::vector<Node>* nodes_ = nullptr;
  std::vector<uint32_t>* counts_ = nullptr;
  uint32_t* idx_ = nullptr;
};

// psi distinct rows out of n (Floyd's algorithm over a bitmap), O(psi + n / 64).
std::vector<uint32_t> sample_rows(std::size_t n, std::size_t psi, Rng& rng) {
  std::vector<uint32_t> out;
  out.reserve(psi);
  if (psi >= n) {
    for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<uint32_t>(i));
    return out;
  }
  std::vector<uint64_t> taken((n + 63) / 64, 0);
  for (std::size_t j = n - psi; j < n; ++j) {
    std::size_t t = rng.below(j + 1);
    if (taken[t >> 6] >> (t & 63) & 1) t = j;
    taken[t >> 6] |= 1ull << (t & 63);
    out.push_back(static_cast<uint32_t>(t));
  }
  return out;
}

}  // namespace

double average_path_length(double n) {
  if (n <= 1) return 0.0;
  if (n <= 2) return 1.0;
  return 2.0 * harmonic(n - 1) - 2.0 * (n - 1) / n;
}

IsolationForest IsolationForest::fit(const Matrix& data, const ForestParams& p) {
  if (data.rows == 0 || data.cols == 0) throw std::invalid_argument("isolation forest: no data");
  if (data.cols >= kLeaf) throw std::invalid_argument("isolation forest: too many columns");
  if (p.trees <= 0 || p.sample_size <= 1)
    throw std::invalid_argument("isolation forest: bad params");
  if (data.rows > 0xFFFFFFFFull) throw std::invalid_argument("isolation forest: too many rows");

  IsolationForest f;
  f.dims_ = data.cols;
  f.psi_ = std::min<std::size_t>(static_cast<std::size_t>(p.sample_size), data.rows);
  f.c_psi_ = std::max(average_path_length(static_cast<double>(f.psi_)), 1.0);
  auto tree_psi = [&](int t) {
    if (p.mixed_sample_size > 1 && t % 2 == 1)
      return std::min<std::size_t>(static_cast<std::size_t>(p.mixed_sample_size), data.rows);
    return f.psi_;
  };
  auto depth_for = [&](std::size_t psi) {
    const int d =
        p.max_depth > 0
            ? p.max_depth
            : static_cast<int>(std::ceil(std::log2(std::max<double>(static_cast<double>(psi), 2))));
    return std::min(d, 64);  // no tree of <= 2^32 points needs more
  };

  // Each tree has its own RNG stream, so the forest does not depend on the thread count.
  std::vector<std::vector<TreeBuilder::Node>> tree_nodes(p.trees);
  std::vector<std::vector<uint32_t>> tree_counts(p.trees);
  std::atomic<int> next{0};
  auto work = [&] {
    for (int t = next++; t < p.trees; t = next++) {
      Rng rng(p.seed, static_cast<uint64_t>(t) + 1);
      const std::size_t psi = tree_psi(t);
      auto idx = sample_rows(data.rows, psi, rng);
      TreeBuilder(data, rng, depth_for(psi),
                  std::max(average_path_length(static_cast<double>(psi)), 1.0))
          .build(idx, tree_nodes[t], tree_counts[t]);
    }
  };
  const int threads = std::clamp(p.threads, 1, p.trees);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();

  std::size_t total = 0;
  for (const auto& t : tree_nodes) total += t.size();
  f.nodes_.reserve(total);
  f.counts_.reserve(total);
  f.leaf_.reserve(total);
  for (int t = 0; t < p.trees; ++t) {
    f.roots_.push_back(static_cast<uint32_t>(f.nodes_.size()));
    f.depths_.push_back(static_cast<uint8_t>(std::min(depth_for(tree_psi(t)), 255)));
    for (std::size_t i = 0; i < tree_nodes[t].size(); ++i) {
      const auto& n = tree_nodes[t][i];
      if (n.feature == kLeaf) {
        f.nodes_.push_back(leaf_node(static_cast<uint32_t>(i)));
        f.leaf_.push_back(n.value);
      } else {
        f.nodes_.push_back({n.value, n.feature, n.left});
        f.leaf_.push_back(0.0);
      }
    }
    f.counts_.insert(f.counts_.end(), tree_counts[t].begin(), tree_counts[t].end());
  }
  return f;
}

// Leaves loop onto themselves (value NaN: "x < NaN" is false, so the walk takes left + 1 ==
// the leaf), which lets every walk run a fixed number of steps without a data-dependent
// branch, and several trees or rows advance in lockstep.
IsolationForest::Node IsolationForest::leaf_node(uint32_t index) {
  return {std::numeric_limits<double>::quiet_NaN(), 0,
          index - 1};  // unsigned: root leaf wraps to 0
}

inline uint32_t IsolationForest::step(const Node* tree, uint32_t i, const double* x) {
  const Node& n = tree[i];
  return n.left + static_cast<uint32_t>(!(x[n.feature] < n.value));
}

double IsolationForest::sum_leaves(const double* x) const {
  constexpr std::size_t kLanes = 4;  // independent walks in flight
  const std::size_t t = roots_.size();
  double sum = 0;
  std::size_t k = 0;
  for (; k + kLanes <= t; k += kLanes) {
    const Node* tr[kLanes];
    uint32_t at[kLanes] = {};
    int depth = 0;
    for (std::size_t l = 0; l < kLanes; ++l) {
      tr[l] = nodes_.data() + roots_[k + l];
      depth = std::max<int>(depth, depths_[k + l]);
    }
    for (int d = 0; d < depth; ++d)
      for (std::size_t l = 0; l < kLanes; ++l) at[l] = step(tr[l], at[l], x);
    for (std::size_t l = 0; l < kLanes; ++l) sum += leaf_[roots_[k + l] + at[l]];
  }
  for (; k < t; ++k) {
    uint32_t at = 0;
    const Node* tree = nodes_.data() + roots_[k];
    for (int d = 0; d < depths_[k]; ++d) at = step(tree, at, x);
    sum += leaf_[roots_[k] + at];
  }
  return sum;
}

double IsolationForest::mean_path_length(std::span<const double> x) const {
  if (x.size() != dims_) throw std::invalid_argument("isolation forest: wrong vector size");
  return sum_leaves(x.data()) / static_cast<double>(roots_.size()) * c_psi_;
}

double IsolationForest::score(std::span<const double> x) const {
  if (x.size() != dims_) throw std::invalid_argument("isolation forest: wrong vector size");
  return score_of_sum(sum_leaves(x.data()));
}

template <typename RowAt>
void IsolationForest::sum_leaves_block(const RowAt& row_at, std::size_t r0, std::size_t r1,
                                       double* acc) const {
  constexpr std::size_t kLanes = 8;  // rows walking one tree in lockstep
  for (std::size_t t = 0; t < roots_.size(); ++t) {
    const Node* tree = nodes_.data() + roots_[t];
    const double* leaf = leaf_.data() + roots_[t];
    const int depth = depths_[t];
    std::size_t r = r0;
    for (; r + kLanes <= r1; r += kLanes) {
      uint32_t at[kLanes] = {};
      const double* x[kLanes];
      for (std::size_t l = 0; l < kLanes; ++l) x[l] = row_at(r + l);
      for (int d = 0; d < depth; ++d)
        for (std::size_t l = 0; l < kLanes; ++l) at[l] = step(tree, at[l], x[l]);
      for (std::size_t l = 0; l < kLanes; ++l) acc[r + l - r0] += leaf[at[l]];
    }
    for (; r < r1; ++r) {
      uint32_t at = 0;
      const double* x = row_at(r);
      for (int d = 0; d < depth; ++d) at = step(tree, at, x);
      acc[r - r0] += leaf[at];
    }
  }
}

// Blocks of kBlock rows: one tree stays hot in L1 for all of them.
constexpr std::size_t kBlock = 64;

void IsolationForest::sum_leaves_rows(std::span<const double* const> rows, double* sums) const {
  // Each row's sum adds its trees' leaves in tree order from 0, as sum_leaves() does, so the
  // result is the same to the bit.
  for (std::size_t r0 = 0; r0 < rows.size(); r0 += kBlock) {
    const std::size_t r1 = std::min(rows.size(), r0 + kBlock);
    std::fill(sums + r0, sums + r1, 0.0);
    sum_leaves_block([&](std::size_t r) { return rows[r]; }, r0, r1, sums + r0);
  }
}

void IsolationForest::score_batch(const Matrix& data, std::span<double> out, int threads) const {
  if (data.cols != dims_ || out.size() != data.rows)
    throw std::invalid_argument("isolation forest: batch shape mismatch");
  const std::size_t blocks = (data.rows + kBlock - 1) / kBlock;
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    double acc[kBlock];
    for (std::size_t b = next++; b < blocks; b = next++) {
      const std::size_t r0 = b * kBlock, r1 = std::min(data.rows, r0 + kBlock);
      std::fill(acc, acc + kBlock, 0.0);
      sum_leaves_block([&](std::size_t r) { return data.values.data() + r * dims_; }, r0, r1, acc);
      const double k = 1.0 / static_cast<double>(roots_.size());
      for (std::size_t r = r0; r < r1; ++r) out[r] = std::exp2(-acc[r - r0] * k);
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < threads && static_cast<std::size_t>(i) < blocks; ++i) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
}

std::vector<double> IsolationForest::attribution(std::span<const double> x) const {
  if (x.size() != dims_) throw std::invalid_argument("isolation forest: wrong vector size");
  std::vector<double> credit(dims_, 0.0);
  for (const uint32_t root : roots_) {
    const Node* tree = nodes_.data() + root;
    const uint32_t* counts = counts_.data() + root;
    uint32_t i = 0;
    while (!std::isnan(tree[i].value)) {
      const uint32_t child = step(tree, i, x.data());
      credit[tree[i].feature] +=
          std::log2(static_cast<double>(counts[i]) / std::max<uint32_t>(counts[child], 1));
      i = child;
    }
  }
  for (auto& c : credit) c /= static_cast<double>(roots_.size());
  return credit;
}

std::size_t IsolationForest::memory_bytes() const {
  return sizeof(*this) + nodes_.capacity() * sizeof(Node) + leaf_.capacity() * sizeof(double) +
         roots_.capacity() * sizeof(uint32_t) + depths_.capacity() +
         counts_.capacity() * sizeof(uint32_t);
}

std::string IsolationForest::serialize() const {
  common::ByteWriter w;
  w.put_header(kForestMagic, kForestVersion);
  w.put<uint64_t>(dims_);
  w.put<uint64_t>(psi_);
  w.put(c_psi_);
  w.put<uint64_t>(nodes_.size());
  for (const Node& n : nodes_) {
    w.put(n.value);
    w.put(n.feature);
    w.put(n.left);
  }
  w.put_vector(leaf_);
  w.put_vector(roots_);
  w.put_vector(depths_);
  w.put_vector(counts_);
  return w.take();
}

IsolationForest IsolationForest::deserialize(std::string_view bytes) {
  common::ByteReader r(bytes, "forest");
  r.get_header(kForestMagic, kForestVersion);
  IsolationForest f;
  f.dims_ = r.get<uint64_t>();
  f.psi_ = r.get<uint64_t>();
  f.c_psi_ = r.get<double>();
  const auto nodes = r.get<uint64_t>();
  if (nodes > r.remaining() / sizeof(Node)) throw std::runtime_error("forest: corrupt");
  f.nodes_.resize(nodes);
  for (Node& n : f.nodes_) {
    n.value = r.get<double>();
    n.feature = r.get<uint32_t>();
    n.left = r.get<uint32_t>();
  }
  f.leaf_ = r.get_vector<double>();
  f.roots_ = r.get_vector<uint32_t>();
  f.depths_ = r.get_vector<uint8_t>();
  f.counts_ = r.get_vector<uint32_t>();
  // Validate the structure so that scoring a corrupt snapshot can never read out of bounds.
  if (f.counts_.size() != f.nodes_.size() || f.leaf_.size() != f.nodes_.size() ||
      f.depths_.size() != f.roots_.size() || !(f.c_psi_ > 0))
    throw std::runtime_error("forest: corrupt");
  for (std::size_t t = 0; t < f.roots_.size(); ++t) {
    const std::size_t begin = f.roots_[t];
    const std::size_t end = t + 1 < f.roots_.size() ? f.roots_[t + 1] : f.nodes_.size();
    if (begin >= end || end > f.nodes_.size())
      throw std::runtime_error("forest: corrupt tree offsets");
    for (std::size_t i = begin; i < end; ++i) {
      const Node& n = f.nodes_[i];
      const auto local = static_cast<uint32_t>(i - begin);
      if (std::isnan(n.value)) {
        if (n.feature != 0 || n.left + 1 != local) throw std::runtime_error("forest: corrupt leaf");
        continue;
      }
      // Children come after their parent, so walks stay inside the tree.
      if (n.feature >= f.dims_ || n.left <= local || begin + n.left + 1 >= end)
        throw std::runtime_error("forest: corrupt node");
    }
  }
  return f;
}

}  // namespace immunizer::analyze
