#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

int eval_csic_command(const EvalOptions& o) {
  std::atomic<bool> stop{false};
  common::install_stop_signals(stop, "eval");
  const int64_t t_start = now_ns();
  const int64_t deadline = t_start + static_cast<int64_t>(o.time_limit_seconds) * 1'000'000'000;
  auto left = [&] {
    return std::chrono::seconds(std::max<int64_t>(0, (deadline - now_ns()) / 1'000'000'000));
  };
  const std::string bin = o.bin_dir.empty() ? self_dir() : o.bin_dir;

  std::vector<csic::Request> training, normal, anomalous;
  try {
    training = load(o.training, o.training_count, "training");
    normal = load(o.normal, o.test_count, "normal");
    anomalous = load(o.anomalous, o.test_count, "anomalous");
  } catch (const std::exception& e) {
    std::cerr << "immunizer eval csic: " << e.what() << "\n";
    return 2;
  }

  // A topic prefix of its own, so a shared broker's other topics are never touched.
  const std::string prefix =
      "eval" + std::to_string(getpid()) + "-" + std::to_string(t_start % 1000000) + ".";
  const auto topics = common::Topics::with_prefix(prefix);
  std::unique_ptr<common::MockBroker> broker;
  Supervisor sup(/*echo=*/false);
  Collector col;
  std::atomic<bool> consumer_done{false};
  std::thread consumer;
  int rc = 0;
  json out;
  try {
    std::string bootstrap = o.bootstrap;
    if (bootstrap.empty()) {
      std::vector<common::TopicSpec> specs;
      for (const auto& t : {topics.calls, topics.features, topics.scores})
        specs.push_back({t, o.partitions});
      for (const auto& t : {topics.alarms, topics.plans, topics.actions, topics.feedback,
                            topics.models, topics.deadletter})
        specs.push_back({t, 1});
      broker = std::make_unique<common::MockBroker>(1, specs);
      bootstrap = broker->bootstrap();
    }
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
    auto echo_problems = [](std::string name) {
      return [name](const std::string& line) {
        if (line.find("error") != std::string::npos || line.find("warn") != std::string::npos ||
            line.find("exception") != std::string::npos || line.find("fatal") != std::string::npos)
          std::fprintf(stderr, "[%s] %s\n", name.c_str(), line.c_str());
      };
    };
    sup.spawn({.name = "monitor",
               .path = bin + "/immunizer-monitor",
               .env = env,
               .on_line = echo_problems("monitor"),
               .stop_order = 1});
    sup.spawn({.name = "analyze",
               .path = bin + "/immunizer-analyze",
               .env = env,
               .on_line = echo_problems("analyze"),
               .stop_order = 1});
    // The shop is stopped before the services (stop_order 2 > 1); the broker is in-process.
    const int shop_port =
        std::stoi(sup.spawn_until({.name = "shop",
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
        bootstrap.c_str(), prefix.c_str(), shop_port);
    std::fflush(stdout);
    common::KafkaSettings ks;
    ks.bootstrap = bootstrap;
    ks.topic_prefix = prefix;
    consumer = std::thread([&] {
      try {
        consume(ks, topics, col, consumer_done);
      } catch (const std::exception& e) {
        std::cerr << "immunizer eval csic: score consumer: " << e.what() << "\n";
      }
    });
    replay::Target target;
    target.port = shop_port;

    // Waits until `scored()` reaches `expected`, nothing new arrives for stall_seconds, a
    // service dies, or the time is up. Returns true when the count was reached.
    auto wait_scored = [&](const char* phase, auto scored, size_t expected) {
      int64_t last_change = now_ns();
      size_t last = 0;
      for (;;) {
        size_t n;
        {
          std::lock_guard<std::mutex> lock(col.mu);
          n = scored();
        }
        if (n >= expected) return true;
        if (n != last) last = n, last_change = now_ns();
        if (stop || now_ns() > deadline) return false;
        if (now_ns() - last_change > static_cast<int64_t>(o.stall_seconds) * 1'000'000'000) {
          std::fprintf(stderr, "%s: no new score for %d s; %zu of %zu records scored, going on\n",
                       phase, o.stall_seconds, n, expected);
          return false;
        }
        for (const char* s : {"monitor", "analyze", "shop"})
          if (!sup.alive(s)) throw std::runtime_error(std::string(s) + " died during " + phase);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    };

    // Training.
    std::atomic<size_t> train_expected{0};
    replay::SendOptions so;
    so.rate = o.rate;
    so.concurrency = o.concurrency;
    so.trace_prefix = "train";
    so.time_limit = left();
    // Backpressure: a worker waits while more than max_lag records are unscored, so no
    // consumer falls far behind (the embedded broker keeps only a few MB per partition and
    // a lagging consumer would lose records to its retention).
    auto hold = [&](const std::atomic<size_t>& expected, const size_t& scored) {
      while (!stop && now_ns() < deadline) {
        {
          std::lock_guard<std::mutex> lock(col.mu);
          if (expected.load() <= scored + o.max_lag) return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    };
    so.on_answer = [&](const replay::Sent& s) {
      const size_t i = std::stoul(s.trace.substr(s.trace.find(':') + 1));
      train_expected += records_for(training[i], s.status);
      hold(train_expected, col.train_scores);
      return true;
    };
    auto print_sent = [](const char* label, const replay::PhaseSummary& p) {
      std::printf(
          "%s sent %lu requests in %.1f s (%.0f req/s): 2xx %lu, 404 %lu, other %lu, no answer "
          "%lu\n",
          label, (unsigned long)p.sent, p.seconds, p.requests_per_second(), (unsigned long)p.ok,
          (unsigned long)p.not_found, (unsigned long)p.other, (unsigned long)p.failed);
      std::fflush(stdout);
    };
    const int64_t t_train = now_ns();
    auto train_sum = replay::send_all(target, training, so, stop, "training");
    print_sent("training:", train_sum);
    wait_scored(
        "training", [&] { return col.train_scores; }, train_expected.load());
    const double train_seconds = static_cast<double>(now_ns() - t_train) / 1e9;
    size_t active = 0, keys = 0;
    {
      std::lock_guard<std::mutex> lock(col.mu);
      keys = col.key_state.size();
      for (const auto& [k, s] : col.key_state) active += s == "ACTIVE";
      std::printf(
          "training: %zu of %zu records scored after %.1f s (%.0f records/s end to end); models "
          "active %zu of %zu\n",
          col.train_scores, train_expected.load(), train_seconds, col.train_scores / train_seconds,
          active, keys);
    }
    std::fflush(stdout);

    // Test: normal and anomalous interleaved in proportion; request k of the mix is traced
    // "test:k" and mapped back to normal:<i> / anomalous:<i>.
    std::vector<csic::Request> mix;
    std::vector<std::pair<bool, size_t>> origin;  // (anomalous, index in its file)
    mix.reserve(normal.size() + anomalous.size());
    for (size_t i = 0, j = 0; i < normal.size() || j < anomalous.size();) {
      const bool take_a =
          j < anomalous.size() &&
          (i >= normal.size() || (j + 1) * normal.size() <= (i + 1) * anomalous.size());
      const csic::Request& r = take_a ? anomalous[j] : normal[i];
      origin.emplace_back(take_a, take_a ? j : i);
      mix.push_back(r);
      mix.back().index = mix.size() - 1;
      take_a ? ++j : ++i;
    }
    std::vector<int> status(mix.size(), -1);
    std::atomic<size_t> test_expected{0};
    so.trace_prefix = "test";
    so.time_limit = left();
    so.on_answer = [&](const replay::Sent& s) {
      const size_t k = std::stoul(s.trace.substr(s.trace.find(':') + 1));
      status[k] = s.status;
      test_expected += records_for(mix[k], s.status);
      hold(test_expected, col.test_scores);
      return true;
    };
    const int64_t t_test = now_ns();
    auto test_sum = replay::send_all(target, mix, so, stop, "test");
    print_sent("test:    ", test_sum);
    wait_scored(
        "test", [&] { return col.test_scores; }, test_expected.load());

    // Per request: the maximum combined score over its records (each is -log10 of a tail
    // probability calibrated per model key, so they are comparable across keys); alarmed
    // if any record alarmed.
    std::lock_guard<std::mutex> lock(col.mu);
    const double test_seconds =
        static_cast<double>(std::max(col.last_test_score_ns, t_test + 1) - t_test) / 1e9;
    std::vector<double> ns, as, ns_max, as_max;
    std::vector<bool> nal, aal;
    size_t missing_n = 0, missing_a = 0, learning = 0;
    json requests = json::array();
    std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> per_key;
    std::map<std::string, std::pair<std::vector<bool>, std::vector<bool>>> per_key_alarm;
    for (size_t k = 0; k < mix.size(); ++k) {
      const auto& [is_a, i] = origin[k];
      const std::string trace = "test:" + std::to_string(k);
      const auto it = col.by_trace.find(trace);
      json rq{{"trace", std::string(is_a ? "anomalous:" : "normal:") + std::to_string(i)},
              {"status", status[k]}};
      if (it == col.by_trace.end()) {
        (is_a ? missing_a : missing_n)++;
        rq["score"] = nullptr;
        requests.push_back(rq);
        continue;
      }
      double best = 0;
      std::vector<double> parts;
      bool alarmed = false, any_learning = false;
      json recs = json::object();
      for (const auto& r : it->second) {
        best = std::max(best, r.score);
        parts.push_back(r.score);
        alarmed = alarmed || r.alarmed || col.alarms_by_trace.count(trace);
        any_learning = any_learning || !r.active;
        recs[r.model_key] = r.score;
        auto& pk = per_key[r.model_key];
        (is_a ? pk.second : pk.first).push_back(r.score);
        auto& pa = per_key_alarm[r.model_key];
        (is_a ? pa.second : pa.first).push_back(r.alarmed);
      }
      learning += any_learning;
      const double fisher = combine_fisher(parts);
      (is_a ? as : ns).push_back(fisher);
      (is_a ? as_max : ns_max).push_back(best);
      (is_a ? aal : nal).push_back(alarmed);
      rq["score"] = fisher;
      rq["max"] = best;
      if (auto f = col.alarm_features.find(trace); f != col.alarm_features.end())
        rq["alarm_features"] = f->second;
      rq["alarmed"] = alarmed;
      rq["records"] = recs;
      requests.push_back(rq);
    }
    const auto m = compute_metrics(ns, as, nal, aal);
    const auto m_max = compute_metrics(ns_max, as_max, nal, aal);
    std::printf(
        "\nCSIC 2010 through the live pipeline (per request: Fisher combination of its records' "
        "scores)\n");
    std::printf(
        "  requests scored: normal %zu (missing %zu), anomalous %zu (missing %zu); %zu with a "
        "record of a model still LEARNING\n",
        ns.size(), missing_n, as.size(), missing_a, learning);
    if (learning > 0)
      std::printf(
          "  warning: %zu test requests met a model key still LEARNING (it had not seen "
          "analyze.grace_records\n"
          "           vectors when they arrived): a larger training file, or a lower "
          "IMMUNIZER_ANALYZE_GRACE_RECORDS\n",
          learning);
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
    std::printf("  per model key (records of that key only):\n");
    json keys_json = json::object();
    for (const auto& [key, p] : per_key) {
      const auto& pa = per_key_alarm[key];
      const auto km = compute_metrics(p.first, p.second, pa.first, pa.second);
      std::printf(
          "    %-45s normal %6zu anomalous %6zu  AUC %.4f  det@1%%FP %5.1f%%  alarm FP %5.2f%% "
          "recall %5.1f%%  %s\n",
          key.c_str(), km.normal, km.anomalous, km.auc, 100 * km.detection_at_1fp,
          100 * km.alarm_fp_rate, 100 * km.recall, col.key_state[key].c_str());
      keys_json[key] = metrics_json(km);
    }
    std::fflush(stdout);
    out = metrics_json(m);
    out["missing"] = {{"normal", missing_n}, {"anomalous", missing_a}};
    out["requests_with_learning_model"] = learning;
    out["combination"] =
        "Fisher: -log10 P(chi2_2k >= -2 sum ln p_i), p_i = 10^-combined_score of each of the k "
        "records";
    out["max_combination"] = metrics_json(m_max);
    out["throughput_records_per_second"] = col.test_scores / test_seconds;
    out["test_records_scored"] = col.test_scores;
    out["training"] = {{"requests", training.size()},
                       {"records_expected", train_expected.load()},
                       {"records_scored", col.train_scores},
                       {"seconds", train_seconds},
                       {"models_active", active},
                       {"models", keys}};
    out["files"] = {{"training", o.training}, {"normal", o.normal}, {"anomalous", o.anomalous}};
    out["per_model_key"] = keys_json;
    out["seconds_total"] = static_cast<double>(now_ns() - t_start) / 1e9;
    if (!o.json_out.empty()) {
      json full = out;
      full["requests"] = std::move(requests);
      std::ofstream(o.json_out) << full.dump(1) << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "immunizer eval csic: " << e.what() << "\n";
    rc = 1;
  }
  if (rc == 0 && o.keep_running) {
    std::printf("\nkeeping the stack up (Ctrl-C stops it)\n");
    std::fflush(stdout);
    while (!stop && now_ns() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  consumer_done = true;
  if (consumer.joinable()) consumer.join();
  sup.stop_all(std::chrono::seconds(10));
  return rc;
}

}  // namespace immunizer::tools
