// `immunizer eval csic`: CSIC 2010 through the live pipeline. Starts an embedded broker (or
// uses --bootstrap), the monitor and analyze services and the instrumented shop (effector
// off, plan/execute not started, so nothing is ever blocked), replays the training file,
// waits until the pipeline has scored it, replays the normal and anomalous test requests
// interleaved, groups the Scores by their trace label (one request = the outer
// `http.request` record + the endpoint record) and reports AUC, detection at 1% FP,
// precision/recall at the alarm threshold, R-precision, counts and throughput.
// compute_metrics() is pure and thread-safe; eval_csic_command() runs one evaluation.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace immunizer::tools {

struct EvalOptions {
  std::string training, normal, anomalous;  // CSIC 2010 files (.txt or .txt.gz)
  std::string json_out;                     // write the summary and every request's score here
  std::string bootstrap;                    // empty: embedded broker in this process
  std::string bin_dir;                      // immunizer-* binaries; default: beside `immunizer`
  bool keep_running = false;                // after the report, keep the stack up until Ctrl-C
  size_t training_count = 0;                // first N training requests (0: all)
  size_t test_count = 0;                    // first N of each test file (0: all)
  int concurrency = 4;                      // replay connections
  double rate = 0;                          // requests per second (0: as fast as the shop answers)
  int time_limit_seconds = 3600;            // the whole run stops itself after this
  int stall_seconds = 60;                  // give up waiting for scores after this long without one
  size_t max_lag = 4000;                   // replay waits while more records than this are unscored
  int partitions = 3;                      // embedded broker: partitions of calls/features/scores
  std::map<std::string, std::string> env;  // IMMUNIZER_* for every child (e.g. analyze settings)
};

// Per-request scores of the two classes (higher = more anomalous) and whether any of the
// request's records alarmed.
struct EvalMetrics {
  size_t normal = 0, anomalous = 0;
  double auc = 0;  // P(anomalous > normal), ties count one half
  double threshold_at_1fp =
      0;  // smallest score threshold with FP rate <= 1% (strictly greater alarms)
  double fp_rate_at_1fp = 0;              // FP rate actually reached at that threshold
  double detection_at_1fp = 0;            // share of anomalous requests above it
  size_t tp = 0, fp = 0, tn = 0, fn = 0;  // at the pipeline's own alarm threshold
  double precision = 0, recall = 0, alarm_fp_rate = 0;
  double r_precision = 0;  // share of anomalous among the top-R scores, R = #anomalous
};
EvalMetrics compute_metrics(const std::vector<double>& normal, const std::vector<double>& anomalous,
                            const std::vector<bool>& normal_alarmed,
                            const std::vector<bool>& anomalous_alarmed);

// A request's score from its records' combined scores (each -log10 of a tail probability):
// Fisher's method, -log10 P(chi2 with 2k dof >= -2 sum ln p_i). One record: its own score.
double combine_fisher(const std::vector<double>& scores);

int eval_csic_command(const EvalOptions& o);

}  // namespace immunizer::tools
