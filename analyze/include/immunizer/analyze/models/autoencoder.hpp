// KitNET-style autoencoder ensemble (Mirsky et al., NDSS 2018): a feature mapper clusters
// correlated features into groups of bounded size, one small autoencoder per group, and an
// output autoencoder over the groups' reconstruction errors. Immutable after fit(): const
// methods are safe from many threads. Owns its weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Dense>

#include "immunizer/analyze/models/matrix.hpp"

namespace immunizer::analyze {

struct AutoencoderParams {
  int max_group_size = 10;     // m in KitNET: features per group autoencoder
  double hidden_ratio = 0.75;  // hidden units per visible unit
  double learning_rate = 0.1;  // plain SGD, as KitNET
  int min_updates = 20000;     // epochs = ceil(min_updates / rows), at least one
  int max_epochs = 50;
  uint64_t seed = 0;
  // A fit warm-started from an earlier model (fit's `warm`): its SGD steps (at most
  // min_updates); 0: every fit starts afresh.
  int warm_updates = 0;
};

// Standardisation learnt as a running mean and variance (Welford) over the training stream;
// the input of the group autoencoders.
struct RunningMoments {
  Eigen::VectorXd mean, m2;
  double count = 0;
  void reset(std::size_t n);
  void update(std::span<const double> x);
  // (x - mean) / sd clipped to [-clip, clip]; a constant feature has sd 1. Training clips at
  // 10 so outliers in the training data cannot blow the weights up; scoring clips at 1000 so
  // a wild value still shows as a wild reconstruction error.
  void apply(std::span<const double> x, Eigen::VectorXd& out, double clip) const;
};

// Min-max normalisation learnt as a running min/max (KitNET); the output layer's input.
struct RunningMinMax {
  Eigen::VectorXd lo, hi;
  void reset(std::size_t n);
  void update(std::span<const double> x);
  // (x - lo) / (hi - lo), clipped to [-10, 11] so one wild value cannot overflow the sigmoid.
  void apply(std::span<const double> x, Eigen::VectorXd& out) const;
};

// One tied-weight autoencoder with a sigmoid hidden layer (a KitNET dA). The decoder is
// sigmoid for inputs in [0, 1] (output layer) or linear for standardised inputs (groups).
struct TinyAutoencoder {
  Eigen::MatrixXd w;  // hidden x visible
  Eigen::VectorXd bh, bv;
  bool linear_output = false;
  void init(int visible, int hidden, uint64_t seed, bool linear);
  void train_one(const Eigen::VectorXd& x, double lr);
  // Reconstruction of x into recon (visible), hidden (w.rows()) as scratch; returns the RMSE.
  // Allocation-free.
  double rmse(const double* x, double* recon, double* hidden) const;
};

class AutoencoderEnsemble {
 public:
  // Throws std::invalid_argument on an empty matrix. With `warm` (an earlier fit on as many
  // features) and params.warm_updates > 0, a refit: warm's feature groups and weights are the
  // starting point, trained warm_updates SGD steps on data (normalisation and error
  // statistics are learnt from data afresh).
  static AutoencoderEnsemble fit(const Matrix& data, const AutoencoderParams& params,
                                 const AutoencoderEnsemble* warm = nullptr);

  bool fitted() const { return !groups_.empty(); }
  std::size_t dims() const { return dims_; }
  const std::vector<std::vector<uint32_t>>& groups() const { return groups_; }

  // How badly x is reconstructed: the root mean square of the group RMSEs (magnitude) plus
  // the output autoencoder's RMSE (an unusual pattern of group errors). Higher = more
  // anomalous. KitNET scores by the output RMSE alone; on the ODDS sets that misses outliers
  // whose every group is off, because the min-max-normalised error pattern then looks usual.
  double score(std::span<const double> x) const;
  void score_batch(const Matrix& data, std::span<double> out) const;
  // Per-feature squared reconstruction error, divided by that feature's mean training error.

  std::vector<double> attribution(std::span<const double> x) const;

  std::size_t memory_bytes() const;
  std::string serialize() const;
  static AutoencoderEnsemble deserialize(std::string_view bytes);  // throws on corrupt input

 private:
  // Group RMSEs of x into errs (one per group); per-feature squared errors into sq_err if set.
  void group_errors(std::span<const double> x, double* errs, double* sq_err) const;
  // After fit() and deserialize(): input_norm_'s standard deviations as scoring divides by them.
  void prepare_scoring();
  // fit(): each group's RMSE on each row of norm (the standardised training rows), and
  // feature_err_; slices: one scratch vector per group.
  Matrix training_errors(const Matrix& norm, std::vector<Eigen::VectorXd>& slices);

  std::size_t dims_ = 0;
  RunningMoments input_norm_;
  std::vector<std::vector<uint32_t>> groups_;
  std::vector<TinyAutoencoder> group_ae_;
  RunningMinMax output_norm_;
  TinyAutoencoder output_ae_;
  std::vector<double> feature_err_;  // mean training squared error per feature
  std::vector<double> score_sd_;     // per feature: its sd, or 1 when (near) constant
};

// The feature mapper: agglomerative clustering on correlation distance 1 - |r|, average
// linkage, never merging past max_group_size. Deterministic; constant features join the
// nearest groups by index.
std::vector<std::vector<uint32_t>> map_features(const Matrix& data, int max_group_size);

}  // namespace immunizer::analyze
