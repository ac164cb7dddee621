// Isolation forest (Liu, Ting, Zhou, ICDM 2008) over a flat array of 16-byte nodes.
// A fitted forest is immutable: score/explain are const and safe from many threads at once.
// The forest owns its nodes; fit() copies what it needs from the caller's matrix.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "immunizer/analyze/models/matrix.hpp"

namespace immunizer::analyze {

// c(n): average path length of an unsuccessful search in a binary search tree of n points;
// the normalisation of the paper (0 for n <= 1, 1 for n == 2).
double average_path_length(double n);

struct ForestParams {
  int trees = 100;        // t in the paper
  int sample_size = 256;  // psi; clamped to the number of training rows
  // > 0: a multi-scale forest, every odd tree is grown on this many points instead; each
  // tree's path length is normalised by its own c(psi), so scores stay in (0, 1].
  int mixed_sample_size = 0;
  int max_depth = 0;  // 0 = ceil(log2 psi), the paper's height limit
  uint64_t seed = 0;  // same seed + same data = same forest, whatever the thread count
  int threads = 1;    // trees fitted in parallel
};

class IsolationForest {
 public:
  IsolationForest() = default;

  // Throws std::invalid_argument on an empty matrix or more than 65534 columns.
  static IsolationForest fit(const Matrix& data, const ForestParams& params);

  bool fitted() const { return !roots_.empty(); }
  std::size_t dims() const { return dims_; }
  std::size_t trees() const { return roots_.size(); }
  std::size_t sample_size() const { return psi_; }

  // Mean path length E[h(x)] over the trees, leaf adjustment c(size) included (for a
  // multi-scale forest: the mean of h / c(psi_tree), times c(psi)).
  double mean_path_length(std::span<const double> x) const;
  // s(x, psi) = 2^(-E[h(x)] / c(psi)), in (0, 1]; higher = more anomalous.
  double score(std::span<const double> x) const;
  // Scores every row of data into out (out.size() == data.rows); tree-major in blocks.
  void score_batch(const Matrix& data, std::span<double> out, int threads = 1) const;
  // For every row (rows[i] points at dims() values): the sum over the trees of its normalised
  // path lengths, into sums[i]; tree-major in blocks of rows, so a tree is read from memory
  // once per block rather than once per row. score_of_sum(sums[i]) == score(row i), exactly.
  void sum_leaves_rows(std::span<const double* const> rows, double* sums) const;
  double score_of_sum(double sum) const {
    return std::exp2(-sum / static_cast<double>(roots_.size()));
  }

  // Path-based attribution: along x's path in each tree, the feature of every split is
  // credited with log2(node size / size of the child x enters), i.e. how much of the
  // training mass that split cut away from x. Averaged over trees; size dims().
  std::vector<double> attribution(std::span<const double> x) const;

  std::size_t memory_bytes() const;
  std::string serialize() const;
  static IsolationForest deserialize(std::string_view bytes);  // throws on corrupt input

 private:
  static constexpr uint32_t kLeaf = 0xFFFFFFFFu;  // while building only
  struct Node {
    double value;      // split value (go left when x < value); NaN at a leaf
    uint32_t feature;  // split feature; 0 at a leaf
    uint32_t left;     // index of the left child within the tree, the right one is left + 1;
                       // a leaf's left is its own index - 1, so a walk stays on it
  };
  static_assert(sizeof(Node) == 16);

  static Node leaf_node(uint32_t index);
  static uint32_t step(const Node* tree, uint32_t i, const double* x);
  double sum_leaves(const double* x) const;  // sum over trees of normalised path lengths
  // acc[r - r0] += every tree's leaf for rows [r0, r1) (row_at(r): the row's values), tree by
  // tree, eight rows walking a tree in lockstep; each row's sum in tree order from 0.
  template <typename RowAt>
  void sum_leaves_block(const RowAt& row_at, std::size_t r0, std::size_t r1, double* acc) const;

  std::vector<Node> nodes_;       // all trees, each tree contiguous, root first
  std::vector<double> leaf_;      // per node: (depth + c(size)) / c(psi_tree) at leaves, else 0
  std::vector<uint32_t> roots_;   // offset of each tree in nodes_
  std::vector<uint8_t> depths_;   // height limit of each tree: steps per walk
  std::vector<uint32_t> counts_;  // training points per node (explanations only)
  std::size_t dims_ = 0;
  std::size_t psi_ = 0;
  double c_psi_ = 1.0;  // c(psi) of the primary sample size
};

}  // namespace immunizer::analyze
