#include "immunizer/analyze/models/autoencoder.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "immunizer/common/byte_codec.hpp"
#include "models/ae_kernels.hpp"
#include "models/rng.hpp"

namespace immunizer::analyze {

namespace {

constexpr uint32_t kAeMagic = 0x4541544B;  // "KTAE"
constexpr uint32_t kAeVersion = 2;
constexpr double kTrainClip = 10, kScoreClip = 1000;

void write_vec(common::ByteWriter& w, const Eigen::VectorXd& v) {
  w.put_vector(std::vector<double>(v.data(), v.data() + v.size()));
}
Eigen::VectorXd read_vec(common::ByteReader& r) {
  const auto v = r.get_vector<double>();
  return Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size()));
}

void write_ae(common::ByteWriter& w, const TinyAutoencoder& ae) {
  w.put<uint64_t>(ae.w.rows());
  w.put<uint64_t>(ae.w.cols());
  w.put_vector(std::vector<double>(ae.w.data(), ae.w.data() + ae.w.size()));
  write_vec(w, ae.bh);
  write_vec(w, ae.bv);
  w.put<uint8_t>(ae.linear_output ? 1 : 0);
}
TinyAutoencoder read_ae(common::ByteReader& r) {
  TinyAutoencoder ae;
  const auto rows = r.get<uint64_t>(), cols = r.get<uint64_t>();
  const auto w = r.get_vector<double>();
  if (rows == 0 || cols == 0 || w.size() != rows * cols)
    throw std::runtime_error("autoencoder: corrupt");
  ae.w = Eigen::Map<const Eigen::MatrixXd>(w.data(), static_cast<Eigen::Index>(rows),
                                           static_cast<Eigen::Index>(cols));
  ae.bh = read_vec(r);
  ae.bv = read_vec(r);
  ae.linear_output = r.get<uint8_t>() != 0;
  if (ae.bh.size() != ae.w.rows() || ae.bv.size() != ae.w.cols())
    throw std::runtime_error("autoencoder: corrupt");
  return ae;
}

}  // namespace

void RunningMoments::reset(std::size_t n) {
  mean = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(n));
  m2 = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(n));
  count = 0;
}

void RunningMoments::update(std::span<const double> x) {
  count += 1;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto k = static_cast<Eigen::Index>(i);
    if (!std::isfinite(x[i])) continue;
    const double d = x[i] - mean[k];
    mean[k] += d / count;
    m2[k] += d * (x[i] - mean[k]);
  }
}

void RunningMoments::apply(std::span<const double> x, Eigen::VectorXd& out, double clip) const {
  out.resize(static_cast<Eigen::Index>(x.size()));
  for (Eigen::Index i = 0; i < out.size(); ++i) {
    const double sd = std::sqrt(m2[i] / std::max(count, 1.0));
    const double v = x[static_cast<std::size_t>(i)];
    out[i] =
        std::isfinite(v) ? std::clamp((v - mean[i]) / (sd > 1e-12 ? sd : 1.0), -clip, clip) : 0.0;
  }
}

void RunningMinMax::reset(std::size_t n) {
  lo = Eigen::VectorXd::Constant(static_cast<Eigen::Index>(n),
                                 std::numeric_limits<double>::infinity());
  hi = Eigen::VectorXd::Constant(static_cast<Eigen::Index>(n),
                                 -std::numeric_limits<double>::infinity());
}

void RunningMinMax::update(std::span<const double> x) {
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) continue;
    lo[static_cast<Eigen::Index>(i)] = std::min(lo[static_cast<Eigen::Index>(i)], x[i]);
    hi[static_cast<Eigen::Index>(i)] = std::max(hi[static_cast<Eigen::Index>(i)], x[i]);
  }
}

void RunningMinMax::apply(std::span<const double> x, Eigen::VectorXd& out) const {
  out.resize(static_cast<Eigen::Index>(x.size()));
  for (Eigen::Index i = 0; i < out.size(); ++i) {
    const double l = std::isfinite(lo[i]) ? lo[i] : 0.0;
    const double range = hi[i] > l ? hi[i] - l : 1.0;
    const double v =
        std::isfinite(x[static_cast<std::size_t>(i)]) ? x[static_cast<std::size_t>(i)] : l;
    out[i] = std::clamp((v - l) / range, -10.0, 11.0);
  }
}

void TinyAutoencoder::init(int visible, int hidden, uint64_t seed, bool linear) {
  Rng rng(seed, 0xAE);
  linear_output = linear;
  const double a = 1.0 / visible;
  w.resize(hidden, visible);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = (2 * rng.uniform() - 1) * a;
  bh = Eigen::VectorXd::Zero(hidden);
  bv = Eigen::VectorXd::Zero(visible);
}

namespace {

template <std::ptrdiff_t N>
using Size = std::integral_constant<std::ptrdiff_t, N>;

// The hidden units of a group autoencoder of `visible` inputs at the default hidden ratio
// (0.75): ceil(0.75 visible).
constexpr std::ptrdiff_t default_hidden(std::ptrdiff_t visible) { return (3 * visible + 3) / 4; }

// fn(nv, nh), with the sizes as compile-time constants for the group autoencoders of the
// default configuration (ae_max_group 10, hidden ratio 0.75: visible V in 1..10 and
// default_hidden(V)), where the kernels' loops unroll into registers; else as they are. fn
// returns a double (the training step: anything).
template <typename Fn, std::ptrdiff_t... V>
inline __attribute__((always_inline)) double with_sizes(
    std::ptrdiff_t nv, std::ptrdiff_t nh, const Fn& fn,
    std::integer_sequence<std::ptrdiff_t, V...> /*unused*/) {
  double out = 0;
  const bool fixed = ((nv == V + 1 && nh == default_hidden(V + 1) &&
                       (out = fn(Size<V + 1>{}, Size<default_hidden(V + 1)>{}), true)) ||
                      ...);
  return fixed ? out : fn(nv, nh);
}

template <typename Fn>
inline __attribute__((always_inline)) double with_sizes(std::ptrdiff_t nv, std::ptrdiff_t nh,
                                                        const Fn& fn) {
  return with_sizes(nv, nh, fn, std::make_integer_sequence<std::ptrdiff_t, 10>{});
}

}  // namespace

// The SGD step and scoring are compiled twice, for AVX2 and for the baseline (SSE2), and the
// loader picks one for the CPU. No FMA: a fused multiply-add rounds once, so scores would
// differ from the baseline's; with the same operations in the same order (ae_kernels.hpp) the
// two versions give the same values, to the bit.
#define IMMUNIZER_AE_CLONES __attribute__((target_clones("avx2", "default")))

IMMUNIZER_AE_CLONES void TinyAutoencoder::train_one(const Eigen::VectorXd& xv, double lr) {
  const Eigen::Index nh = w.rows(), nv = w.cols();
  thread_local std::vector<double> buf;
  if (buf.size() < static_cast<std::size_t>(2 * nh + nv))
    buf.resize(static_cast<std::size_t>(2 * nh + nv));
  const ae_kernels::StepBuffers b{buf.data(), buf.data() + nh, buf.data() + 2 * nh};
  const ae_kernels::Weights a{w.data(), bh.data(), bv.data()};
  const bool linear = linear_output;
  with_sizes(
      nv, nh, [&](auto v, auto h) __attribute__((always_inline)) {
        ae_kernels::train_step(a, h, v, linear, xv.data(), lr, b);
        return 0.0;
      });
}

IMMUNIZER_AE_CLONES double TinyAutoencoder::rmse(const double* x, double* recon,
                                                 double* hidden) const {
  const ae_kernels::ConstWeights a{w.data(), bh.data(), bv.data()};
  const bool linear = linear_output;
  return with_sizes(
      w.cols(), w.rows(), [&](auto v, auto h) __attribute__((always_inline)) {
        return ae_kernels::rmse(a, h, v, linear, x, recon, hidden);
      });
}

#undef IMMUNIZER_AE_CLONES

std::vector<std::vector<uint32_t>> map_features(const Matrix& data, int max_group_size) {
  const std::size_t d = data.cols;
  const std::size_t m = static_cast<std::size_t>(std::max(max_group_size, 1));
  // Correlations on at most 10,000 evenly spaced rows.
  const std::size_t stride = std::max<std::size_t>(1, data.rows / 10000);
  std::vector<double> mean(d, 0.0), sd(d, 0.0);
  std::size_t n = 0;
  for (std::size_t r = 0; r < data.rows; r += stride, ++n)
    for (std::size_t j = 0; j < d; ++j) mean[j] += data.at(r, j);
  for (auto& v : mean) v /= static_cast<double>(std::max<std::size_t>(n, 1));
  Eigen::MatrixXd centred(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(d));
  std::size_t i = 0;
  for (std::size_t r = 0; r < data.rows; r += stride, ++i)
    for (std::size_t j = 0; j < d; ++j)
      centred(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = data.at(r, j) - mean[j];
  const Eigen::MatrixXd cov = centred.transpose() * centred;
  Eigen::MatrixXd dist(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(d));
  for (Eigen::Index a = 0; a < dist.rows(); ++a)
    for (Eigen::Index b = 0; b < dist.cols(); ++b) {
      const double den = std::sqrt(cov(a, a) * cov(b, b));
      const double r = den > 0 ? cov(a, b) / den : 0.0;
      dist(a, b) = 1.0 - std::min(std::abs(r), 1.0);
    }

  std::vector<std::vector<uint32_t>> clusters(d);
  for (std::size_t j = 0; j < d; ++j) clusters[j] = {static_cast<uint32_t>(j)};
  std::vector<bool> alive(d, true);
  for (;;) {
    double best = std::numeric_limits<double>::infinity();
    std::size_t ba = 0, bb = 0;
    for (std::size_t a = 0; a < d; ++a) {
      if (!alive[a]) continue;
      for (std::size_t b = a + 1; b < d; ++b) {
        if (!alive[b] || clusters[a].size() + clusters[b].size() > m) continue;
        if (dist(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)) < best) {
          best = dist(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b));
          ba = a;
          bb = b;
        }
      }
    }
    if (!std::isfinite(best)) break;
    // Average linkage (Lance-Williams update), then b is folded into a.
    const double na = static_cast<double>(clusters[ba].size()),
                 nb = static_cast<double>(clusters[bb].size());
    for (std::size_t c = 0; c < d; ++c) {
      if (!alive[c] || c == ba || c == bb) continue;
      const auto ia = static_cast<Eigen::Index>(ba), ib = static_cast<Eigen::Index>(bb),
                 ic = static_cast<Eigen::Index>(c);
      dist(ia, ic) = dist(ic, ia) = (na * dist(ia, ic) + nb * dist(ib, ic)) / (na + nb);
    }
    clusters[ba].insert(clusters[ba].end(), clusters[bb].begin(), clusters[bb].end());
    alive[bb] = false;
  }
  std::vector<std::vector<uint32_t>> out;
  for (std::size_t a = 0; a < d; ++a)
    if (alive[a]) {
      std::sort(clusters[a].begin(), clusters[a].end());
      out.push_back(std::move(clusters[a]));
    }
  return out;
}

namespace {

// Epochs and rows per epoch of `updates` SGD steps over `rows` rows: on big training sets an
// epoch is a fresh random subset of `updates` rows, so the fit costs the same for 10^4 and
// 10^6 rows.
struct Schedule {
  int epochs = 1;
  std::size_t per_epoch = 0;
};
Schedule schedule(int updates, std::size_t rows, int max_epochs) {
  const int u = std::max(updates, 1);
  return {std::clamp(static_cast<int>((static_cast<std::size_t>(u) + rows - 1) / rows), 1,
                     std::max(max_epochs, 1)),
          std::min<std::size_t>(rows, static_cast<std::size_t>(u))};
}

}  // namespace

Matrix AutoencoderEnsemble::training_errors(const Matrix& norm,
                                            std::vector<Eigen::VectorXd>& slices) {
  Matrix errs(norm.rows, groups_.size());
  feature_err_.assign(norm.cols, 0.0);
  Eigen::Index widest = 1, hidden = 1;
  for (const auto& a : group_ae_) {
    widest = std::max(widest, a.w.cols());
    hidden = std::max(hidden, a.w.rows());
  }
  // The scoring kernel (no allocation per row), so training and scoring errors are alike.
  std::vector<double> recon(static_cast<std::size_t>(widest)),
      hid(static_cast<std::size_t>(hidden));
  for (std::size_t r = 0; r < norm.rows; ++r) {
    const auto x = norm.row(r);
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      double* slice = slices[g].data();
      for (std::size_t k = 0; k < groups_[g].size(); ++k) slice[k] = x[groups_[g][k]];
      errs.at(r, g) = group_ae_[g].rmse(slice, recon.data(), hid.data());
      for (std::size_t k = 0; k < groups_[g].size(); ++k) {
        const double diff = recon[k] - slice[k];
        feature_err_[groups_[g][k]] += diff * diff;
      }
    }
  }
  for (auto& v : feature_err_) v = v / static_cast<double>(norm.rows) + 1e-12;
  return errs;
}

AutoencoderEnsemble AutoencoderEnsemble::fit(const Matrix& data, const AutoencoderParams& p,
                                             const AutoencoderEnsemble* warm) {
  if (data.rows == 0 || data.cols == 0) throw std::invalid_argument("autoencoder: no data");
  AutoencoderEnsemble e;
  e.dims_ = data.cols;
  e.input_norm_.reset(data.cols);
  for (std::size_t r = 0; r < data.rows; ++r) e.input_norm_.update(data.row(r));
  // Warm start (KitNET fixes its feature map after the first fit too): the earlier model's
  // groups and weights, warm_updates SGD steps; the mapper on this data would regroup the
  // features a little at every fit, and a new group starts from nothing.
  const bool warm_start =
      warm != nullptr && p.warm_updates > 0 && warm->fitted() && warm->dims_ == data.cols;
  if (warm_start) {
    e.groups_ = warm->groups_;
    e.group_ae_ = warm->group_ae_;
  } else {
    e.groups_ = map_features(data, p.max_group_size);
    for (std::size_t g = 0; g < e.groups_.size(); ++g) {
      const int v = static_cast<int>(e.groups_[g].size());
      const int h = std::max(1, static_cast<int>(std::ceil(p.hidden_ratio * v)));
      e.group_ae_.emplace_back().init(v, h, p.seed + g + 1, true);
    }
  }
  const Schedule run =
      schedule(warm_start ? std::min(p.warm_updates, p.min_updates) : p.min_updates, data.rows,
               p.max_epochs);

  Matrix norm(data.rows, data.cols);
  Eigen::VectorXd tmp;
  for (std::size_t r = 0; r < data.rows; ++r) {
    e.input_norm_.apply(data.row(r), tmp, kTrainClip);
    std::copy(tmp.data(), tmp.data() + tmp.size(), norm.row(r).begin());
  }
  std::vector<uint32_t> order(data.rows);
  std::iota(order.begin(), order.end(), 0u);
  Rng rng(p.seed, 0x5EED);
  auto shuffle = [&] {
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  };
  std::vector<Eigen::VectorXd> slices(e.groups_.size());
  for (std::size_t g = 0; g < e.groups_.size(); ++g)
    slices[g].resize(static_cast<Eigen::Index>(e.groups_[g].size()));
  for (int ep = 0; ep < run.epochs; ++ep) {
    shuffle();
    for (std::size_t i = 0; i < run.per_epoch; ++i) {
      const auto x = norm.row(order[i]);
      for (std::size_t g = 0; g < e.groups_.size(); ++g) {
        for (std::size_t k = 0; k < e.groups_[g].size(); ++k)
          slices[g][static_cast<Eigen::Index>(k)] = x[e.groups_[g][k]];
        e.group_ae_[g].train_one(slices[g], p.learning_rate);
      }
    }
  }

  // Stage two: the output autoencoder learns the joint behaviour of the group errors.
  const Matrix errs = e.training_errors(norm, slices);
  e.output_norm_.reset(errs.cols);
  for (std::size_t r = 0; r < errs.rows; ++r) e.output_norm_.update(errs.row(r));
  const int k = static_cast<int>(errs.cols);
  if (warm_start)
    e.output_ae_ = warm->output_ae_;
  else
    e.output_ae_.init(k, std::max(1, static_cast<int>(std::ceil(p.hidden_ratio * k))), p.seed,
                      false);
  for (int ep = 0; ep < run.epochs; ++ep) {
    shuffle();
    for (std::size_t i = 0; i < run.per_epoch; ++i) {
      e.output_norm_.apply(errs.row(order[i]), tmp);
      e.output_ae_.train_one(tmp, p.learning_rate);
    }
  }
  e.prepare_scoring();
  return e;
}

void AutoencoderEnsemble::prepare_scoring() {
  // The same expression scoring computed per vector before: the same values to the bit.
  score_sd_.resize(dims_);
  for (std::size_t i = 0; i < dims_; ++i) {
    const double sd =
        std::sqrt(input_norm_.m2[static_cast<Eigen::Index>(i)] / std::max(input_norm_.count, 1.0));
    score_sd_[i] = sd > 1e-12 ? sd : 1.0;
  }
}

namespace {
// Per-thread scratch so that scoring one vector allocates nothing after warm-up.
std::vector<double>& scratch(std::size_t n) {
  thread_local std::vector<double> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}
}  // namespace

void AutoencoderEnsemble::group_errors(std::span<const double> x, double* errs,
                                       double* sq_err) const {
  if (x.size() != dims_) throw std::invalid_argument("autoencoder: wrong vector size");
  std::size_t widest = 1, hidden = 1;
  for (const auto& a : group_ae_) {
    widest = std::max<std::size_t>(widest, static_cast<std::size_t>(a.w.cols()));
    hidden = std::max<std::size_t>(hidden, static_cast<std::size_t>(a.w.rows()));
  }
  auto& buf = scratch(dims_ + 2 * widest + hidden);
  double* norm = buf.data();
  double* slice = norm + dims_;
  double* recon = slice + widest;
  double* hid = recon + widest;
  const double* mean = input_norm_.mean.data();
  const double* sd = score_sd_.data();
  for (std::size_t i = 0; i < dims_; ++i) {
    const double v = x[i];
    norm[i] = std::isfinite(v) ? std::clamp((v - mean[i]) / sd[i], -kScoreClip, kScoreClip) : 0.0;
  }
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const auto& group = groups_[g];
    for (std::size_t k = 0; k < group.size(); ++k) slice[k] = norm[group[k]];
    errs[g] = group_ae_[g].rmse(slice, recon, hid);
    if (sq_err)
      for (std::size_t k = 0; k < group.size(); ++k)
        sq_err[group[k]] = (recon[k] - slice[k]) * (recon[k] - slice[k]);
  }
}

double AutoencoderEnsemble::score(std::span<const double> x) const {
  const std::size_t k = groups_.size();
  const std::size_t h = static_cast<std::size_t>(output_ae_.w.rows());
  thread_local std::vector<double> buf;
  if (buf.size() < 3 * k + h) buf.resize(3 * k + h);
  double* errs = buf.data();
  double* norm = errs + k;
  double* recon = norm + k;
  double* hid = recon + k;
  group_errors(x, errs, nullptr);
  double sq = 0;
  for (std::size_t g = 0; g < k; ++g) {
    sq += errs[g] * errs[g];
    const auto i = static_cast<Eigen::Index>(g);
    const double l = std::isfinite(output_norm_.lo[i]) ? output_norm_.lo[i] : 0.0;
    const double range = output_norm_.hi[i] > l ? output_norm_.hi[i] - l : 1.0;
    norm[g] = std::clamp((errs[g] - l) / range, -10.0, 11.0);
  }
  return std::sqrt(sq / static_cast<double>(k)) + output_ae_.rmse(norm, recon, hid);
}

void AutoencoderEnsemble::score_batch(const Matrix& data, std::span<double> out) const {
  if (out.size() != data.rows) throw std::invalid_argument("autoencoder: batch shape mismatch");
  for (std::size_t r = 0; r < data.rows; ++r) out[r] = score(data.row(r));
}

std::vector<double> AutoencoderEnsemble::attribution(std::span<const double> x) const {
  std::vector<double> sq(dims_, 0.0), errs(groups_.size());
  group_errors(x, errs.data(), sq.data());
  for (std::size_t j = 0; j < dims_; ++j) sq[j] /= feature_err_[j];
  return sq;
}

std::size_t AutoencoderEnsemble::memory_bytes() const {
  std::size_t b = sizeof(*this) + (feature_err_.capacity() + score_sd_.capacity()) * sizeof(double);
  auto ae_bytes = [](const TinyAutoencoder& a) {
    return static_cast<std::size_t>(a.w.size() + a.bh.size() + a.bv.size()) * sizeof(double);
  };
  for (const auto& g : groups_)
    b += g.capacity() * sizeof(uint32_t) + sizeof(std::vector<uint32_t>);
  for (const auto& a : group_ae_) b += ae_bytes(a) + sizeof(a);
  b += ae_bytes(output_ae_) +
       static_cast<std::size_t>(input_norm_.mean.size() * 2 + output_norm_.lo.size() * 2) *
           sizeof(double);
  return b;
}

std::string AutoencoderEnsemble::serialize() const {
  common::ByteWriter w;
  w.put_header(kAeMagic, kAeVersion);
  w.put<uint64_t>(dims_);
  write_vec(w, input_norm_.mean);
  write_vec(w, input_norm_.m2);
  w.put(input_norm_.count);
  w.put<uint64_t>(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    w.put_vector(groups_[g]);
    write_ae(w, group_ae_[g]);
  }
  write_vec(w, output_norm_.lo);
  write_vec(w, output_norm_.hi);
  write_ae(w, output_ae_);
  w.put_vector(feature_err_);
  return w.take();
}

AutoencoderEnsemble AutoencoderEnsemble::deserialize(std::string_view bytes) {
  common::ByteReader r(bytes, "autoencoder");
  r.get_header(kAeMagic, kAeVersion);
  AutoencoderEnsemble e;
  e.dims_ = r.get<uint64_t>();
  e.input_norm_.mean = read_vec(r);
  e.input_norm_.m2 = read_vec(r);
  e.input_norm_.count = r.get<double>();
  const auto groups = r.get<uint64_t>();
  if (groups == 0 || groups > e.dims_ ||
      static_cast<std::size_t>(e.input_norm_.mean.size()) != e.dims_ ||
      e.input_norm_.m2.size() != e.input_norm_.mean.size())
    throw std::runtime_error("autoencoder: corrupt header");
  for (uint64_t g = 0; g < groups; ++g) {
    e.groups_.push_back(r.get_vector<uint32_t>());
    e.group_ae_.push_back(read_ae(r));
    for (const uint32_t f : e.groups_.back())
      if (f >= e.dims_) throw std::runtime_error("autoencoder: corrupt group");
    if (static_cast<std::size_t>(e.group_ae_.back().w.cols()) != e.groups_.back().size())
      throw std::runtime_error("autoencoder: corrupt group");
  }
  e.output_norm_.lo = read_vec(r);
  e.output_norm_.hi = read_vec(r);
  e.output_ae_ = read_ae(r);
  e.feature_err_ = r.get_vector<double>();
  if (static_cast<uint64_t>(e.output_ae_.w.cols()) != groups ||
      static_cast<uint64_t>(e.output_norm_.lo.size()) != groups ||
      e.output_norm_.hi.size() != e.output_norm_.lo.size() || e.feature_err_.size() != e.dims_)
    throw std::runtime_error("autoencoder: corrupt output layer");
  e.prepare_scoring();
  return e;
}

}  // namespace immunizer::analyze
