#include "immunizer/analyze/models/model_key_state.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <limits>
#include <random>

#include "immunizer/analyze/models/registry.hpp"
#include "immunizer/analyze/models/thread_pool.hpp"

namespace immunizer::analyze {
namespace {

const std::vector<std::string> kNames = {"len", "digits", "rate", "errors"};

std::vector<double> normal_vector(std::mt19937_64& gen) {
  std::normal_distribution<double> nd;
  const double a = nd(gen);
  return {10 + a, 3 + 0.5 * a + 0.2 * nd(gen), 1 + 0.1 * nd(gen), 0.05 * std::abs(nd(gen))};
}

DetectorConfig small_config(DetectorKind kind = DetectorKind::kEnsemble) {
  DetectorConfig c;
  c.detector = kind;
  c.grace_records = 300;
  c.refit_every = 200;
  c.reservoir_size = 400;
  c.ae_min_updates = 3000;
  c.seed = 11;
  return c;
}

TEST(ModelKeyState, LearnsThenScores) {
  ModelKeyState m(small_config());
  std::mt19937_64 gen(1);
  for (int i = 0; i < 299; ++i) {
    const auto v = m.observe(normal_vector(gen), kNames, 1);
    EXPECT_EQ(v.state, ModelState::kLearning);
    EXPECT_FALSE(v.alarm);
  }
  EXPECT_EQ(m.state(), ModelState::kLearning);
  m.observe(normal_vector(gen), kNames, 1);
  EXPECT_EQ(m.state(), ModelState::kActive);
  EXPECT_EQ(m.records_seen(), 300u);

  int alarms = 0;
  for (int i = 0; i < 1000; ++i) alarms += m.observe(normal_vector(gen), kNames, 1).alarm;
  EXPECT_LT(alarms, 30);    // risk 1e-3 on in-distribution data: a handful at most
  EXPECT_GE(m.fits(), 5u);  // refit every 200 scored vectors

  const auto v = m.observe(std::vector<double>{10, 3, 1, 4.0}, kNames, 1);  // errors way off
  EXPECT_EQ(v.state, ModelState::kActive);
  EXPECT_TRUE(v.alarm);
  EXPECT_GE(v.severity, 1);
  EXPECT_GT(v.combined, v.threshold);
  // The forest cannot split beyond the training range, so one wild feature out of four
  // only ranks with the most extreme training points; the autoencoder sees it clearly.
  EXPECT_LT(v.iforest_tail, 0.1);
  EXPECT_LT(v.ae_tail, 0.01);
  ASSERT_FALSE(v.top.empty());
  EXPECT_EQ(v.top[0].feature, "errors");  // the planted feature explains the alarm
  EXPECT_DOUBLE_EQ(v.top[0].value, 4.0);
  EXPECT_GT(v.top[0].contribution, 0.3);
}

// A NaN or infinity is refused (std::invalid_argument, nothing learnt). Before, a NaN in the
// reservoir made the end of the grace period loop forever (NaN is unequal to itself), which
// the feature_vector fuzz target found as a timeout: one such value from the features topic
// stopped analyze.
TEST(ModelKeyState, NonFiniteValuesAreRefusedAndNeverHangAFit) {
  DetectorConfig c = small_config();
  c.grace_records = 16;
  ModelKeyState m(c);
  std::mt19937_64 gen(5);
  for (int i = 0; i < 15; ++i) m.observe(normal_vector(gen), kNames, 1);
  for (const double bad :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity()}) {
    std::vector<double> x = normal_vector(gen);
    x[2] = bad;
    EXPECT_THROW(m.observe(x, kNames, 1), std::invalid_argument);
    EXPECT_EQ(m.feedback_false_positive(x), ModelKeyState::FeedbackOutcome::kIgnored);
  }
  EXPECT_EQ(m.records_seen(), 15u);
  EXPECT_EQ(m.state(), ModelState::kLearning);
  m.observe(normal_vector(gen), kNames, 1);  // the 16th finite vector ends the grace period
  EXPECT_EQ(m.state(), ModelState::kActive);
  std::vector<double> x = normal_vector(gen);
  x[0] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(m.observe(x, kNames, 1), std::invalid_argument);  // scoring refuses it too
  EXPECT_EQ(m.records_seen(), 16u);
}

TEST(ModelKeyState, LeavingAFeatureConstantInTrainingIsNovel) {
  // "unseen" (like the monitor's unseen-argument count) is 0 in every training vector: no
  // tree can split on it, so the forest alone would not see a vector that sets it.
  const std::vector<std::string> names = {"len", "digits", "rate", "unseen"};
  ModelKeyState m(small_config(DetectorKind::kIForest));
  std::mt19937_64 gen(5);
  auto sample = [&] {
    auto v = normal_vector(gen);
    v[3] = 0;
    return v;
  };
  for (int i = 0; i < 300; ++i) m.observe(sample(), names, 1);
  ASSERT_EQ(m.state(), ModelState::kActive);
  auto x = sample();
  EXPECT_GT(m.score(x).iforest_tail, 0.01);
  x[3] = 0.2;  // drift below half a unit: not a change of kind
  EXPECT_GT(m.score(x).iforest_tail, 0.01);
  x[3] = 1;
  const auto v = m.score(x);
  EXPECT_LE(v.iforest_tail, 1.0 / 301.0);  // as rare as never seen in the 300 vectors so far
  EXPECT_GE(v.combined, std::log10(301.0) - 1e-9);
  // Restored from a snapshot, the model still knows which features were constant.
  const auto back = ModelKeyState::restore(m.snapshot(), small_config(DetectorKind::kIForest));
  EXPECT_DOUBLE_EQ(back.score(x).iforest_tail, v.iforest_tail);
}

TEST(ModelKeyState, LeavingAnAlmostConstantFeatureScoresItsRarity) {
  // "flag" is 1 in 2 of the 300 training vectors (< 1%): leaving 0 has tail ~3/301.
  const std::vector<std::string> names = {"len", "digits", "rate", "flag"};
  ModelKeyState m(small_config(DetectorKind::kIForest));
  std::mt19937_64 gen(9);
  for (int i = 0; i < 300; ++i) {
    auto v = normal_vector(gen);
    v[3] = (i == 50 || i == 150) ? 1 : 0;
    m.observe(v, names, 1);
  }
  ASSERT_EQ(m.state(), ModelState::kActive);
  auto x = normal_vector(gen);
  x[3] = 0;
  EXPECT_GT(m.score(x).iforest_tail, 0.01);
  x[3] = 1;
  EXPECT_LE(m.score(x).iforest_tail, 3.0 / 301.0 + 1e-12);
  EXPECT_GT(m.score(x).iforest_tail, 1.0 / 301.0);  // seen before: rarer than usual, not new
}

TEST(ModelKeyState, FarOutsideTheTrainingRangeIsRare) {
  ModelKeyState m(small_config(DetectorKind::kIForest));
  std::mt19937_64 gen(13);
  for (int i = 0; i < 300; ++i) m.observe(normal_vector(gen), kNames, 1);
  ASSERT_EQ(m.state(), ModelState::kActive);
  auto x = normal_vector(gen);
  EXPECT_GT(m.score(x).iforest_tail, 0.01);
  x[0] = 1000;  // "len" ~ N(10, 1): far beyond its range
  EXPECT_LE(m.score(x).iforest_tail, 2.0 * 4 / 301.0 + 1e-12);
}

TEST(ModelKeyState, SchemaChangeRestartsLearning) {
  ModelKeyState m(small_config(DetectorKind::kIForest));
  std::mt19937_64 gen(2);
  for (int i = 0; i < 300; ++i) m.observe(normal_vector(gen), kNames, 1);
  ASSERT_EQ(m.state(), ModelState::kActive);
  m.observe(normal_vector(gen), kNames, 2);
  EXPECT_EQ(m.state(), ModelState::kLearning);
  EXPECT_EQ(m.schema_version(), 2u);
  EXPECT_THROW(m.observe(std::vector<double>{1, 2}, kNames, 2), std::invalid_argument);
}

TEST(ModelKeyState, SnapshotRoundTripScoresIdentically) {
  for (const auto kind :
       {DetectorKind::kIForest, DetectorKind::kAutoencoder, DetectorKind::kEnsemble}) {
    ModelKeyState m(small_config(kind));
    std::mt19937_64 gen(3);
    for (int i = 0; i < 450; ++i) m.observe(normal_vector(gen), kNames, 7);
    auto r = ModelKeyState::restore(m.snapshot(), small_config(kind));
    EXPECT_EQ(r.state(), ModelState::kActive);
    EXPECT_EQ(r.records_seen(), m.records_seen());
    EXPECT_EQ(r.snapshot(), m.snapshot());
    // Both continue identically, refits included.
    for (int i = 0; i < 300; ++i) {
      const auto x = normal_vector(gen);
      const auto a = m.observe(x, kNames, 7), b = r.observe(x, kNames, 7);
      ASSERT_EQ(a.combined, b.combined) << to_string(kind) << " at " << i;
      ASSERT_EQ(a.alarm, b.alarm);
      ASSERT_EQ(a.threshold, b.threshold);
    }
  }
}

TEST(ModelKeyState, DefaultSnapshotFitsAKafkaMessage) {
  // 40 features, default config (ensemble, 2048-vector reservoir): the snapshot must stay
  // under Kafka's default 1 MB message size.
  std::vector<std::string> names;
  for (int i = 0; i < 40; ++i) names.push_back(std::string("f").append(std::to_string(i)));
  ModelKeyState m{DetectorConfig{}};
  std::mt19937_64 gen(9);
  std::normal_distribution<double> nd;
  std::vector<double> x(40);
  for (int i = 0; i < 2100; ++i) {
    for (auto& v : x) v = nd(gen);
    m.observe(x, names, 1);
  }
  ASSERT_EQ(m.state(), ModelState::kActive);
  EXPECT_LT(m.snapshot().size(), 900'000u);
  EXPECT_LT(m.memory_bytes(), 2u << 20);
}

TEST(ModelKeyState, CorruptSnapshotThrows) {
  ModelKeyState m(small_config(DetectorKind::kIForest));
  std::mt19937_64 gen(4);
  for (int i = 0; i < 300; ++i) m.observe(normal_vector(gen), kNames, 1);
  auto bytes = m.snapshot();
  EXPECT_THROW(ModelKeyState::restore(bytes.substr(0, 100), small_config()), std::runtime_error);
  bytes[bytes.size() / 2] ^= 1;
  EXPECT_THROW(ModelKeyState::restore(bytes, small_config()), std::runtime_error);
  EXPECT_THROW(ModelKeyState::restore("", small_config()), std::runtime_error);
}

TEST(ModelKeyState, FixedThresholdAndFeedback) {
  auto cfg = small_config(DetectorKind::kIForest);
  cfg.fixed_threshold = 100.0;  // nothing can be that surprising
  ModelKeyState m(cfg);
  std::mt19937_64 gen(5);
  for (int i = 0; i < 300; ++i) m.observe(normal_vector(gen), kNames, 1);
  const std::vector<double> odd = {10, 3, 1, 4.0};
  EXPECT_FALSE(m.observe(odd, kNames, 1).alarm);
  EXPECT_EQ(m.threshold(), 100.0);

  // False positives of one kind fed back (alike, not identical alarms) teach the model within
  // the feedback share of the reservoir: after the refit they no longer alarm, while they do
  // for a twin fed the same traffic without feedback.
  std::vector<std::vector<double>> traffic;
  for (int i = 0; i < 500; ++i) traffic.push_back(normal_vector(gen));
  ModelKeyState f(small_config()), twin(small_config());
  for (int i = 0; i < 300; ++i)
    f.observe(traffic[i], kNames, 1), twin.observe(traffic[i], kNames, 1);
  std::normal_distribution<double> nd;
  for (int i = 0; i < 150; ++i) {
    auto x = normal_vector(gen);
    x[3] = 4.0 + 0.5 * nd(gen);
    f.feedback_false_positive(x);
  }
  EXPECT_EQ(f.feedback_rows(), 40u);  // 10% of the 400-vector reservoir, whatever the clicks
  for (int i = 300; i < 500; ++i)
    f.observe(traffic[i], kNames, 1), twin.observe(traffic[i], kNames, 1);
  ASSERT_EQ(f.fits(), twin.fits());
  EXPECT_TRUE(twin.score(odd).alarm);
  EXPECT_FALSE(f.score(odd).alarm) << f.score(odd).combined << " vs " << f.score(odd).threshold;
}

TEST(ModelKeyState, AThousandFalsePositiveFeedbacksCannotMakeADetectedAttackNormal) {
  for (const auto kind :
       {DetectorKind::kIForest, DetectorKind::kAutoencoder, DetectorKind::kEnsemble}) {
    ModelKeyState m(small_config(kind));
    std::mt19937_64 gen(21);
    for (int i = 0; i < 700; ++i) m.observe(normal_vector(gen), kNames, 1);
    // Off in every feature for the forest alone, off in one for the others (both detected).
    const std::vector<double> attack = kind == DetectorKind::kIForest
                                           ? std::vector<double>{25, -10, 5, 4.0}
                                           : std::vector<double>{10, 3, 1, 4.0};
    ASSERT_TRUE(m.score(attack).alarm) << to_string(kind);
    // 1,000 clicks on the attack's alarms: the vector itself and alike ones (within 2%).
    std::uniform_real_distribution<double> jitter(-0.02, 0.02);
    for (int i = 0; i < 1000; ++i) {
      auto x = attack;
      if (i % 2)
        for (auto& v : x) v *= 1 + jitter(gen);
      const auto outcome = m.feedback_false_positive(x);
      EXPECT_NE(outcome, ModelKeyState::FeedbackOutcome::kIgnored);
    }
    EXPECT_LE(m.feedback_rows(), m.reservoir_rows() / 10) << to_string(kind);
    // Several refits later the attack is still an attack.
    const size_t fits = m.fits();
    for (int i = 0; i < 600; ++i) m.observe(normal_vector(gen), kNames, 1);
    ASSERT_GE(m.fits(), fits + 3);
    const auto v = m.score(attack);
    EXPECT_TRUE(v.alarm) << to_string(kind) << ": combined " << v.combined << " threshold "
                         << v.threshold;
    // And so after a restart from the snapshot.
    auto r = ModelKeyState::restore(m.snapshot(), small_config(kind));
    EXPECT_EQ(r.feedback_rows(), m.feedback_rows());
    EXPECT_TRUE(r.score(attack).alarm);
  }
}

TEST(ModelKeyState, FeedbackShareIsAHardCapAndTrafficStillReplacesFeedbackRows) {
  auto cfg = small_config(DetectorKind::kIForest);
  cfg.feedback_share = 0.05;
  ModelKeyState m(cfg);
  std::mt19937_64 gen(8);
  for (int i = 0; i < 400; ++i) m.observe(normal_vector(gen), kNames, 1);
  std::uniform_real_distribution<double> far(0, 1000);
  for (int i = 0; i < 1000; ++i) {
    const std::vector<double> x = {far(gen), far(gen), far(gen), far(gen)};
    m.feedback_false_positive(x);
  }
  EXPECT_EQ(m.feedback_rows(), 20u);
  EXPECT_EQ(m.reservoir_rows(), 400u);
  for (int i = 0; i < 5000; ++i) m.observe(normal_vector(gen), kNames, 1);
  EXPECT_LT(m.feedback_rows(), 20u);  // sampled traffic overwrites them like any row
  cfg.feedback_share = 0;
  ModelKeyState none(cfg);
  for (int i = 0; i < 300; ++i) none.observe(normal_vector(gen), kNames, 1);
  EXPECT_EQ(none.feedback_false_positive(std::vector<double>{10, 3, 1, 4.0}),
            ModelKeyState::FeedbackOutcome::kIgnored);
  EXPECT_EQ(none.feedback_rows(), 0u);
}

TEST(DetectorConfig, ValidateNamesTheField) {
  EXPECT_NO_THROW(validate(DetectorConfig{}));
  DetectorConfig c;
  c.risk = 0;
  try {
    validate(c);
    FAIL() << "risk 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("risk:", 0), 0u) << e.what();
  }
  c = {};
  c.sample_size = 1;
  EXPECT_THROW(validate(c), std::invalid_argument);
  c = {};
  c.fixed_threshold = std::numeric_limits<double>::infinity();
  EXPECT_THROW(validate(c), std::invalid_argument);
}

// Issue 13: a periodic refit runs in the background: scoring goes on with the current model
// until the new one is swapped in, and the new one is the very fit the in-line refit makes.
TEST(ModelKeyState, BackgroundRefitKeepsScoringThenSwapsInTheSameModel) {
  DetectorConfig cfg = small_config();  // grace 300, refit every 200
  DetectorConfig bg_cfg = cfg;
  bg_cfg.background_refit = true;
  TaskQueue queue;
  ModelKeyState inline_fit(cfg), background(bg_cfg);
  background.set_refitter(&queue);
  std::mt19937_64 gen(5);
  std::vector<std::vector<double>> xs;
  for (int i = 0; i < 600; ++i) xs.push_back(normal_vector(gen));
  for (int i = 0; i < 499; ++i) {  // the first fit is in line for both
    const auto a = inline_fit.observe(xs[i], kNames, 1), b = background.observe(xs[i], kNames, 1);
    ASSERT_EQ(a.combined, b.combined) << i;
  }
  EXPECT_EQ(background.fits(), 1u);
  const double before = background.score(xs[550]).combined;
  inline_fit.observe(xs[499], kNames, 1);  // the 200th scored vector: a refit is due
  background.observe(xs[499], kNames, 1);
  EXPECT_EQ(inline_fit.fits(), 2u);
  EXPECT_EQ(background.fits(), 1u);
  EXPECT_TRUE(background.refit_pending());
  EXPECT_EQ(background.score(xs[550]).combined, before) << "the old model scores meanwhile";
  ASSERT_TRUE(background.finish_refit());  // a test may wait for it
  EXPECT_FALSE(background.refit_pending());
  EXPECT_EQ(background.fits(), 2u);
  for (int i = 500; i < 600; ++i)
    ASSERT_EQ(inline_fit.observe(xs[i], kNames, 1).combined,
              background.observe(xs[i], kNames, 1).combined)
        << i;
  // Installed without waiting too: the next refit is picked up by a later vector.
  for (int i = 0; i < 400 && background.fits() < 3; ++i) {
    background.observe(normal_vector(gen), kNames, 1);
    if (background.refit_pending()) queue.wait_idle();
  }
  EXPECT_EQ(background.fits(), 3u);
}

// precompute() (the forest's scores of a run of rows, tree-major) changes no verdict: runs that
// cross refits, a row observed out of step, rows of another schema and an outlier all score as
// without it, and both states stay the same.
TEST(ModelKeyState, PrecomputedForestScoresGiveTheSameVerdicts) {
  for (const auto kind : {DetectorKind::kEnsemble, DetectorKind::kIForest}) {
    ModelKeyState plain(small_config(kind)), batched(small_config(kind));
    std::mt19937_64 gen(5);
    std::vector<std::vector<double>> rows;
    for (int i = 0; i < 1700; ++i) rows.push_back(normal_vector(gen));
    rows[1234] = {10, 3, 1, 4.0};  // an outlier: alarmed, explained, not remembered
    for (std::size_t at = 0, run = 1; at < rows.size(); at += run, run = run * 3 % 157 + 1) {
      const std::size_t end = std::min(rows.size(), at + run);
      std::vector<const double*> ptrs;
      for (std::size_t i = at; i < end; ++i) ptrs.push_back(rows[i].data());
      batched.precompute(ptrs, kNames.size(), 1);
      for (std::size_t i = at; i < end; ++i) {
        if (i == at + 2 && run > 10) {
          // Out of step (another row first): the rest of the run is scored directly.
          const auto extra = normal_vector(gen);
          ASSERT_EQ(plain.observe(extra, kNames, 1).combined,
                    batched.observe(extra, kNames, 1).combined);
        }
        const auto a = plain.observe(rows[i], kNames, 1), b = batched.observe(rows[i], kNames, 1);
        ASSERT_EQ(a.combined, b.combined) << i;
        ASSERT_EQ(a.iforest_raw, b.iforest_raw) << i;
        ASSERT_EQ(a.alarm, b.alarm) << i;
        ASSERT_EQ(a.top.size(), b.top.size()) << i;
      }
    }
    EXPECT_GE(batched.fits(), 5u);  // the runs crossed refits
    EXPECT_EQ(plain.snapshot(), batched.snapshot());
    // A precompute for another schema version, or width, is ignored.
    std::vector<const double*> one{rows[0].data()};
    batched.precompute(one, kNames.size(), 2);
    batched.precompute(one, 3, 1);
    EXPECT_EQ(plain.observe(rows[0], kNames, 1).combined,
              batched.observe(rows[0], kNames, 1).combined);
  }
}

TEST(ModelRegistry, ParallelEqualsSequential) {
  std::vector<Observation> batch;
  std::mt19937_64 gen(6);
  for (int i = 0; i < 4000; ++i)
    batch.push_back({"app|call" + std::to_string(i % 5) + "|", normal_vector(gen), kNames, 1});
  batch[3999].values = {1, 2};  // a bad observation becomes an error, not an exception
  ModelRegistry par(small_config(), 2), seq(small_config(), 1);
  const auto a = par.observe_batch(batch);
  const auto b = seq.observe_batch(batch);
  ASSERT_EQ(a.size(), batch.size());
  EXPECT_FALSE(a[3999].error.empty());
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(a[i].verdict.combined, b[i].verdict.combined) << i;
  EXPECT_EQ(par.size(), 5u);
  EXPECT_EQ(par.find("app|call0|")->state(), ModelState::kActive);
  EXPECT_GT(par.memory_bytes(), 0u);
}

// A snapshot (state version 3) as the code before the common byte codec wrote it: an active
// ensemble after 70 vectors (8 trees of 32, reservoir 80). Still readable, written again to the
// byte.
TEST(ModelKeyState, ReadsAndRewritesSnapshotsOfEarlierBuilds) {
  std::ifstream in(
      std::string(IMMUNIZER_SOURCE_DIR) + "/analyze/tests/models/data/model_key_state_v3.snapshot",
      std::ios::binary);
  ASSERT_TRUE(in);
  const std::string old((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  DetectorConfig c = small_config();
  c.trees = 8;
  c.sample_size = 32;
  c.grace_records = 60;
  c.reservoir_size = 80;
  c.ae_min_updates = 200;
  const ModelKeyState m = ModelKeyState::restore(old, c);
  EXPECT_EQ(m.state(), ModelState::kActive);
  EXPECT_EQ(m.records_seen(), 70u);
  EXPECT_EQ(m.snapshot(), old);
}

}  // namespace
}  // namespace immunizer::analyze
