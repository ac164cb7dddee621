// The per-model-key detector lifecycle: LEARNING (grace) -> ACTIVE, calibrated and combined
// scores, EVT or fixed threshold, explanations, refits on a reservoir, feedback, snapshots.
// ModelKeyState is NOT thread-safe: one owner thread per key (ModelRegistry does that); a
// background refit works on its own copy of the reservoir and is installed by the owner.
// It owns everything it learns; snapshot() bytes are self-contained.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "immunizer/analyze/models/autoencoder.hpp"
#include "immunizer/analyze/models/calibration.hpp"
#include "immunizer/analyze/models/isolation_forest.hpp"
#include "immunizer/analyze/models/matrix.hpp"

namespace immunizer::analyze {

enum class DetectorKind { kIForest, kAutoencoder, kEnsemble };
const char* to_string(DetectorKind k);  // "iforest", "autoencoder", "ensemble"
std::optional<DetectorKind> parse_detector(std::string_view s);

struct DetectorConfig {
  DetectorKind detector = DetectorKind::kEnsemble;  // which detectors score and vote
  // Isolation forest.
  int trees = 100;        // t
  int sample_size = 256;  // psi
  // > 0: multi-scale forest for the ensemble, every odd tree grown on this many points (kIForest
  // ignores it). Off: over 10 seeds on ODDS, 512 gained on satellite but lost more on annthyroid.
  int mixed_sample_size = 0;
  uint64_t seed = 0;    // every fit of a key is deterministic for (seed, data, fit number)
  int fit_threads = 1;  // threads fitting one forest (the registry parallelises across keys)
  // Autoencoder ensemble.
  int ae_max_group = 10;          // features per group autoencoder
  double ae_hidden_ratio = 0.75;  // hidden units per input
  double ae_learning_rate = 0.1;
  int ae_min_updates = 20000;  // SGD steps per fit (epochs over the reservoir, <= 50)
  // SGD steps of a refit, which starts from the current autoencoders (their feature groups
  // and weights) instead of afresh. 0: every refit starts afresh (ae_min_updates steps).
  int ae_refit_updates = 4000;
  double ae_weight = 0.2;  // ensemble: the autoencoder's share of the combined score
  // Lifecycle.
  std::size_t grace_records = 1000;  // vectors learnt before the first fit; no alarms before
  std::size_t refit_every = 10000;   // refit after this many scored vectors (0 = never)
  // Periodic refits run on a background thread (set_refitter; ModelRegistry's) on a copy of
  // the reservoir, while scoring goes on with the current model; the new model is swapped in
  // at the key's first vector after it is ready. The first fit (end of the grace period)
  // stays in observe(): no vector is scored before it. Off: every fit runs inside observe()
  // (deterministic, for tests and offline scoring).
  bool background_refit = false;
  std::size_t reservoir_size = 2048;  // unalarmed vectors kept for refits (>= grace used): all of
                                      // the first ones, then a decaying sample of the history;
                                      // the snapshot holds them: ~4 bytes x features x this
  // Analyst feedback (false positives) takes at most this share of the reservoir; a vector
  // close to one already taught (every feature within 10% of its spread) is not added again,
  // and the threshold is calibrated on the other rows only. So no amount of feedback can make
  // the reservoir, or the threshold, be mostly what feedback said.
  double feedback_share = 0.1;
  // Threshold on the combined score (mean of -log10 tail probability over the detectors).
  double risk = 1e-3;                     // EVT: target probability that a normal vector alarms
  double peak_quantile = 0.98;            // peaks-over-threshold: fit the GPD above this quantile
  std::optional<double> fixed_threshold;  // set: use it instead of EVT (e.g. 4 = 1 in 10^4)
  std::size_t top_features = 5;           // contributions reported with an alarm
};

// Throws std::invalid_argument naming the first field out of range (e.g. "risk: must be in
// (0, 0.5)"); the service's config loader calls it once at start.
void validate(const DetectorConfig& cfg);

enum class ModelState { kLearning, kActive };
const char* to_string(ModelState s);  // "LEARNING", "ACTIVE"

struct Contribution {
  std::string feature;
  double contribution = 0;  // share of the evidence, weighted by each detector's surprise
  double value = 0;         // the feature's value in the scored vector
};

struct Verdict {
  ModelState state = ModelState::kLearning;
  double iforest_raw = 0, iforest_tail = 1;  // raw s(x) and P(training score >= raw)
  double ae_raw = 0, ae_tail = 1;            // raw RMSE and its tail probability
  double combined = 0;                       // weighted mean -log10(tail) of the enabled detectors
  double threshold = 0;
  bool alarm = false;
  int severity = 0;  // 0 none; 1..4 as the combined tail is < risk, risk/10, /100, /1000
  std::vector<Contribution> top;  // filled on alarm only
};

// Feature names of a schema, shared between analyze's schema cache and the model states.
using FeatureNames = std::shared_ptr<const std::vector<std::string>>;

class TaskQueue;

class ModelKeyState {
 public:
  explicit ModelKeyState(DetectorConfig cfg);
  ~ModelKeyState();
  ModelKeyState(ModelKeyState&&) noexcept;
  ModelKeyState& operator=(ModelKeyState&&) noexcept;

  // Where background refits run (DetectorConfig::background_refit); must outlive the state's
  // use of it (the registry's queue). nullptr: refits run in observe().
  void set_refitter(TaskQueue* q) { refitter_ = q; }
  // A background refit was started and is not installed yet.
  bool refit_pending() const { return pending_fit_ != nullptr; }
  // Waits for a pending background refit and installs it (tests, final snapshots); returns
  // whether one was installed.
  bool finish_refit();

  // Learns or scores x. feature_names.size() must equal x.size() and every value must be
  // finite (std::invalid_argument otherwise: the vector is refused, nothing changes); a different
  // schema version (or vector width) restarts learning. The names are kept from the first vector of
  // a schema version, for explanations: the shared form keeps a reference (no copy), the other
  // copies them once per schema version.
  Verdict observe(std::span<const double> x, const FeatureNames& feature_names,
                  uint32_t schema_version);
  Verdict observe(std::span<const double> x, const std::vector<std::string>& feature_names,
                  uint32_t schema_version);
  // Optional, before observing a run of rows (the vectors of one key in a consumed batch):
  // computes the forest's part of the scores of those the current model will score, tree-major
  // (each tree read from memory once per block of rows instead of once per row: a key's forest
  // is larger than the L2 cache). observe() uses the result for a row whose data pointer is the
  // next one given here, computing the rows left again after a refit; anything else is scored
  // directly, so the verdicts are the same to the bit either way. rows[i] points at `width` values
  // that must stay valid and unchanged until observed or until the next call.
  void precompute(std::span<const double* const> rows, std::size_t width, uint32_t schema_version);
  // Scores without learning (nothing changes); Verdict::state is kLearning before the first fit.
  Verdict score(std::span<const double> x) const;
  // Top contributions for x, whether or not it alarms (empty while learning).
  std::vector<Contribution> explain(std::span<const double> x) const;
  // An analyst says x was normal: it joins the reservoir of the next refit, within the
  // feedback share (DetectorConfig::feedback_share).
  enum class FeedbackOutcome {
    kAdded,     // a new feedback row
    kReplaced,  // the share is full: replaced the feedback row after the last one replaced
    kMerged,    // close to a feedback row already in the reservoir: nothing changed
    kIgnored,   // no schema yet, another schema's width, a NaN or infinity, or a share of 0
  };
  FeedbackOutcome feedback_false_positive(std::span<const double> x);
  // Reservoir rows that came from feedback, and all rows.
  std::size_t feedback_rows() const { return feedback_rows_; }
  std::size_t reservoir_rows() const { return reservoir_.rows; }

  std::string snapshot() const;
  // cfg may differ from the snapshot's (e.g. a new risk applies at once); throws
  // std::runtime_error on corrupt input.
  static ModelKeyState restore(const std::string& bytes, DetectorConfig cfg);

  ModelState state() const { return state_; }
  std::size_t records_seen() const { return records_seen_; }
  std::size_t fits() const { return fits_; }
  uint32_t schema_version() const { return schema_version_; }
  double threshold() const { return threshold_; }
  std::size_t memory_bytes() const;
  const DetectorConfig& config() const { return cfg_; }

 private:
  bool uses_forest() const { return cfg_.detector != DetectorKind::kAutoencoder; }
  bool uses_ae() const { return cfg_.detector != DetectorKind::kIForest; }
  double forest_weight() const { return uses_ae() ? 1.0 - cfg_.ae_weight : 1.0; }
  double ae_weight() const { return uses_forest() ? cfg_.ae_weight : 1.0; }
  void reset(FeatureNames names, uint32_t version);
  // A fit: inputs copied from the state, outputs computed on any thread, then installed.
  struct FitJob;
  std::shared_ptr<FitJob> make_fit_job() const;
  static void run_fit(FitJob& job);
  void install_fit(FitJob& job);
  // A refit is due: in the background when set up for it, else now.
  void refit();
  void install_pending_if_done();
  // observe() after the schema check; `names` makes the names when the schema changes.
  template <class MakeNames>
  Verdict observe_checked(std::span<const double> x, std::size_t names_size,
                          uint32_t schema_version, const MakeNames& names);
  // score(), with the forest's sum of path lengths already known when forest_sum is set.
  Verdict score_impl(std::span<const double> x, const double* forest_sum) const;
  // explain() of an active state, given x's raw detector scores (score_impl has them already).
  std::vector<Contribution> explain_scored(std::span<const double> x, double forest_raw,
                                           double ae_raw) const;
  // Adds x to the refit reservoir (sampled once full).
  void remember(std::span<const double> x);
  void write_row(std::size_t slot, std::span<const double> x);
  void fit_models();
  // The reservoir rows that came from feedback, or the others (all rows when fewer than 2
  // others are left).
  Matrix rows_from(bool feedback) const;
  // Constants and ranges from `data` (traffic); `feedback` rows may widen the ranges.
  void learn_constants(const Matrix& data, const Matrix* feedback);
  double constant_violation_tail(std::span<const double> x) const;
  void set_threshold();

  DetectorConfig cfg_;
  ModelState state_ = ModelState::kLearning;
  bool has_schema_ = false;
  uint32_t schema_version_ = 0;
  FeatureNames names_ = std::make_shared<const std::vector<std::string>>();
  std::size_t records_seen_ = 0;
  std::size_t since_fit_ = 0;
  std::size_t fits_ = 0;
  // Training vectors kept as float (half the memory and snapshot bytes; models are fitted on
  // exactly these values, so a restored state refits identically). Ring buffer once full.
  struct Reservoir {
    std::size_t rows = 0, cols = 0;
    std::vector<float> values;
  } reservoir_;
  std::size_t ring_next_ = 0;           // where the next scan for a feedback slot starts
  std::vector<uint8_t> feedback_mark_;  // per reservoir row: 1 when it came from feedback
  std::size_t feedback_rows_ = 0;
  IsolationForest forest_;
  AutoencoderEnsemble ae_;
  TailCalibrator forest_cal_, ae_cal_, combined_cal_;
  double threshold_ = 0;
  // Per feature: its value if it was constant over the last fit's data, else NaN. A forest
  // never splits on such a feature, so a vector that leaves it is invisible to the trees;
  // score() treats that as a value never seen in the key's history. Rebuilt from the
  // reservoir on restore.
  std::vector<double> constant_;
  std::vector<double> lo_, hi_;  // each feature's range in the fit's data
  std::vector<double> rarity_;   // tail for leaving the usual value; -1: it never varied
  TaskQueue* refitter_ = nullptr;
  std::shared_ptr<FitJob> pending_fit_;  // a background refit under way
  // precompute()'s rows and their forest sums: forest_sums[i] for i in [next, ready) is valid
  // while fits_ == fits (the same forest).
  struct Precomputed {
    std::vector<const double*> rows;
    std::vector<double> forest_sums;
    std::size_t next = 0;   // the row observe() expects next
    std::size_t ready = 0;  // rows before this one have their sums
    std::size_t fits = 0;
    std::size_t width = 0;
    uint32_t schema_version = 0;
  } pre_;
  // The forest sums of the rows from pre_.next up to the next refit, by the current forest
  // (none when it cannot score them).
  void precompute_ahead();
};

}  // namespace immunizer::analyze
