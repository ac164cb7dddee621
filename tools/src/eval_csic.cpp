#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>
#include <unordered_map>

#include "immunizer/common/kafka.hpp"
#include "immunizer/common/mock_broker.hpp"
#include "immunizer/common/ranking_metrics.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/monitor/csic.hpp"
#include "immunizer/replay/replayer.hpp"
#include "immunizer/tools/eval.hpp"
#include "immunizer/tools/supervisor.hpp"
#include "immunizer/v1/records.pb.h"

namespace fs = std::filesystem;
namespace csic = immunizer::monitor::csic;
using json = nlohmann::json;

namespace immunizer::tools {

EvalMetrics compute_metrics(const std::vector<double>& normal, const std::vector<double>& anomalous,
                            const std::vector<bool>& normal_alarmed,
                            const std::vector<bool>& anomalous_alarmed) {
  EvalMetrics m;
  m.normal = normal.size();
  m.anomalous = anomalous.size();
  // AUC and R-precision as every evaluation computes them (ties: average over their orders).
  std::vector<double> scores;
  std::vector<int> labels;
  scores.reserve(normal.size() + anomalous.size());
  scores.insert(scores.end(), normal.begin(), normal.end());
  scores.insert(scores.end(), anomalous.begin(), anomalous.end());
  labels.assign(normal.size(), 0);
  labels.resize(scores.size(), 1);
  if (!normal.empty() && !anomalous.empty()) m.auc = common::roc_auc(scores, labels);
  if (!anomalous.empty()) m.r_precision = common::r_precision(scores, labels);
  // Detection at 1% FP: threshold t = the normal score with floor(1% * N) normal scores above
  // or tied, alarms are "score > t", so at most 1% of normal requests exceed it.
  if (!normal.empty()) {
    std::vector<double> ns = normal;
    std::sort(ns.begin(), ns.end(), std::greater<>());
    const size_t allowed = static_cast<size_t>(0.01 * static_cast<double>(ns.size()));
    m.threshold_at_1fp = ns[std::min(allowed, ns.size() - 1)];
    size_t fp = 0, det = 0;
    for (double s : normal) fp += s > m.threshold_at_1fp;
    for (double s : anomalous) det += s > m.threshold_at_1fp;
    m.fp_rate_at_1fp = static_cast<double>(fp) / static_cast<double>(ns.size());
    m.detection_at_1fp =
        anomalous.empty() ? 0 : static_cast<double>(det) / static_cast<double>(anomalous.size());
  }
  for (bool a : normal_alarmed) (a ? m.fp : m.tn)++;
  for (bool a : anomalous_alarmed) (a ? m.tp : m.fn)++;
  m.precision = m.tp + m.fp ? static_cast<double>(m.tp) / static_cast<double>(m.tp + m.fp) : 0;
  m.recall = m.tp + m.fn ? static_cast<double>(m.tp) / static_cast<double>(m.tp + m.fn) : 0;
  m.alarm_fp_rate = m.fp + m.tn ? static_cast<double>(m.fp) / static_cast<double>(m.fp + m.tn) : 0;
  return m;
}

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct RecordScore {
  std::string model_key;
  double score = 0;
  bool alarmed = false;
  bool active = false;
};

// Scores (and alarms) of the run's topics, grouped by trace label. Filled by one consumer thread.
struct Collector {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<RecordScore>> by_trace;
  std::unordered_map<std::string, size_t> alarms_by_trace;
  std::unordered_map<std::string, std::vector<std::string>>
      alarm_features;                            // "key: feature" of test alarms
  std::map<std::string, std::string> key_state;  // last model_state seen per model key
  size_t train_scores = 0, test_scores = 0, other_scores = 0, alarms = 0, bad = 0;
  int64_t last_test_score_ns = 0, last_score_ns = 0;
};

void consume(const common::KafkaSettings& ks, const common::Topics& topics, Collector& c,
             const std::atomic<bool>& done) {
  auto consumer = common::make_kafka_consumer(ks, "immunizer-eval-" + std::to_string(getpid()),
                                              {topics.scores, topics.alarms}, nullptr);
  while (!done) {
    auto batch = consumer->poll(2000, std::chrono::milliseconds(200));
    if (batch.empty()) continue;
    const int64_t t = now_ns();
    std::lock_guard<std::mutex> lock(c.mu);
    for (const auto& m : batch) {
      if (m.topic == topics.scores) {
        v1::Score s;
        if (!s.ParseFromString(m.payload)) {
          ++c.bad;
          continue;
        }
        c.key_state[s.model_key()] = s.model_state();
        c.last_score_ns = t;
        const auto it = s.labels().find("trace");
        const std::string trace = it == s.labels().end() ? "" : it->second;
        if (trace.rfind("train:", 0) == 0)
          ++c.train_scores;
        else if (trace.rfind("test:", 0) == 0) {
          ++c.test_scores;
          c.last_test_score_ns = t;
          c.by_trace[trace].push_back(
              {s.model_key(), s.combined_score(), s.alarmed(), s.model_state() == "ACTIVE"});
        } else
          ++c.other_scores;
      } else {
        v1::Alarm a;
        if (!a.ParseFromString(m.payload)) {
          ++c.bad;
          continue;
        }
        ++c.alarms;
        const auto it = a.labels().find("trace");
        if (it != a.labels().end()) {
          ++c.alarms_by_trace[it->second];
          if (it->second.rfind("test:", 0) == 0 && a.top_features_size() > 0)
            c.alarm_features[it->second].push_back(a.model_key() + ": " +
                                                   a.top_features(0).feature());
        }
      }
    }
  }
  consumer->close();
}

std::string self_dir() { return fs::read_symlink("/proc/self/exe").parent_path().string(); }

std::vector<csic::Request> load(const std::string& file, size_t count, const char* what) {
  auto v = csic::read_file(file);
  if (count > 0 && v.size() > count) v.resize(count);
  if (v.empty())
    throw std::runtime_error(std::string(what) + " file " + file + " holds no request");
  std::printf("%-9s %6zu requests from %s\n", what, v.size(), file.c_str());
  return v;
}

// Records the shop emits for an answered request: the outer one, plus the endpoint's.
size_t records_for(const csic::Request& r, int status) {
  if (status == 0) return 0;
  return 1 + (status == 200 && csic::is_shop_endpoint(csic::url_decode(r.path, false)) ? 1 : 0);
}

}  // namespace

double combine_fisher(const std::vector<double>& scores) {
  // Fisher's method on the records' tail probabilities p_i = 10^-s_i: X = -2 sum ln p_i is
  // chi-square with 2k degrees of freedom, whose survival function is
  // exp(-X/2) sum_{j<k} (X/2)^j / j!. Returned as -log10 of that probability.
  double sum = 0;
  for (double s : scores) sum += std::max(0.0, s);
  const double half_x = sum * std::log(10.0);
  double term = 1, series = 1;
  for (size_t j = 1; j < scores.size(); ++j) {
    term *= half_x / static_cast<double>(j);
    series += term;
  }
  return sum - std::log10(series);
}

namespace {

json metrics_json(const EvalMetrics& m) {
  return {{"normal", m.normal},
          {"anomalous", m.anomalous},
          {"auc", m.auc},
          {"detection_at_1pct_fp", m.detection_at_1fp},
          {"threshold_at_1pct_fp", m.threshold_at_1fp},
          {"fp_rate_at_that_threshold", m.fp_rate_at_1fp},
          {"alarm_threshold",
           {{"tp", m.tp},
            {"fp", m.fp},
            {"tn", m.tn},
            {"fn", m.fn},
            {"precision", m.precision},
            {"recall", m.recall},
            {"fp_rate", m.alarm_fp_rate}}},
          {"r_precision", m.r_precision}};
}

}  // namespace

namespace {

// ---- parse: the CSIC files and the test mix --------------------------------------------------

struct Inputs {
  std::vector<csic::Request> training, normal, anomalous;
};

// Normal and anomalous interleaved in proportion; request k of the mix is traced "test:k" and
// mapped back to normal:<i> / anomalous:<i> by origin[k].
struct TestMix {
  std::vector<csic::Request> requests;
  std::vector<std::pair<bool, size_t>> origin;  // (anomalous, index in its file)
};

Inputs load_inputs(const EvalOptions& o) {
  Inputs in;
  in.training = load(o.training, o.training_count, "training");
  in.normal = load(o.normal, o.test_count, "normal");
  in.anomalous = load(o.anomalous, o.test_count, "anomalous");
  return in;
}

TestMix interleave(const std::vector<csic::Request>& normal,
                   const std::vector<csic::Request>& anomalous) {
  TestMix mix;
  mix.requests.reserve(normal.size() + anomalous.size());
  for (size_t i = 0, j = 0; i < normal.size() || j < anomalous.size();) {
    const bool take_a =
        j < anomalous.size() &&
        (i >= normal.size() || (j + 1) * normal.size() <= (i + 1) * anomalous.size());
    const csic::Request& r = take_a ? anomalous[j] : normal[i];
    mix.origin.emplace_back(take_a, take_a ? j : i);
    mix.requests.push_back(r);
    mix.requests.back().index = mix.requests.size() - 1;
    take_a ? ++j : ++i;
  }
  return mix;
}

// ---- run: the stack, the two replay phases -------------------------------------------------

struct TrainingSummary {
  size_t requests = 0, records_expected = 0, records_scored = 0, models_active = 0, models = 0;
  double seconds = 0;
};

// What the run leaves for the report.
struct RunResult {
  TrainingSummary training;
  TestMix mix;
  std::vector<int> status;  // HTTP status per test request (-1: not sent, 0: no answer)
  double test_seconds = 0;
};

std::map<std::string, std::string> child_env(const EvalOptions& o, const std::string& bootstrap,
                                             const std::string& prefix) {
  std::map<std::string, std::string> env{
      {"IMMUNIZER_KAFKA_BOOTSTRAP", bootstrap},
      {"IMMUNIZER_KAFKA_TOPIC_PREFIX", prefix},
      {"IMMUNIZER_HTTP_LISTEN", "127.0.0.1"},
      {"IMMUNIZER_HTTP_PORT", "0"},
      {"IMMUNIZER_MONITOR_GROUP", prefix + "monitor"},
      {"IMMUNIZER_ANALYZE_GROUP", prefix + "analyze"},
      {"IMMUNIZER_MONITOR_RESTORE_SNAPSHOTS", "false"},
      {"IMMUNIZER_ANALYZE_RESTORE_SNAPSHOTS", "false"},
      // Every request must reach the pipeline: no CPU-budget sampling.
      {"IMMUNIZER_SENSOR_CPU_BUDGET", "0"},
      {"IMMUNIZER_APP", "shop"}};
  for (const auto& [k, v] : o.env) env[k] = v;
  return env;
}

std::function<void(const std::string&)> echo_problems(const std::string& name) {
  return [name](const std::string& line) {
    if (line.find("error") != std::string::npos || line.find("warn") != std::string::npos ||
        line.find("exception") != std::string::npos || line.find("fatal") != std::string::npos)
      std::fprintf(stderr, "[%s] %s\n", name.c_str(), line.c_str());
  };
}

void print_sent(const char* label, const replay::PhaseSummary& p) {
  std::printf(
      "%s sent %lu requests in %.1f s (%.0f req/s): 2xx %lu, 404 %lu, other %lu, no answer %lu\n",
      label, (unsigned long)p.sent, p.seconds, p.requests_per_second(), (unsigned long)p.ok,
      (unsigned long)p.not_found, (unsigned long)p.other, (unsigned long)p.failed);
  std::fflush(stdout);
}

// The running evaluation: broker (embedded unless --bootstrap), monitor, analyze, the shop and
// the consumer collecting Scores and Alarms. The destructor stops all of it.
class EvalStack {
 public:
  EvalStack(const EvalOptions& o, std::atomic<bool>& stop, int64_t t_start)
      : o_(o),
        stop_(stop),
        deadline_(t_start + static_cast<int64_t>(o.time_limit_seconds) * 1'000'000'000),
        // A topic prefix of its own, so a shared broker's other topics are never touched.
        prefix_("eval" + std::to_string(getpid()) + "-" + std::to_string(t_start % 1000000) + "."),
        topics_(common::Topics::with_prefix(prefix_)),
        sup_(/*echo=*/false) {}
  ~EvalStack() {
    consumer_done_ = true;
    if (consumer_.joinable()) consumer_.join();
    sup_.stop_all(std::chrono::seconds(10));
  }

  void start();
  // Replays `requests` traced "<trace>:<i>" (printing the summary after `label`), counting the
  // records each answer makes the shop emit, and waits until the pipeline has scored them (`scored`
  // counts them in the collector). `status`, when given, receives every request's HTTP status.
  replay::PhaseSummary replay_phase(const std::vector<csic::Request>& requests, const char* phase,
                                    const char* trace, const char* label, size_t Collector::*scored,
                                    std::atomic<size_t>& expected, std::vector<int>* status);
  Collector& collector() { return col_; }
  void keep_running() const {
    while (!stop_ && now_ns() < deadline_)
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }

 private:
  std::string start_broker();
  bool wait_scored(const char* phase, size_t Collector::*scored, size_t expected);
  void hold(const std::atomic<size_t>& expected, size_t Collector::*scored);
  std::chrono::seconds left() const {
    return std::chrono::seconds(std::max<int64_t>(0, (deadline_ - now_ns()) / 1'000'000'000));
  }

  const EvalOptions& o_;
  std::atomic<bool>& stop_;
  const int64_t deadline_;
  const std::string prefix_;
  const common::Topics topics_;
  std::unique_ptr<common::MockBroker> broker_;
  Supervisor sup_;
  Collector col_;
  std::atomic<bool> consumer_done_{false};
  std::thread consumer_;
  replay::Target target_;
};

std::string EvalStack::start_broker() {
  if (!o_.bootstrap.empty()) return o_.bootstrap;
  std::vector<common::TopicSpec> specs;
  for (const auto& t : {topics_.calls, topics_.features, topics_.scores})
    specs.push_back({t, o_.partitions});
  for (const auto& t : {topics_.alarms, topics_.plans, topics_.actions, topics_.feedback,
                        topics_.models, topics_.deadletter})
    specs.push_back({t, 1});
  broker_ = std::make_unique<common::MockBroker>(1, specs);
  return broker_->bootstrap();
}

void EvalStack::start() {
  const std::string bin = o_.bin_dir.empty() ? self_dir() : o_.bin_dir;
  const std::string bootstrap = start_broker();
  const auto env = child_env(o_, bootstrap, prefix_);
  for (const char* service : {"monitor", "analyze"}) {
    sup_.spawn({.name = service,
                .path = bin + "/immunizer-" + service,
                .env = env,
                .on_line = echo_problems(service),
                .stop_order = 1});
  }
  // The shop is stopped before the services (stop_order 2 > 1); the broker is in-process.
  target_.port =
      std::stoi(sup_.spawn_until({.name = "shop",
                                  .path = bin + "/immunizer-shop",
                                  .args = {"--listen", "127.0.0.1", "--port", "0", "--no-effector",
                                           "--trusted-proxy", "127.0.0.1/32"},
                                  .env = env,
                                  .on_line = echo_problems("shop"),
                                  .stop_order = 2},
                                 "shop on http://[^:/]+:([0-9]+)/", std::chrono::seconds(30)));
  std::printf(
      "stack: broker %s (topics '%s*'), monitor, analyze, shop on 127.0.0.1:%d (effector off; "
      "plan/execute not started)\n",
      bootstrap.c_str(), prefix_.c_str(), target_.port);
  std::fflush(stdout);
  common::KafkaSettings ks;
  ks.bootstrap = bootstrap;
  ks.topic_prefix = prefix_;
  consumer_ = std::thread([this, ks] {
    try {
      consume(ks, topics_, col_, consumer_done_);
    } catch (const std::exception& e) {
      std::cerr << "immunizer eval csic: score consumer: " << e.what() << "\n";
    }
  });
}

// Waits until `scored` reaches `expected`, nothing new arrives for stall_seconds, a service
// dies, or the time is up. Returns true when the count was reached.
bool EvalStack::wait_scored(const char* phase, size_t Collector::*scored, size_t expected) {
  int64_t last_change = now_ns();
  size_t last = 0;
  for (;;) {
    size_t n;
    {
      std::lock_guard<std::mutex> lock(col_.mu);
      n = col_.*scored;
    }
    if (n >= expected) return true;
    if (n != last) last = n, last_change = now_ns();
    if (stop_ || now_ns() > deadline_) return false;
    if (now_ns() - last_change > static_cast<int64_t>(o_.stall_seconds) * 1'000'000'000) {
      std::fprintf(stderr, "%s: no new score for %d s; %zu of %zu records scored, going on\n",
                   phase, o_.stall_seconds, n, expected);
      return false;
    }
    for (const char* s : {"monitor", "analyze", "shop"})
      if (!sup_.alive(s)) throw std::runtime_error(std::string(s) + " died during " + phase);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// Backpressure: a worker waits while more than max_lag records are unscored, so no consumer
// falls far behind (the embedded broker keeps only a few MB per partition and a lagging
// consumer would lose records to its retention).
void EvalStack::hold(const std::atomic<size_t>& expected, size_t Collector::*scored) {
  while (!stop_ && now_ns() < deadline_) {
    {
      std::lock_guard<std::mutex> lock(col_.mu);
      if (expected.load() <= col_.*scored + o_.max_lag) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

replay::PhaseSummary EvalStack::replay_phase(const std::vector<csic::Request>& requests,
                                             const char* phase, const char* trace,
                                             const char* label, size_t Collector::*scored,
                                             std::atomic<size_t>& expected,
                                             std::vector<int>* status) {
  replay::SendOptions so;
  so.rate = o_.rate;
  so.concurrency = o_.concurrency;
  so.trace_prefix = trace;
  so.time_limit = left();
  so.on_answer = [&](const replay::Sent& s) {
    const size_t i = std::stoul(s.trace.substr(s.trace.find(':') + 1));
    if (status != nullptr) (*status)[i] = s.status;
    expected += records_for(requests[i], s.status);
    hold(expected, scored);
    return true;
  };
  auto sum = replay::send_all(target_, requests, so, stop_, phase);
  print_sent(label, sum);
  wait_scored(phase, scored, expected.load());
  return sum;
}

RunResult run(EvalStack& stack, const Inputs& in) {
  RunResult res;
  stack.start();
  Collector& col = stack.collector();
  std::atomic<size_t> train_expected{0};
  const int64_t t_train = now_ns();
  stack.replay_phase(in.training, "training", "train", "training:", &Collector::train_scores,
                     train_expected, nullptr);
  TrainingSummary& t = res.training;
  t.requests = in.training.size();
  t.records_expected = train_expected.load();
  t.seconds = static_cast<double>(now_ns() - t_train) / 1e9;
  {
    std::lock_guard<std::mutex> lock(col.mu);
    t.records_scored = col.train_scores;
    t.models = col.key_state.size();
    for (const auto& [k, s] : col.key_state) t.models_active += s == "ACTIVE";
  }
  std::printf(
      "training: %zu of %zu records scored after %.1f s (%.0f records/s end to end); models "
      "active %zu of %zu\n",
      t.records_scored, t.records_expected, t.seconds, t.records_scored / t.seconds,
      t.models_active, t.models);
  std::fflush(stdout);

  res.mix = interleave(in.normal, in.anomalous);
  res.status.assign(res.mix.requests.size(), -1);
  std::atomic<size_t> test_expected{0};
  const int64_t t_test = now_ns();
  stack.replay_phase(res.mix.requests, "test", "test", "test:    ", &Collector::test_scores,
                     test_expected, &res.status);
  std::lock_guard<std::mutex> lock(col.mu);
  res.test_seconds =
      static_cast<double>(std::max(col.last_test_score_ns, t_test + 1) - t_test) / 1e9;
  return res;
}

// ---- report: per-request scores, metrics, the printout and the JSON summary -----------------

// Per request: the Fisher combination of its records' combined scores (each -log10 of a tail
// probability calibrated per model key, so they are comparable across keys) and, for
// comparison, their maximum; alarmed if any record alarmed.
struct RequestScores {
  std::vector<double> normal, anomalous, normal_max, anomalous_max;
  std::vector<bool> normal_alarmed, anomalous_alarmed;
  size_t missing_normal = 0, missing_anomalous = 0, learning = 0;
  json requests = json::array();
  // Per model key: (normal, anomalous) scores and alarms of its records.
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> per_key;
  std::map<std::string, std::pair<std::vector<bool>, std::vector<bool>>> per_key_alarm;
};

// One test request's records into `out`; returns its JSON row.
json score_request(const Collector& col, const std::string& trace, bool is_a,
                   const std::vector<RecordScore>& records, RequestScores& out) {
  double best = 0;
  std::vector<double> parts;
  bool alarmed = false, any_learning = false;
  json recs = json::object();
  for (const auto& r : records) {
    best = std::max(best, r.score);
    parts.push_back(r.score);
    alarmed = alarmed || r.alarmed || col.alarms_by_trace.count(trace);
    any_learning = any_learning || !r.active;
    recs[r.model_key] = r.score;
    auto& pk = out.per_key[r.model_key];
    (is_a ? pk.second : pk.first).push_back(r.score);
    auto& pa = out.per_key_alarm[r.model_key];
    (is_a ? pa.second : pa.first).push_back(r.alarmed);
  }
  out.learning += any_learning;
  const double fisher = combine_fisher(parts);
  (is_a ? out.anomalous : out.normal).push_back(fisher);
  (is_a ? out.anomalous_max : out.normal_max).push_back(best);
  (is_a ? out.anomalous_alarmed : out.normal_alarmed).push_back(alarmed);
  json rq{{"score", fisher}, {"max", best}};
  if (auto f = col.alarm_features.find(trace); f != col.alarm_features.end())
    rq["alarm_features"] = f->second;
  rq["alarmed"] = alarmed;
  rq["records"] = recs;
  return rq;
}

RequestScores score_requests(const RunResult& res, const Collector& col) {
  RequestScores out;
  for (size_t k = 0; k < res.mix.requests.size(); ++k) {
    const auto& [is_a, i] = res.mix.origin[k];
    const std::string trace = "test:" + std::to_string(k);
    json rq{{"trace", std::string(is_a ? "anomalous:" : "normal:") + std::to_string(i)},
            {"status", res.status[k]}};
    const auto it = col.by_trace.find(trace);
    if (it == col.by_trace.end()) {
      (is_a ? out.missing_anomalous : out.missing_normal)++;
      rq["score"] = nullptr;
    } else {
      rq.update(score_request(col, trace, is_a, it->second, out));
    }
    out.requests.push_back(rq);
  }
  return out;
}

void print_summary(const RequestScores& s, const EvalMetrics& m, const EvalMetrics& m_max,
                   const Collector& col, double test_seconds) {
  std::printf(
      "\nCSIC 2010 through the live pipeline (per request: Fisher combination of its records' "
      "scores)\n");
  std::printf(
      "  requests scored: normal %zu (missing %zu), anomalous %zu (missing %zu); %zu with a "
      "record of a model still LEARNING\n",
      s.normal.size(), s.missing_normal, s.anomalous.size(), s.missing_anomalous, s.learning);
  if (s.learning > 0)
    std::printf(
        "  warning: %zu test requests met a model key still LEARNING (it had not seen "
        "analyze.grace_records\n"
        "           vectors when they arrived): a larger training file, or a lower "
        "IMMUNIZER_ANALYZE_GRACE_RECORDS\n",
        s.learning);
  std::printf("  AUC                         %.4f\n", m.auc);
  std::printf("  detection at 1%% FP          %.2f%%  (score > %.3f; FP %.2f%%)\n",
              100 * m.detection_at_1fp, m.threshold_at_1fp, 100 * m.fp_rate_at_1fp);
  std::printf(
      "  at the alarm threshold      precision %.4f, recall %.4f, FP rate %.2f%%  (tp %zu, fp "
      "%zu, tn %zu, fn %zu)\n",
      m.precision, m.recall, 100 * m.alarm_fp_rate, m.tp, m.fp, m.tn, m.fn);
  std::printf("  R-precision                 %.4f\n", m.r_precision);
  std::printf(
      "  throughput                  %.0f records/s scored end to end during the test (%zu "
      "records in %.1f s); alarms %zu\n",
      col.test_scores / test_seconds, col.test_scores, test_seconds, col.alarms);
  std::printf("  (max over records instead: AUC %.4f, detection at 1%% FP %.2f%%)\n", m_max.auc,
              100 * m_max.detection_at_1fp);
}

// Prints the per-key lines; returns their JSON.
json per_key_report(const RequestScores& s, const Collector& col) {
  std::printf("  per model key (records of that key only):\n");
  json keys_json = json::object();
  for (const auto& [key, p] : s.per_key) {
    const auto& pa = s.per_key_alarm.at(key);
    const auto km = compute_metrics(p.first, p.second, pa.first, pa.second);
    const auto state = col.key_state.find(key);
    std::printf(
        "    %-45s normal %6zu anomalous %6zu  AUC %.4f  det@1%%FP %5.1f%%  alarm FP %5.2f%% "
        "recall %5.1f%%  %s\n",
        key.c_str(), km.normal, km.anomalous, km.auc, 100 * km.detection_at_1fp,
        100 * km.alarm_fp_rate, 100 * km.recall,
        state == col.key_state.end() ? "" : state->second.c_str());
    keys_json[key] = metrics_json(km);
  }
  std::fflush(stdout);
  return keys_json;
}

void report(const EvalOptions& o, const Inputs& in, RunResult& res, const Collector& col,
            int64_t t_start) {
  RequestScores s = score_requests(res, col);
  const auto m = compute_metrics(s.normal, s.anomalous, s.normal_alarmed, s.anomalous_alarmed);
  const auto m_max =
      compute_metrics(s.normal_max, s.anomalous_max, s.normal_alarmed, s.anomalous_alarmed);
  print_summary(s, m, m_max, col, res.test_seconds);
  json out = metrics_json(m);
  out["per_model_key"] = per_key_report(s, col);
  out["missing"] = {{"normal", s.missing_normal}, {"anomalous", s.missing_anomalous}};
  out["requests_with_learning_model"] = s.learning;
  out["combination"] =
      "Fisher: -log10 P(chi2_2k >= -2 sum ln p_i), p_i = 10^-combined_score of each of the k "
      "records";
  out["max_combination"] = metrics_json(m_max);
  out["throughput_records_per_second"] = col.test_scores / res.test_seconds;
  out["test_records_scored"] = col.test_scores;
  const TrainingSummary& t = res.training;
  out["training"] = {{"requests", in.training.size()},     {"records_expected", t.records_expected},
                     {"records_scored", col.train_scores}, {"seconds", t.seconds},
                     {"models_active", t.models_active},   {"models", t.models}};
  out["files"] = {{"training", o.training}, {"normal", o.normal}, {"anomalous", o.anomalous}};
  out["seconds_total"] = static_cast<double>(now_ns() - t_start) / 1e9;
  if (!o.json_out.empty()) {
    out["requests"] = std::move(s.requests);
    std::ofstream(o.json_out) << out.dump(1) << "\n";
  }
}

}  // namespace

int eval_csic_command(const EvalOptions& o) {
  std::atomic<bool> stop{false};
  common::install_stop_signals(stop, "eval");
  const int64_t t_start = now_ns();
  Inputs in;
  try {
    in = load_inputs(o);
  } catch (const std::exception& e) {
    std::cerr << "immunizer eval csic: " << e.what() << "\n";
    return 2;
  }
  EvalStack stack(o, stop, t_start);
  try {
    RunResult res = run(stack, in);
    std::lock_guard<std::mutex> lock(stack.collector().mu);
    report(o, in, res, stack.collector(), t_start);
  } catch (const std::exception& e) {
    std::cerr << "immunizer eval csic: " << e.what() << "\n";
    return 1;
  }
  if (o.keep_running) {
    std::printf("\nkeeping the stack up (Ctrl-C stops it)\n");
    std::fflush(stdout);
    stack.keep_running();
  }
  return 0;
}

}  // namespace immunizer::tools
