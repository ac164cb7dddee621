#include "immunizer/analyze/models/model_key_state.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "immunizer/analyze/models/thread_pool.hpp"

namespace immunizer::analyze {

namespace {

// The index of x's first NaN or infinity, or x.size(). Such a value would poison every fit
// and score of the key (NaN is unequal to itself and unordered), so it is refused on entry.
std::size_t first_non_finite(std::span<const double> x) {
  for (std::size_t j = 0; j < x.size(); ++j)
    if (!std::isfinite(x[j])) return j;
  return x.size();
}

// Normalises a detector's attribution to shares summing to one (all-zero stays zero).
void add_shares(std::vector<double>& into, const std::vector<double>& a, double weight) {
  double sum = 0;
  for (const double v : a) sum += std::max(v, 0.0);
  if (!(sum > 0)) return;
  for (std::size_t i = 0; i < a.size(); ++i) into[i] += weight * std::max(a[i], 0.0) / sum;
}

}  // namespace

const char* to_string(DetectorKind k) {
  switch (k) {
    case DetectorKind::kIForest:
      return "iforest";
    case DetectorKind::kAutoencoder:
      return "autoencoder";
    case DetectorKind::kEnsemble:
      return "ensemble";
  }
  return "?";
}

std::optional<DetectorKind> parse_detector(std::string_view s) {
  if (s == "iforest") return DetectorKind::kIForest;
  if (s == "autoencoder") return DetectorKind::kAutoencoder;
  if (s == "ensemble") return DetectorKind::kEnsemble;
  return std::nullopt;
}

void validate(const DetectorConfig& c) {
  auto check = [](bool ok, const char* field, const char* rule) {
    if (!ok) throw std::invalid_argument(std::string(field) + ": must be " + rule);
  };
  check(c.trees >= 1 && c.trees <= 10000, "trees", "in [1, 10000]");
  check(c.sample_size >= 2 && c.sample_size <= 65535, "sample_size", "in [2, 65535]");
  check(c.mixed_sample_size == 0 || (c.mixed_sample_size >= 2 && c.mixed_sample_size <= 65535),
        "mixed_sample_size", "0 or in [2, 65535]");
  check(c.fit_threads >= 1 && c.fit_threads <= 256, "fit_threads", "in [1, 256]");
  check(c.ae_max_group >= 1 && c.ae_max_group <= 64, "ae_max_group", "in [1, 64]");
  check(c.ae_hidden_ratio > 0 && c.ae_hidden_ratio <= 1, "ae_hidden_ratio", "in (0, 1]");
  check(c.ae_learning_rate > 0 && c.ae_learning_rate <= 1, "ae_learning_rate", "in (0, 1]");
  check(c.ae_min_updates >= 1 && c.ae_min_updates <= 10'000'000, "ae_min_updates", "in [1, 10^7]");
  check(c.ae_refit_updates >= 0 && c.ae_refit_updates <= 10'000'000, "ae_refit_updates",
        "in [0, 10^7]");
  check(c.ae_weight >= 0 && c.ae_weight <= 1, "ae_weight", "in [0, 1]");
  check(c.grace_records >= 2 && c.grace_records <= 10'000'000, "grace_records", "in [2, 10^7]");
  check(c.reservoir_size <= 10'000'000, "reservoir_size", "at most 10^7");
  check(c.feedback_share >= 0 && c.feedback_share <= 0.5, "feedback_share", "in [0, 0.5]");
  check(c.risk > 0 && c.risk < 0.5, "risk", "in (0, 0.5)");
  check(c.peak_quantile >= 0.5 && c.peak_quantile < 1, "peak_quantile", "in [0.5, 1)");
  check(!c.fixed_threshold || std::isfinite(*c.fixed_threshold), "fixed_threshold",
        "a finite number");
  check(c.top_features <= 1000, "top_features", "at most 1000");
}

const char* to_string(ModelState s) { return s == ModelState::kActive ? "ACTIVE" : "LEARNING"; }

ModelKeyState::ModelKeyState(DetectorConfig cfg) : cfg_(cfg) {  // trivially copyable
  cfg_.grace_records = std::max<std::size_t>(cfg_.grace_records, 2);
  cfg_.reservoir_size = std::max(cfg_.reservoir_size, cfg_.grace_records);
}

void ModelKeyState::reset(FeatureNames names, uint32_t version) {
  has_schema_ = true;
  schema_version_ = version;
  names_ = std::move(names);
  pending_fit_.reset();  // a refit of the old schema's data is of no use
  pre_.rows.clear();
  state_ = ModelState::kLearning;
  since_fit_ = 0;
  reservoir_ = {0, names_->size(), {}};
  reservoir_.values.reserve(cfg_.reservoir_size * names_->size());
  ring_next_ = 0;
  feedback_mark_.clear();
  feedback_rows_ = 0;
  forest_ = {};
  ae_ = {};
  forest_cal_ = ae_cal_ = combined_cal_ = {};
}

void ModelKeyState::write_row(std::size_t slot, std::span<const double> x) {
  if (slot == reservoir_.rows) {
    for (const double v : x) reservoir_.values.push_back(static_cast<float>(v));
    ++reservoir_.rows;
    feedback_mark_.push_back(0);
    return;
  }
  std::transform(x.begin(), x.end(),
                 reservoir_.values.begin() + static_cast<std::ptrdiff_t>(slot * reservoir_.cols),
                 [](double v) { return static_cast<float>(v); });
}

void ModelKeyState::remember(std::span<const double> x) {
  if (reservoir_.rows < cfg_.reservoir_size) {
    write_row(reservoir_.rows, x);
    return;
  }
  std::size_t slot = 0;
  {
    // Once full, the reservoir is a decaying sample of the key's history (Algorithm R with
    // the history capped at kHistoryFactor reservoirs): a vector gets in with probability
    // rows / min(seen, kHistoryFactor * rows), into a random slot. Recent traffic still
    // enters (drift is learnt), but a burst of attacks that were not alarmed cannot replace
    // the whole reservoir before the next refit, as a ring of the latest vectors would.
    constexpr std::size_t kHistoryFactor = 16;
    const std::size_t history =
        std::min<std::size_t>(records_seen_, kHistoryFactor * reservoir_.rows);
    uint64_t h = cfg_.seed ^ (0x9E3779B97F4A7C15ull * (records_seen_ + 1));
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    slot = static_cast<std::size_t>(h % std::max<std::size_t>(history, 1));
    if (slot >= reservoir_.rows) return;
  }
  if (feedback_mark_[slot]) {  // traffic replaces a feedback row like any other
    feedback_mark_[slot] = 0;
    --feedback_rows_;
  }
  write_row(slot, x);
}

void ModelKeyState::learn_constants(const Matrix& data, const Matrix* feedback) {
  // Per feature: its usual value when at least 99% of the fit's rows hold it, and how rare
  // leaving it (by half a unit or more) was in those rows. Constant: rarity -1 (never seen).
  constexpr double kUsualShare = 0.99, kMargin = 0.5;
  constant_.assign(data.cols, std::numeric_limits<double>::quiet_NaN());
  rarity_.assign(data.cols, 1.0);
  lo_.assign(data.cols, -std::numeric_limits<double>::infinity());
  hi_.assign(data.cols, std::numeric_limits<double>::infinity());
  if (data.rows == 0) return;
  std::vector<double> col(data.rows);
  std::size_t watched = 0;
  for (std::size_t j = 0; j < data.cols; ++j) {
    for (std::size_t i = 0; i < data.rows; ++i) col[i] = data.values[i * data.cols + j];
    std::sort(col.begin(), col.end());
    lo_[j] = col.front();
    hi_[j] = col.back();
    double mode = col[0];
    std::size_t best = 0;
    for (std::size_t i = 0; i < col.size();) {
      std::size_t k = i + 1;  // progress even on a value unequal to itself (NaN)
      while (k < col.size() && col[k] == col[i]) ++k;
      if (k - i > best) best = k - i, mode = col[i];
      i = k;
    }
    if (static_cast<double>(best) < kUsualShare * static_cast<double>(data.rows)) continue;
    std::size_t away = 0;
    for (double v : col) away += std::fabs(v - mode) >= kMargin;
    constant_[j] = mode;
    rarity_[j] = away == 0
                     ? -1.0
                     : (static_cast<double>(away) + 1.0) / (static_cast<double>(data.rows) + 1.0);
    watched += away > 0;
  }
  // Several rarely-varying features each get a chance to fire: Bonferroni over them.
  for (double& r : rarity_)
    if (r > 0) r = std::min(1.0, r * static_cast<double>(std::max<std::size_t>(watched, 1)));
  // Feedback widens the range only where several distinct feedback rows lie beyond it: to the
  // kSupport-th most extreme of them, so one vector clicked many times moves nothing.
  constexpr std::size_t kSupport = 5;
  if (feedback == nullptr || feedback->rows < kSupport) return;
  for (std::size_t j = 0; j < data.cols; ++j) {
    std::vector<double> above, below;
    for (std::size_t i = 0; i < feedback->rows; ++i) {
      const double v = feedback->values[i * feedback->cols + j];
      if (v > hi_[j]) above.push_back(v);
      if (v < lo_[j]) below.push_back(v);
    }
    if (above.size() >= kSupport) {
      std::nth_element(above.begin(), above.end() - kSupport, above.end());
      hi_[j] = *(above.end() - kSupport);
    }
    if (below.size() >= kSupport) {
      std::nth_element(below.begin(), below.begin() + (kSupport - 1), below.end());
      lo_[j] = below[kSupport - 1];
    }
  }
}

double ModelKeyState::constant_violation_tail(std::span<const double> x) const {
  // Features are counts, flags and surprises in bits or deviations: a step of at least half
  // a unit away from a value that (almost) never varied is a change of kind, not drift.
  constexpr double kMargin = 0.5;
  double tail = 1.0;
  for (std::size_t j = 0; j < constant_.size() && j < x.size(); ++j)
    if (!std::isnan(constant_[j]) && std::fabs(x[j] - constant_[j]) >= kMargin)
      tail = std::min(tail, rarity_[j] < 0 ? 1.0 / (static_cast<double>(std::max<std::size_t>(
                                                        records_seen_, reservoir_.rows)) +
                                                    1.0)
                                           : rarity_[j]);
  // Far outside the fit's range (by more than the range itself): a forest isolates such a
  // value no faster than the most extreme training point. A new normal vector exceeds the
  // extremes of n exchangeable ones with probability <= 2/(n + 1) per feature (Bonferroni
  // over the features).
  const double n = static_cast<double>(std::max<std::size_t>(records_seen_, reservoir_.rows)) + 1.0;
  for (std::size_t j = 0; j < lo_.size() && j < x.size(); ++j) {
    const double reach = std::max(kMargin, hi_[j] - lo_[j]);
    if (x[j] > hi_[j] + reach || x[j] < lo_[j] - reach)
      tail = std::min(tail, std::min(1.0, 2.0 * static_cast<double>(lo_.size()) / n));
  }
  return tail;
}

Matrix ModelKeyState::rows_from(bool feedback) const {
  std::size_t kept = feedback ? feedback_rows_ : reservoir_.rows - feedback_rows_;
  const bool all = !feedback && kept < 2;  // traffic: every row when fewer than 2 are left
  if (all) kept = reservoir_.rows;
  Matrix m(kept, reservoir_.cols);
  std::size_t out = 0;
  for (std::size_t r = 0; r < reservoir_.rows; ++r) {
    if (!all && (feedback_mark_[r] != 0) != feedback) continue;
    std::copy_n(reservoir_.values.begin() + static_cast<std::ptrdiff_t>(r * reservoir_.cols),
                reservoir_.cols,
                m.values.begin() + static_cast<std::ptrdiff_t>(out * reservoir_.cols));
    ++out;
  }
  return m;
}

struct ModelKeyState::FitJob {
  DetectorConfig cfg;
  uint64_t seed = 0;
  Reservoir reservoir;
  AutoencoderEnsemble warm;  // the current autoencoders, a refit's starting point
  std::vector<uint8_t> feedback_mark;
  std::size_t feedback_rows = 0;
  // Results.
  IsolationForest forest;
  AutoencoderEnsemble ae;
  TailCalibrator forest_cal, ae_cal, combined_cal;
  ModelKeyState* constants = nullptr;  // a scratch state holding constant_, lo_, hi_, rarity_
  std::unique_ptr<ModelKeyState> scratch;
  bool failed = false;
  std::atomic<bool> done{false};
};

ModelKeyState::~ModelKeyState() = default;
ModelKeyState::ModelKeyState(ModelKeyState&&) noexcept = default;
ModelKeyState& ModelKeyState::operator=(ModelKeyState&&) noexcept = default;

std::shared_ptr<ModelKeyState::FitJob> ModelKeyState::make_fit_job() const {
  auto job = std::make_shared<FitJob>();
  job->cfg = cfg_;
  job->seed = cfg_.seed + 0x9E3779B97F4A7C15ull * fits_;
  job->reservoir = reservoir_;
  if (cfg_.ae_refit_updates > 0 && ae_.fitted()) job->warm = ae_;
  job->feedback_mark = feedback_mark_;
  job->feedback_rows = feedback_rows_;
  return job;
}

void ModelKeyState::run_fit(FitJob& j) {
  // The constants are learnt by a scratch state over the job's copy of the reservoir, with
  // the same code as a restore uses.
  j.scratch = std::make_unique<ModelKeyState>(j.cfg);
  ModelKeyState& k = *j.scratch;
  k.reservoir_ = std::move(j.reservoir);
  k.feedback_mark_ = std::move(j.feedback_mark);
  k.feedback_rows_ = j.feedback_rows;
  const bool use_forest = k.uses_forest(), use_ae = k.uses_ae();
  const std::size_t n = k.reservoir_.rows;
  Matrix data(n, k.reservoir_.cols);
  std::copy(k.reservoir_.values.begin(), k.reservoir_.values.end(), data.values.begin());
  // Which features are constant, and their range, are learnt from traffic (like the
  // calibration below); feedback only widens the range where enough of it agrees.
  if (k.feedback_rows_ > 0) {
    const Matrix fb = k.rows_from(true);
    k.learn_constants(k.rows_from(false), &fb);
  } else {
    k.learn_constants(data, nullptr);
  }
  std::vector<double> combined(n, 0.0), s(n);
  // Calibration (tails and threshold) is learnt from the rows that did not come from
  // feedback: analysts may teach the detectors, not move the threshold.
  const bool skip_feedback = k.feedback_rows_ > 0 && n - k.feedback_rows_ >= 2;
  auto calibration_rows = [&](const std::vector<double>& all) {
    if (!skip_feedback) return all;
    std::vector<double> kept;
    kept.reserve(n - k.feedback_rows_);
    for (std::size_t i = 0; i < n; ++i)
      if (!k.feedback_mark_[i]) kept.push_back(all[i]);
    return kept;
  };
  const DetectorConfig& cfg = j.cfg;
  if (use_forest) {
    const int mixed = cfg.detector == DetectorKind::kIForest ? 0 : cfg.mixed_sample_size;
    j.forest =
        IsolationForest::fit(data, {cfg.trees, cfg.sample_size, mixed, 0, j.seed, cfg.fit_threads});
    j.forest.score_batch(data, s);
    j.forest_cal.fit(calibration_rows(s), cfg.peak_quantile);
    for (std::size_t i = 0; i < n; ++i)
      combined[i] += -k.forest_weight() * std::log10(j.forest_cal.tail(s[i]));
  }
  if (use_ae) {
    AutoencoderParams ap{
        cfg.ae_max_group, cfg.ae_hidden_ratio, cfg.ae_learning_rate, cfg.ae_min_updates, 50,
        j.seed,           cfg.ae_refit_updates};
    j.ae = AutoencoderEnsemble::fit(data, ap, j.warm.fitted() ? &j.warm : nullptr);
    j.warm = {};
    j.ae.score_batch(data, s);
    j.ae_cal.fit(calibration_rows(s), cfg.peak_quantile);
    for (std::size_t i = 0; i < n; ++i)
      combined[i] += -k.ae_weight() * std::log10(j.ae_cal.tail(s[i]));
  }
  j.combined_cal.fit(calibration_rows(combined), cfg.peak_quantile);
}

void ModelKeyState::install_fit(FitJob& j) {
  forest_ = std::move(j.forest);
  ae_ = std::move(j.ae);
  forest_cal_ = std::move(j.forest_cal);
  ae_cal_ = std::move(j.ae_cal);
  combined_cal_ = std::move(j.combined_cal);
  constant_ = std::move(j.scratch->constant_);
  lo_ = std::move(j.scratch->lo_);
  hi_ = std::move(j.scratch->hi_);
  rarity_ = std::move(j.scratch->rarity_);
  set_threshold();
  ++fits_;
  since_fit_ = 0;
  state_ = ModelState::kActive;
}

void ModelKeyState::fit_models() {
  pending_fit_.reset();  // a fit now supersedes one under way
  const auto job = make_fit_job();
  run_fit(*job);
  install_fit(*job);
}

void ModelKeyState::refit() {
  if (refitter_ == nullptr || !cfg_.background_refit) {
    fit_models();
    return;
  }
  if (pending_fit_) return;  // one at a time; since_fit_ keeps counting until it is installed
  pending_fit_ = make_fit_job();
  refitter_->submit([job = pending_fit_] {
    try {
      run_fit(*job);
    } catch (...) {
      job->failed = true;  // e.g. out of memory: the current model stays
    }
    job->done.store(true, std::memory_order_release);
  });
}

void ModelKeyState::install_pending_if_done() {
  if (!pending_fit_ || !pending_fit_->done.load(std::memory_order_acquire)) return;
  const auto job = std::move(pending_fit_);
  pending_fit_.reset();
  if (job->failed) {
    since_fit_ = 0;  // try again after another refit_every vectors
    return;
  }
  install_fit(*job);
}

bool ModelKeyState::finish_refit() {
  if (!pending_fit_) return false;
  while (!pending_fit_->done.load(std::memory_order_acquire)) refitter_->wait_idle();
  install_pending_if_done();
  return true;
}

void ModelKeyState::set_threshold() {
  threshold_ = cfg_.fixed_threshold ? *cfg_.fixed_threshold : combined_cal_.threshold(cfg_.risk);
}

template <class MakeNames>
Verdict ModelKeyState::observe_checked(std::span<const double> x, std::size_t names_size,
                                       uint32_t schema_version, const MakeNames& names) {
  if (x.size() != names_size)
    throw std::invalid_argument("observe: " + std::to_string(x.size()) + " values for " +
                                std::to_string(names_size) + " feature names");
  if (x.empty()) throw std::invalid_argument("observe: empty feature vector");
  if (const auto bad = first_non_finite(x); bad < x.size())
    throw std::invalid_argument("observe: feature " + std::to_string(bad) + " is " +
                                std::to_string(x[bad]) + " (values must be finite)");
  // The schema version is the contract (comparing every name per vector would cost more than
  // scoring); a changed width without a new version is caught too.
  if (!has_schema_ || schema_version != schema_version_ || x.size() != names_->size())
    reset(names(), schema_version);
  install_pending_if_done();  // a background refit is swapped in between two vectors
  ++records_seen_;
  if (state_ == ModelState::kLearning) {
    // A precomputed run keeps step: the rows after the first fit are computed by that forest.
    if (pre_.next < pre_.rows.size() && pre_.rows[pre_.next] == x.data()) ++pre_.next;
    remember(x);
    if (reservoir_.rows >= cfg_.grace_records) fit_models();
    return Verdict{};  // the vector that completes the grace period is training data too
  }
  double forest_sum = 0;
  bool precomputed = false;
  if (pre_.next < pre_.rows.size() && pre_.rows[pre_.next] == x.data()) {
    // After a refit (or the first fit) the rows left are computed again, by the new forest.
    if (pre_.next >= pre_.ready || pre_.fits != fits_) precompute_ahead();
    precomputed = pre_.next < pre_.ready;
    if (precomputed) forest_sum = pre_.forest_sums[pre_.next];
    ++pre_.next;
  } else {
    pre_.rows.clear();  // out of step: the rest is scored directly
  }
  Verdict v = score_impl(x, precomputed ? &forest_sum : nullptr);
  if (!v.alarm) remember(x);
  if (cfg_.refit_every > 0 && ++since_fit_ >= cfg_.refit_every) refit();
  return v;
}

Verdict ModelKeyState::observe(std::span<const double> x, const FeatureNames& feature_names,
                               uint32_t schema_version) {
  if (!feature_names) throw std::invalid_argument("observe: no feature names");
  return observe_checked(x, feature_names->size(), schema_version, [&] { return feature_names; });
}

Verdict ModelKeyState::observe(std::span<const double> x,
                               const std::vector<std::string>& feature_names,
                               uint32_t schema_version) {
  return observe_checked(x, feature_names.size(), schema_version, [&] {
    return std::make_shared<const std::vector<std::string>>(feature_names);
  });
}

void ModelKeyState::precompute(std::span<const double* const> rows, std::size_t width,
                               uint32_t schema_version) {
  pre_.rows.assign(rows.begin(), rows.end());
  pre_.forest_sums.resize(rows.size());
  pre_.next = pre_.ready = 0;
  pre_.width = width;
  pre_.schema_version = schema_version;
  precompute_ahead();
}

void ModelKeyState::precompute_ahead() {
  pre_.ready = pre_.next;
  pre_.fits = fits_;
  if (state_ != ModelState::kActive || !uses_forest() || !forest_.fitted() || pending_fit_ ||
      !has_schema_ || pre_.schema_version != schema_version_ || pre_.width != names_->size() ||
      pre_.width != forest_.dims())
    return;
  // Only the rows before the next refit is due are scored by this forest.
  std::size_t n = pre_.rows.size() - pre_.next;
  if (cfg_.refit_every > 0)
    n = std::min(n, cfg_.refit_every > since_fit_ ? cfg_.refit_every - since_fit_ : 1);
  forest_.sum_leaves_rows({pre_.rows.data() + pre_.next, n}, pre_.forest_sums.data() + pre_.next);
  pre_.ready = pre_.next + n;
}

Verdict ModelKeyState::score(std::span<const double> x) const { return score_impl(x, nullptr); }

Verdict ModelKeyState::score_impl(std::span<const double> x, const double* forest_sum) const {
  Verdict v;
  if (state_ != ModelState::kActive) return v;
  if (x.size() != names_->size()) throw std::invalid_argument("score: wrong vector size");
  v.state = ModelState::kActive;
  double tails[2], weights[2];
  int used = 0;
  if (uses_forest()) {
    v.iforest_raw = forest_sum ? forest_.score_of_sum(*forest_sum) : forest_.score(x);
    v.iforest_tail = std::min(forest_cal_.tail(v.iforest_raw), constant_violation_tail(x));
    weights[used] = forest_weight();
    tails[used++] = v.iforest_tail;
  }
  if (uses_ae()) {
    v.ae_raw = ae_.score(x);
    v.ae_tail = ae_cal_.tail(v.ae_raw);
    weights[used] = ae_weight();
    tails[used++] = v.ae_tail;
  }
  v.combined = combine_tails({tails, static_cast<std::size_t>(used)},
                             {weights, static_cast<std::size_t>(used)});
  v.threshold = threshold_;
  v.alarm = v.combined > threshold_;
  if (v.alarm) {
    const double p = combined_cal_.tail(v.combined);
    v.severity = 1;
    for (double level = cfg_.risk / 10; v.severity < 4 && p < level; level /= 10) ++v.severity;
    v.top = explain_scored(x, v.iforest_raw, v.ae_raw);
  }
  return v;
}

std::vector<Contribution> ModelKeyState::explain(std::span<const double> x) const {
  if (state_ != ModelState::kActive) return {};
  return explain_scored(x, uses_forest() ? forest_.score(x) : 0.0, uses_ae() ? ae_.score(x) : 0.0);
}

std::vector<Contribution> ModelKeyState::explain_scored(std::span<const double> x,
                                                        double forest_raw, double ae_raw) const {
  const auto& names = *names_;
  std::vector<double> share(names.size(), 0.0);
  // Each detector's attribution, as shares, weighted by how surprised that detector is.
  if (uses_forest())
    add_shares(share, forest_.attribution(x),
               forest_weight() * std::max(-std::log10(forest_cal_.tail(forest_raw)), 1e-3));
  if (uses_ae())
    add_shares(share, ae_.attribution(x),
               ae_weight() * std::max(-std::log10(ae_cal_.tail(ae_raw)), 1e-3));
  double total = 0;
  for (const double s : share) total += s;
  std::vector<std::size_t> idx(share.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  const std::size_t k = std::min(cfg_.top_features, idx.size());
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                    [&](std::size_t a, std::size_t b) {
                      return share[a] > share[b] || (share[a] == share[b] && a < b);
                    });
  std::vector<Contribution> out;
  for (std::size_t i = 0; i < k; ++i)
    out.push_back({names[idx[i]], total > 0 ? share[idx[i]] / total : 0.0, x[idx[i]]});
  return out;
}

ModelKeyState::FeedbackOutcome ModelKeyState::feedback_false_positive(std::span<const double> x) {
  if (!has_schema_ || x.size() != names_->size() || first_non_finite(x) < x.size())
    return FeedbackOutcome::kIgnored;  // stale (an old schema) or not a vector of numbers
  const auto cap =
      static_cast<std::size_t>(cfg_.feedback_share * static_cast<double>(cfg_.reservoir_size));
  if (cap == 0) return FeedbackOutcome::kIgnored;
  const std::size_t cols = reservoir_.cols;
  if (feedback_rows_ > 0) {
    // Close to a vector feedback already taught: every feature within kMergeShare of its
    // spread (over the reservoir and x). Many clicks on alike alarms then weigh as one row,
    // so they cannot build a dense cluster that the detectors would learn as normal.
    constexpr double kMergeShare = 0.1;
    std::vector<double> lo(x.begin(), x.end()), hi(x.begin(), x.end());
    for (std::size_t r = 0; r < reservoir_.rows; ++r)
      for (std::size_t j = 0; j < cols; ++j) {
        const double v = reservoir_.values[r * cols + j];
        lo[j] = std::min(lo[j], v);
        hi[j] = std::max(hi[j], v);
      }
    for (std::size_t r = 0; r < reservoir_.rows; ++r) {
      if (!feedback_mark_[r]) continue;
      bool close = true;
      for (std::size_t j = 0; j < cols && close; ++j)
        close = std::abs(static_cast<double>(reservoir_.values[r * cols + j]) - x[j]) <=
                kMergeShare * (hi[j] - lo[j]) + 1e-9 * std::max(1.0, std::abs(x[j]));
      if (close) return FeedbackOutcome::kMerged;
    }
  }
  if (feedback_rows_ < cap) {
    std::size_t slot = reservoir_.rows;
    if (reservoir_.rows >= cfg_.reservoir_size) {
      // The next row, from the cursor on, that is not feedback (there is one: cap < rows).
      slot = ring_next_ % reservoir_.rows;
      while (feedback_mark_[slot]) slot = (slot + 1) % reservoir_.rows;
      ring_next_ = (slot + 1) % reservoir_.rows;
    }
    write_row(slot, x);
    feedback_mark_[slot] = 1;
    ++feedback_rows_;
    return FeedbackOutcome::kAdded;
  }
  // The share is full: feedback replaces feedback, in turn, never other rows.
  std::size_t slot = ring_next_ % reservoir_.rows;
  while (!feedback_mark_[slot]) slot = (slot + 1) % reservoir_.rows;
  ring_next_ = (slot + 1) % reservoir_.rows;
  write_row(slot, x);
  return FeedbackOutcome::kReplaced;
}

std::size_t ModelKeyState::memory_bytes() const {
  std::size_t b = sizeof(*this) + reservoir_.values.capacity() * sizeof(float);
  for (const auto& n : *names_) b += sizeof(std::string) + n.capacity();
  if (forest_.fitted()) b += forest_.memory_bytes();
  if (ae_.fitted()) b += ae_.memory_bytes();
  return b + forest_cal_.memory_bytes() + ae_cal_.memory_bytes() + combined_cal_.memory_bytes();
}

}  // namespace immunizer::analyze
