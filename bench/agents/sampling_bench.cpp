// Sampling that keeps what matters (issue 13 item 5), measured: CSIC 2010 requests recorded
// through the real sensor (librdkafka's in-process mock broker) by 2 threads as fast as they
// go, each request costing the "application" APP_WORK_US of CPU besides the sensor, as the
// demo shop records them (an outer http.request call, an inner call per shop endpoint with
// the decoded parameters). Normal test requests, each a fresh visitor, with an attacker
// session (10 anomalous test requests, one after another) among them at 1 attack request
// per NORMAL_PER_ATTACK normal ones, ATTACKERS_AT_ONCE attacker sessions interleaved (so that
// a session lasts a while, as a person's or a tool's does). After a warm-up on the normal training
// requests (the CPU-budget controller settles, the sensor learns argument names), each mode runs
// for SECONDS and prints what was recorded: of the attack requests, of the attacker sessions (at
// least one of its attack requests recorded: what the pipeline needs to see to detect it),
// of the normal requests. Modes: everything recorded (no budget); the default 2% budget with
// the flag checks off (sampling as before); with them on; and with them and watches, where
// an attacker session recorded once is watched WATCH_LAG_MS later (an ideal pipeline of that
// latency: alarm, plan, execute, effector). A benchmark: no pass or fail.
// Usage: build/release/bench/sampling_bench   env: SECONDS=10 APP_WORK_US=40 NORMAL_PER_ATTACK=20
//   WATCH_LAG_MS=250 CPU_BUDGET=0.02 THREADS=2 ATTACKERS_AT_ONCE=50
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "immunizer/monitor/csic.hpp"
#include "immunizer/sensor/sensor.hpp"

namespace {

using immunizer::sensor::CallScope;
using immunizer::sensor::KeepReason;
using immunizer::sensor::Sensor;
using immunizer::sensor::SensorConfig;
namespace csic = immunizer::monitor::csic;

double env_or(const char* name, double def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : def;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void spin_for(int64_t ns) {
  const int64_t until = now_ns() + ns;
  while (now_ns() < until) {
  }
}

// A request made ready for recording (what the shop extracts), its session set per use.
struct Prepared {
  std::string method, path, query, call;
  std::map<std::string, std::string> headers;
  int64_t body_length = 0;
  std::vector<std::pair<std::string, std::string>> params;  // UTF-8
  bool endpoint = false;
};

std::vector<Prepared> prepare(const std::string& file) {
  std::vector<Prepared> out;
  for (const csic::Request& r : csic::read_file(file)) {
    Prepared p;
    p.method = r.method;
    p.path = csic::latin1_to_utf8(r.path);
    p.query = csic::latin1_to_utf8(r.query);
    for (const auto& [k, v] : r.headers) {
      std::string name = k;
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name == "cookie" || name == "content-length") continue;
      p.headers[name] = csic::latin1_to_utf8(v);
    }
    p.body_length = static_cast<int64_t>(r.body.size());
    p.endpoint = csic::is_shop_endpoint(r.path);
    p.call = p.path;
    auto take = [&](std::string_view k, std::string_view v) {
      p.params.emplace_back(std::string(k), std::string(v));
    };
    csic::for_each_param(r.query, take);
    csic::for_each_param(r.body, take);
    out.push_back(std::move(p));
  }
  return out;
}

class MockKafka {
 public:
  MockKafka() {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    mc_ = rd_kafka_mock_cluster_new(rk_, 1);
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(mc_);
    rd_kafka_mock_topic_create(mc_, "b.calls", 1, 1);
  }
  ~MockKafka() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  const std::string& bootstrap() const { return bootstrap_; }

 private:
  rd_kafka_t* rk_;
  rd_kafka_mock_cluster_t* mc_;
  std::string bootstrap_;
};

constexpr size_t kAttackLen = 10;        // requests per attacker session
constexpr size_t kMaxSessions = 200000;  // attacker sessions tracked per mode

struct Mode {
  const char* name;
  double cpu_budget;
  bool keep_flagged;
  bool watch;
};

// The watch set an effector would hold: attacker session j watched from watched_at[j].
struct Watches {
  std::unique_ptr<std::atomic<int64_t>[]> at { new std::atomic<int64_t>[ kMaxSessions ]() };
  static bool hook(const void* ctx, std::string_view, std::string_view session,
                   std::string_view) noexcept {
    if (session.size() < 2 || session[0] != 'a') return false;
    const size_t j = std::strtoull(std::string(session.substr(1)).c_str(), nullptr, 10);
    if (j >= kMaxSessions) return false;
    const int64_t t = static_cast<const Watches*>(ctx)->at[j].load(std::memory_order_relaxed);
    return t != 0 && now_ns() >= t;
  }
};

// Records one request; true if any of its calls is recorded.
bool record(Sensor& s, const Prepared& p, const std::string& session, const std::string& ip) {
  bool recorded = false;
  CallScope outer(s, "http.request");
  if (outer.recording()) {
    outer.principal("", session, ip)
        .arg("method", p.method)
        .arg("path", p.path)
        .arg("query", p.query)
        .arg("headers", p.headers)
        .arg("body_length", p.body_length);
    recorded = outer.id().seq != 0;
  }
  if (p.endpoint) {
    CallScope inner(s, p.call);
    if (inner.recording()) {
      inner.principal("", session, ip);
      for (const auto& [k, v] : p.params) inner.arg(k, v);
      inner.result(200);
      recorded = recorded || inner.id().seq != 0;
    }
  }
  if (outer.recording()) outer.result(200);
  return recorded;
}

}  // namespace

int main() {
  const std::string dir = std::getenv("IMMUNIZER_DATASETS")
                              ? std::string(std::getenv("IMMUNIZER_DATASETS"))
                              : std::string(IMMUNIZER_DATASETS);
  const double seconds = env_or("SECONDS", 10);
  const auto app_work_ns = static_cast<int64_t>(env_or("APP_WORK_US", 40) * 1000);
  const auto normal_per_attack = static_cast<size_t>(env_or("NORMAL_PER_ATTACK", 20));
  const auto watch_lag_ns = static_cast<int64_t>(env_or("WATCH_LAG_MS", 250) * 1'000'000);
  const double budget = env_or("CPU_BUDGET", 0.02);
  const int threads = static_cast<int>(env_or("THREADS", 2));
  const auto at_once = static_cast<size_t>(env_or("ATTACKERS_AT_ONCE", 50));
  std::vector<Prepared> training, normal, attack;
  try {
    training = prepare(dir + "/csic2010/normalTrafficTraining.txt.gz");
    normal = prepare(dir + "/csic2010/normalTrafficTest.txt.gz");
    attack = prepare(dir + "/csic2010/anomalousTrafficTest.txt.gz");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sampling_bench: %s (IMMUNIZER_DATASETS=%s)\n", e.what(), dir.c_str());
    return 2;
  }
  std::printf(
      "CSIC: %zu training, %zu normal, %zu attack requests; %d threads, app work %lld us/request, "
      "1 attack request per %zu normal, attacker sessions of %zu requests, %zu at once, watch lag "
      "%lld ms, %.0f s per mode\n",
      training.size(), normal.size(), attack.size(), threads,
      static_cast<long long>(app_work_ns / 1000), normal_per_attack, kAttackLen, at_once,
      static_cast<long long>(watch_lag_ns / 1'000'000), seconds);
  const Mode modes[] = {{"record everything (budget off)", 0, true, false},
                        {"budget, flag checks off (as before)", budget, false, false},
                        {"budget + flag checks", budget, true, false},
                        {"budget + flag checks + watch", budget, true, true}};
  for (const Mode& m : modes) {
    MockKafka kafka;
    SensorConfig cfg;
    cfg.app = "shop";
    cfg.instance = "bench";
    cfg.bootstrap = kafka.bootstrap();
    cfg.topic_prefix = "b.";
    cfg.cpu_budget = m.cpu_budget;
    cfg.keep_flagged = m.keep_flagged;
    cfg.kafka_properties["log_level"] = "0";
    auto sensor = Sensor::create(cfg);
    Watches watches;
    if (m.watch) sensor->set_watch(&Watches::hook, &watches);

    // Warm-up: normal training traffic, fresh visitors, 3 s.
    {
      std::atomic<bool> stop{false};
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
          for (size_t i = t; !stop.load(std::memory_order_relaxed); i += threads) {
            spin_for(app_work_ns);
            record(*sensor, training[i % training.size()], "w" + std::to_string(i), "10.0.0.1");
          }
        });
      std::this_thread::sleep_for(std::chrono::seconds(3));
      stop = true;
      for (auto& th : ts) th.join();
    }
    const auto before = sensor->stats();

    // The mix: in each block of normal_per_attack + 1 requests, one is the next attack request.
    std::atomic<size_t> next{0};
    std::atomic<uint64_t> normal_n{0}, normal_rec{0}, attack_n{0}, attack_rec{0};
    std::unique_ptr<std::atomic<uint32_t>[]> session_rec(new std::atomic<uint32_t>[kMaxSessions]());
    std::atomic<size_t> sessions_done{0};
    const int64_t until = now_ns() + static_cast<int64_t>(seconds * 1e9);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&] {
        while (now_ns() < until) {
          const size_t i = next.fetch_add(1, std::memory_order_relaxed);
          spin_for(app_work_ns);
          if (i % (normal_per_attack + 1) == normal_per_attack) {
            const size_t k = i / (normal_per_attack + 1);  // attack request number
            // Its session: at_once sessions take turns, kAttackLen requests each.
            const size_t j = k / (kAttackLen * at_once) * at_once + k % at_once;
            if (j >= kMaxSessions) break;
            const bool rec = record(*sensor, attack[k % attack.size()], "a" + std::to_string(j),
                                    "192.0.2." + std::to_string(j % 250));
            attack_n.fetch_add(1, std::memory_order_relaxed);
            if (rec) {
              attack_rec.fetch_add(1, std::memory_order_relaxed);
              session_rec[j].fetch_add(1, std::memory_order_relaxed);
              int64_t zero = 0;
              if (m.watch)
                watches.at[j].compare_exchange_strong(zero, now_ns() + watch_lag_ns,
                                                      std::memory_order_relaxed);
            }
            if ((k + 1) % (kAttackLen * at_once) == 0) sessions_done.store(j + 1);
          } else {
            const bool rec =
                record(*sensor, normal[i % normal.size()], "n" + std::to_string(i), "10.0.0.2");
            normal_n.fetch_add(1, std::memory_order_relaxed);
            if (rec) normal_rec.fetch_add(1, std::memory_order_relaxed);
          }
        }
      });
    for (auto& th : ts) th.join();
    const auto st = sensor->stats();
    const size_t sessions = sessions_done.load();
    size_t seen = 0, seen_half = 0;
    for (size_t j = 0; j < sessions; ++j) {
      seen += session_rec[j].load() > 0;
      seen_half += session_rec[j].load() >= kAttackLen / 2;
    }
    const double reqs = static_cast<double>(normal_n + attack_n);
    auto pct = [](double a, double b) { return b > 0 ? 100.0 * a / b : 0.0; };
    std::printf("\n%s\n", m.name);
    std::printf("  %.0f requests/s, sample rate at the end %.4f, sensor share %.1f%%\n",
                reqs / seconds, st.sample_rate, 100 * st.overhead_share);
    std::printf("  attack requests recorded:  %6.1f%% (%llu of %llu)\n",
                pct(static_cast<double>(attack_rec), static_cast<double>(attack_n)),
                static_cast<unsigned long long>(attack_rec.load()),
                static_cast<unsigned long long>(attack_n.load()));
    std::printf("  attacker sessions seen:    %6.1f%% (%zu of %zu; >= half recorded: %.1f%%)\n",
                pct(static_cast<double>(seen), static_cast<double>(sessions)), seen, sessions,
                pct(static_cast<double>(seen_half), static_cast<double>(sessions)));
    std::printf("  normal requests recorded:  %6.1f%% (%llu of %llu)\n",
                pct(static_cast<double>(normal_rec), static_cast<double>(normal_n)),
                static_cast<unsigned long long>(normal_rec.load()),
                static_cast<unsigned long long>(normal_n.load()));
    std::printf("  kept by flag (calls):");
    for (size_t r = 0; r < immunizer::sensor::kKeepReasons; ++r)
      std::printf(" %s %llu", std::string(to_string(static_cast<KeepReason>(r))).c_str(),
                  static_cast<unsigned long long>(st.kept[r] - before.kept[r]));
    std::printf("\n");
    std::fflush(stdout);
    sensor->flush(std::chrono::seconds(5));
  }
  return 0;
}
