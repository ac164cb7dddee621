// Pipeline benchmark (issue 13): N realistic call records through the real sensor into the
// embedded broker (`immunizer broker`, its own process), through monitor and analyze (and,
// with --with-control, plan and execute), each started as the release binaries are. Prints:
// end-to-end records/s, each stage's rate, CPU microseconds per record of every process (from
// /proc/<pid>/stat), latency from record creation to its Score (p50/p99, on a sample of
// records, measured by a probe process consuming immunizer.scores), records dropped by the
// sensor and records lost between the stages. A figure is only valid with 0 dropped and 0
// lost; the benchmark says so when they are not.
//
// Phases: a warm-up of --warmup records (the models learn their grace period and fit), then
// the measured --records. Only the measured phase counts in the figures.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <httplib.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "immunizer/sensor/sensor.hpp"
#include "immunizer/tools/plan_keys.hpp"
#include "immunizer/tools/supervisor.hpp"
#include "immunizer/v1/records.pb.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kLatencyLabel = "bench.created_ns";

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- Realistic records: ~10 calls, 3-6 string/number arguments, 2,000 principals. ----

struct Principal {
  std::string user, session, ip;
};

class Workload {
 public:
  explicit Workload(uint64_t seed, size_t principals) : rng_(seed) {
    for (size_t i = 0; i < principals; ++i) {
      char ip[32];
      std::snprintf(ip, sizeof ip, "10.%zu.%zu.%zu", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
      char session[24];
      std::snprintf(session, sizeof session, "%016llx", static_cast<unsigned long long>(rng_()));
      principals_.push_back({"user" + std::to_string(i), session, ip});
    }
  }

  // One call of the app, recorded through the sensor.
  void call(immunizer::sensor::Sensor& s, bool sample_latency) {
    const auto& p = principals_[pick(principals_.size())];
    const unsigned kind = static_cast<unsigned>(pick(10));
    immunizer::sensor::CallScope c(s, kCalls[kind]);
    if (!c.recording()) return;
    c.principal(p.user, p.session, p.ip);
    if (sample_latency) c.label(kLatencyLabel, std::to_string(wall_ns()));
    switch (kind) {
      case 0:  // product page
        c.arg("id", static_cast<int64_t>(1 + pick(500)))
            .arg("lang", kLangs[pick(3)])
            .arg("ref", word());
        c.result(200);
        break;
      case 1:  // search
        c.arg("q", word() + " " + word())
            .arg("page", static_cast<int64_t>(1 + pick(5)))
            .arg("sort", kSorts[pick(3)])
            .arg("lang", kLangs[pick(3)]);
        c.result(200);
        break;
      case 2:  // add to cart
        c.arg("product", static_cast<int64_t>(1 + pick(500)))
            .arg("quantity", static_cast<int64_t>(1 + pick(4)))
            .arg("price", 0.5 * static_cast<double>(1 + pick(200)))
            .arg("currency", std::string_view("EUR"));
        c.result(201);
        break;
      case 3:  // login
        c.arg("user", p.user)
            .arg("remember", pick(2) == 1)
            .arg("method", std::string_view("password"));
        c.result(pick(20) == 0 ? 401 : 200);
        break;
      case 4:  // checkout
        c.arg("name", kNames[pick(8)] + std::string(" ") + kSurnames[pick(8)])
            .arg("address", std::to_string(1 + pick(200)) + " " + word() + " street")
            .arg("zip", static_cast<int64_t>(10000 + pick(89999)))
            .arg("card_last4", static_cast<int64_t>(pick(10000)))
            .arg("total", 0.01 * static_cast<double>(pick(100000)))
            .arg("items", static_cast<int64_t>(1 + pick(9)));
        c.result(200);
        break;
      case 5:  // db query (inner call)
        c.arg("table", kTables[pick(4)])
            .arg("rows", static_cast<int64_t>(pick(50)))
            .arg("ms", static_cast<double>(pick(30)));
        c.result(static_cast<int64_t>(pick(50)));
        break;
      case 6:  // profile update
        c.arg("email", p.user + "@" + kDomains[pick(4)])
            .arg("phone", "+34 6" + std::to_string(10000000 + pick(89999999)))
            .arg("city", kCities[pick(6)]);
        c.result(200);
        break;
      case 7:  // static asset
        c.arg("path", std::string("/static/") + word() + kExt[pick(3)])
            .arg("etag", std::to_string(rng_() & 0xffffff));
        c.result(304);
        break;
      case 8:  // api list
        c.arg("limit", static_cast<int64_t>(10 * (1 + pick(5))))
            .arg("offset", static_cast<int64_t>(10 * pick(20)))
            .arg("filter", word());
        c.result(200);
        break;
      default:  // logout
        c.arg("session", p.session)
            .arg("reason", kReasons[pick(2)])
            .arg("after_s", static_cast<int64_t>(pick(3600)));
        c.result(204);
    }
  }

 private:
  size_t pick(size_t n) { return static_cast<size_t>(rng_() % n); }
  std::string word() { return kWords[pick(sizeof kWords / sizeof *kWords)]; }
  static constexpr const char* kCalls[10] = {
      "http GET /product",   "http GET /search", "http POST /cart",    "http POST /login",
      "http POST /checkout", "db.query",         "http POST /profile", "http GET /static",
      "http GET /api/items", "http POST /logout"};
  static constexpr const char* kWords[24] = {
      "queso", "vino",    "aceite",   "jamon",   "pan",      "miel",      "turron",  "cafe",
      "leche", "arroz",   "sal",      "azucar",  "fresa",    "limon",     "naranja", "tomate",
      "ajo",   "cebolla", "pimienta", "oregano", "albahaca", "chocolate", "galleta", "yogur"};
  static constexpr const char* kLangs[3] = {"es", "en", "ca"};
  static constexpr const char* kSorts[3] = {"price", "name", "rating"};
  static constexpr const char* kNames[8] = {"Ana",   "Luis",  "Marta", "Pablo",
                                            "Lucia", "Jorge", "Elena", "Raul"};
  static constexpr const char* kSurnames[8] = {"Garcia", "Lopez", "Martin", "Sanz",
                                               "Ruiz",   "Diaz",  "Moreno", "Gil"};
  static constexpr const char* kTables[4] = {"products", "orders", "users", "carts"};
  static constexpr const char* kDomains[4] = {"mail.es", "correo.com", "example.org", "web.net"};
  static constexpr const char* kCities[6] = {"Madrid", "Sevilla",  "Valencia",
                                             "Bilbao", "Zaragoza", "Murcia"};
  static constexpr const char* kExt[3] = {".css", ".js", ".png"};
  static constexpr const char* kReasons[2] = {"user", "timeout"};
  std::mt19937_64 rng_;
  std::vector<Principal> principals_;
};

// ---- Processes: CPU from /proc, counters from /metrics. ----

double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  const auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Per name, the sum of every sample of it (any labels) in a Prometheus text exposition, from
// one GET of /metrics; nullopt when the endpoint does not answer. Each GET costs the service a
// serialisation of all its metrics (about 0.1 ms of CPU for analyze), which counts in its CPU
// per record: the benchmark asks as rarely as it can.
std::optional<std::vector<double>> scrape(int port, const std::vector<std::string>& names) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(0, 300'000);
  c.set_read_timeout(2, 0);
  auto r = c.Get("/metrics");
  if (!r || r->status != 200) return std::nullopt;
  std::istringstream in(r->body);
  std::string line;
  std::vector<double> sums(names.size(), 0.0);
  while (std::getline(in, line)) {
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string& name = names[i];
      if (line.rfind(name, 0) != 0) continue;
      const char next = line.size() > name.size() ? line[name.size()] : '\0';
      if (next != ' ' && next != '{') continue;
      sums[i] += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return sums;
}

std::optional<double> scrape(int port, const std::string& name) {
  const auto s = scrape(port, std::vector<std::string>{name});
  if (!s) return std::nullopt;
  return s->front();
}

bool wait_ready(int port, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(0, 200'000);
    if (auto r = c.Get("/readyz"); r && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

struct Stage {
  std::string name;
  pid_t pid = 0;
  int port = 0;  // 0: no /metrics (the broker)
};

// ---- Probe: consumes immunizer.scores, measures creation -> score latency. ----

int run_probe(const std::string& bootstrap, const std::string& topic, const std::string& out_path) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", "pipeline-bench-probe-" + std::to_string(getpid()), err);
  conf->set("auto.offset.reset", "latest", err);
  conf->set("enable.auto.commit", "false", err);
  conf->set("fetch.wait.max.ms", "10", err);
  conf->set("log_level", "3", err);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer) {
    std::cerr << "probe: " << err << "\n";
    return 1;
  }
  consumer->subscribe({topic});
  std::atomic<bool> stop{false};
  static std::atomic<bool>* stop_ptr = &stop;
  signal(SIGTERM, [](int) { stop_ptr->store(true); });
  std::vector<double> latencies_ms;
  uint64_t scores = 0;
  bool assigned_reported = false;
  while (!stop) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(50));
    if (!assigned_reported) {
      std::vector<RdKafka::TopicPartition*> parts;
      if (consumer->assignment(parts) == RdKafka::ERR_NO_ERROR && !parts.empty()) {
        std::cout << "probe assigned" << std::endl;
        assigned_reported = true;
      }
      RdKafka::TopicPartition::destroy(parts);
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    ++scores;
    immunizer::v1::Score s;
    if (!s.ParseFromArray(m->payload(), static_cast<int>(m->len()))) continue;
    auto it = s.labels().find(kLatencyLabel);
    if (it == s.labels().end()) continue;
    latencies_ms.push_back(static_cast<double>(wall_ns() - std::stoll(it->second)) / 1e6);
  }
  consumer->close();
  std::ofstream out(out_path);
  out << scores << "\n";
  for (double v : latencies_ms) out << v << "\n";
  return 0;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

struct Options {
  uint64_t records = 300'000;
  uint64_t warmup = 40'000;
  double rate = 0;  // records/s offered by the app; 0: as fast as it can
  int partitions = 1;
  int monitors = 1;
  int analyzers = 1;
  bool with_control = false;
  int port_base = 23800;
  int latency_every = 100;
  // Records recorded but not yet processed by analyze. The bound keeps a burst inside the
  // embedded broker's 5 MiB a partition (the benchmark reports any loss, and its figure is then
  // invalid). 1,500 (the old default) made the app wait on the pipeline's latency (about 0.12 s
  // to score), not its CPU: 16,194 records/s, against 48,903 at 20,000 with 0 lost.
  uint64_t max_lag = 20'000;
  int stall_seconds = 60;
  int stop_grace_seconds = 10;  // SIGTERM to SIGKILL (longer for services run under a profiler)
  std::string bin_dir;
  std::vector<std::string> env;
  // kill -9 of the last analyze instance after this many measured records (0: never): the
  // survivors take its partitions in a rebalance (issue 13 item 3).
  uint64_t kill_analyzer_after = 0;
};

// Records `n` calls at `rate` (0: as fast as it can). `behind(i)` is asked every 1,024 calls
// and production waits while it says the pipeline is too far behind: a burst larger than the
// broker's retention would otherwise be lost, not measured. A wait longer than `stall` ends
// the run (the pipeline stopped).
template <class Behind>
void produce(immunizer::sensor::Sensor& sensor, Workload& w, uint64_t n, double rate,
             int latency_every, Behind behind, std::chrono::seconds stall) {
  const auto t0 = Clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    if ((i & 1023) == 0) {
      const auto waiting_since = Clock::now();
      while (behind(i)) {
        if (Clock::now() - waiting_since > stall)
          throw std::runtime_error("the pipeline did not catch up for " +
                                   std::to_string(stall.count()) + " s after " + std::to_string(i) +
                                   " records; stopped");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    w.call(sensor, latency_every > 0 && i % static_cast<uint64_t>(latency_every) == 0);
    if (rate > 0 && (i & 255) == 255) {
      const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(static_cast<double>(i + 1) / rate));
      std::this_thread::sleep_until(due);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Immunizer pipeline benchmark: sensor -> embedded broker -> monitor -> analyze"};
  Options o;
  std::string probe_bootstrap, probe_topic, probe_out;
  app.add_option("--records", o.records, "measured records")->capture_default_str();
  app.add_option("--warmup", o.warmup, "records before the measurement (models learn and fit)")
      ->capture_default_str();
  app.add_option("--rate", o.rate, "records/s the app offers (0: as fast as it can)")
      ->capture_default_str();
  app.add_option("--partitions", o.partitions, "partitions of calls/features/scores")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--monitors", o.monitors, "monitor instances (one consumer group)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  app.add_option("--analyzers", o.analyzers, "analyze instances (one consumer group)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  app.add_flag("--with-control", o.with_control, "also run plan and execute");
  app.add_option("--port-base", o.port_base, "HTTP ports from here")->capture_default_str();
  app.add_option(
         "--max-lag", o.max_lag,
         "the app waits while more records than this are not yet processed by analyze (0: never)")
      ->capture_default_str();
  app.add_option("--latency-every", o.latency_every, "sample the latency of one record in N")
      ->capture_default_str();
  app.add_option("--stall", o.stall_seconds, "give up after this many seconds without progress")
      ->capture_default_str();
  app.add_option("--stop-grace", o.stop_grace_seconds,
                 "seconds each service has to stop after SIGTERM before SIGKILL (e.g. 120 when "
                 "--bin-dir wraps a service in valgrind --tool=callgrind, which writes its "
                 "profile at exit)")
      ->capture_default_str();
  app.add_option("--bin-dir", o.bin_dir,
                 "folder of immunizer and immunizer-* (default: ../bin beside this one)");
  app.add_option("--kill-analyzer-after", o.kill_analyzer_after,
                 "kill -9 the last analyze instance after this many measured records (needs "
                 "--analyzers 2 or more): the others take its partitions in a rebalance and "
                 "restore its keys from their snapshots")
      ->capture_default_str();
  app.add_option("--env", o.env, "KEY=VALUE for every service (e.g. IMMUNIZER_ANALYZE_THREADS=2)");
  auto* probe = app.add_subcommand("probe", "internal: consume scores and time them");
  probe->add_option("--bootstrap", probe_bootstrap)->required();
  probe->add_option("--topic", probe_topic)->required();
  probe->add_option("--out", probe_out)->required();
  CLI11_PARSE(app, argc, argv);
  if (probe->parsed()) return run_probe(probe_bootstrap, probe_topic, probe_out);

  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string bin =
      o.bin_dir.empty() ? (fs::path(self).parent_path().parent_path() / "bin").string() : o.bin_dir;
  immunizer::tools::Supervisor sup(/*echo=*/false);
  std::vector<Stage> stages;
  int rc = 0;
  try {
    // The broker's pid is needed for its CPU, so spawn() with a reader that owns its state.
    auto address = std::make_shared<std::promise<std::string>>();
    auto once = std::make_shared<std::once_flag>();
    const pid_t broker_pid =
        sup.spawn({.name = "broker",
                   .path = bin + "/immunizer",
                   .args = {"broker", "--partitions", std::to_string(o.partitions)},
                   .on_line = [address, once](const std::string& line) {
                     if (line.rfind("bootstrap=", 0) == 0)
                       std::call_once(*once, [&] { address->set_value(line.substr(10)); });
                   }});
    auto fut = address->get_future();
    if (fut.wait_for(std::chrono::seconds(15)) != std::future_status::ready)
      throw std::runtime_error("the embedded broker did not report its address within 15 s");
    const std::string bootstrap = fut.get();
    std::map<std::string, std::string> env{{"IMMUNIZER_KAFKA_BOOTSTRAP", bootstrap}};
    for (const auto& kv : o.env) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) throw std::invalid_argument("--env wants KEY=VALUE, got " + kv);
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    stages.push_back({"broker", broker_pid, 0});
    int port = o.port_base;
    auto start = [&](const std::string& svc, int instance) {
      auto e = env;
      e["IMMUNIZER_HTTP_PORT"] = std::to_string(port);
      const std::string name = svc + (instance > 0 ? std::to_string(instance + 1) : "");
      const pid_t pid =
          sup.spawn({.name = name, .path = bin + "/immunizer-" + svc, .env = e, .stop_order = 1});
      stages.push_back({name, pid, port});
      ++port;
    };
    for (int i = 0; i < o.monitors; ++i) start("monitor", i);
    for (int i = 0; i < o.analyzers; ++i) start("analyze", i);
    std::unique_ptr<immunizer::tools::RunPlanKeys> plan_keys;  // plan signs, execute verifies
    if (o.with_control) {
      plan_keys = std::make_unique<immunizer::tools::RunPlanKeys>(env);
      start("plan", 0);
      env["IMMUNIZER_EXECUTE_GRPC_LISTEN"] = "127.0.0.1:" + std::to_string(o.port_base + 50);
      start("execute", 0);
    }
    for (const auto& s : stages)
      if (s.port && !wait_ready(s.port, std::chrono::seconds(60)))
        throw std::runtime_error(s.name + " was not ready within 60 s");
    const std::string latency_file =
        (fs::temp_directory_path() / ("pipeline_bench_" + std::to_string(getpid()))).string();
    sup.spawn_until({.name = "probe",
                     .path = self,
                     .args = {"probe", "--bootstrap", bootstrap, "--topic", "immunizer.scores",
                              "--out", latency_file},
                     .may_exit = true,
                     .stop_order = 2},
                    "^(probe assigned)$", std::chrono::seconds(30));

    immunizer::sensor::SensorConfig sc;
    sc.app = "bench";
    sc.instance = "pipeline";
    sc.bootstrap = bootstrap;
    sc.cpu_budget = 0;  // record everything: a valid figure samples nothing away
    sc.max_inflight_bytes = 512u << 20;
    sc.queue_capacity = 1u << 20;
    sc.kafka_properties["log_level"] = "3";
    auto sensor = immunizer::sensor::Sensor::create(sc);
    Workload w(42, 2000);

    // Analyze counts a vector once: either learnt (grace period) or scored. A killed
    // instance keeps the counts of its last answer.
    std::map<std::string, std::vector<double>> analyze_seen;  // stage -> {scored, learning}
    auto analyze_counts = [&](const Stage& s) {
      const auto v =
          scrape(s.port, std::vector<std::string>{"immunizer_analyze_vectors_scored_total",
                                                  "immunizer_analyze_vectors_learning_total"});
      if (v) analyze_seen[s.name] = *v;
      const auto it = analyze_seen.find(s.name);
      return it == analyze_seen.end() ? std::vector<double>{0, 0} : it->second;
    };
    auto analyze_total = [&](const Stage& s) {
      const auto v = analyze_counts(s);
      return v[0] + v[1];
    };
    auto per_stage = [&]() {
      std::map<std::string, double> m;
      for (const auto& s : stages) {
        if (s.name.rfind("monitor", 0) == 0)
          m[s.name] = scrape(s.port, "immunizer_monitor_records_total").value_or(0);
        if (s.name.rfind("analyze", 0) == 0) m[s.name] = analyze_total(s);
      }
      return m;
    };
    auto analyzed = [&]() {
      double ana = 0;
      for (const auto& s : stages)
        if (s.name.rfind("analyze", 0) == 0) ana += analyze_total(s);
      return ana;
    };
    auto totals = [&]() {
      std::map<std::string, double> m;
      double mon = 0;
      for (const auto& s : stages)
        if (s.name.rfind("monitor", 0) == 0)
          mon += scrape(s.port, "immunizer_monitor_records_total").value_or(0);
      m["monitor"] = mon;
      m["analyze"] = analyzed();
      return m;
    };
    // Polls the stages' counters until each reaches its target or nothing moved for --stall;
    // records when each stage got there.
    auto wait_totals = [&](const std::map<std::string, double>& want,
                           std::map<std::string, Clock::time_point>& done_at,
                           std::map<std::string, double>& last) {
      auto last_move = Clock::now();
      std::map<std::string, double> prev;
      while (true) {
        last = totals();
        bool all = true;
        for (const auto& [k, v] : last) {
          if (v != prev[k]) last_move = Clock::now();
          if (v >= want.at(k) && !done_at.count(k)) done_at[k] = Clock::now();
          if (v < want.at(k)) all = false;
        }
        prev = last;
        if (all || Clock::now() - last_move > std::chrono::seconds(o.stall_seconds)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
      }
    };

    std::cout << "warm-up: " << o.warmup << " records" << std::flush;
    // Pacing reads analyze's counters (only), at most every 25 ms: at 100,000 records/s that is
    // 2,500 records, well inside --max-lag; more often would cost analyze CPU (each scrape).
    double processed_seen = 0;
    auto last_poll = Clock::now() - std::chrono::seconds(1);
    auto behind_of = [&](double already) {
      return [&, already](uint64_t i) {
        if (o.max_lag == 0) return false;
        if (Clock::now() - last_poll > std::chrono::milliseconds(25)) {
          processed_seen = analyzed();
          last_poll = Clock::now();
        }
        return already + static_cast<double>(i) - processed_seen > static_cast<double>(o.max_lag);
      };
    };
    const std::chrono::seconds stall(o.stall_seconds);
    produce(*sensor, w, o.warmup, o.rate, 0, behind_of(0), stall);
    sensor->flush(std::chrono::seconds(60));
    {
      std::map<std::string, Clock::time_point> d;
      std::map<std::string, double> last;
      const double w0 = static_cast<double>(o.warmup);
      wait_totals({{"monitor", w0}, {"analyze", w0}}, d, last);
      std::cout << " (monitor " << last["monitor"] << ", analyze " << last["analyze"] << ")\n";
    }
    const auto base = totals();
    const auto base_stage = per_stage();
    const auto monitor_messages = [&]() {  // messages the monitors consumed (calls)
      double m = 0;
      for (const auto& s : stages)
        if (s.name.rfind("monitor", 0) == 0)
          m += scrape(s.port, "immunizer_kafka_messages_consumed_total").value_or(0);
      return m;
    };
    const double monitor_messages0 = monitor_messages();
    const auto stats0 = sensor->stats();
    std::map<std::string, double> cpu0;
    for (const auto& s : stages)
      if (s.pid) cpu0[s.name] = cpu_seconds(s.pid);
    const double self0 = cpu_seconds(getpid());

    const auto t0 = Clock::now();
    // The rebalance: the last analyze instance dies mid-stream; what the survivors learn from
    // then on shows whether they resumed its keys from snapshots (0) or relearnt them.
    const Stage* doomed = nullptr;
    for (const auto& s : stages)
      if (s.name.rfind("analyze", 0) == 0) doomed = &s;
    if (o.kill_analyzer_after > 0 && (o.analyzers < 2 || doomed == nullptr))
      throw std::invalid_argument("--kill-analyzer-after needs --analyzers 2 or more");
    double learning_at_kill = -1;
    auto survivors_learning = [&]() {
      double n = 0;
      for (const auto& s : stages)
        if (s.name.rfind("analyze", 0) == 0 && &s != doomed) n += analyze_counts(s)[1];
      return n;
    };
    auto behind = behind_of(base.at("analyze"));
    auto measured_behind = [&](uint64_t i) {
      if (o.kill_analyzer_after > 0 && learning_at_kill < 0 && i >= o.kill_analyzer_after) {
        analyze_counts(*doomed);  // its counts as close to its end as can be
        ::kill(doomed->pid, SIGKILL);
        learning_at_kill = survivors_learning();
        std::printf("\nkilled %s (pid %d) after %llu measured records\n", doomed->name.c_str(),
                    static_cast<int>(doomed->pid), static_cast<unsigned long long>(i));
      }
      return behind(i);
    };
    produce(*sensor, w, o.records, o.rate, o.latency_every, measured_behind, stall);
    const auto t_produced = Clock::now();
    sensor->flush(std::chrono::seconds(120));
    const auto t_sent = Clock::now();
    std::map<std::string, Clock::time_point> done_at;
    std::map<std::string, double> last;
    const double n_records = static_cast<double>(o.records);
    wait_totals(
        {{"monitor", base.at("monitor") + n_records}, {"analyze", base.at("analyze") + n_records}},
        done_at, last);
    const auto last_stage = per_stage();
    const double monitor_messages1 = monitor_messages();
    const double self1 = cpu_seconds(getpid());
    std::map<std::string, double> cpu1;
    for (const auto& s : stages)
      if (s.pid) cpu1[s.name] = cpu_seconds(s.pid);
    const auto stats1 = sensor->stats();
    sup.stop_all(
        std::chrono::seconds(o.stop_grace_seconds));  // the probe writes its file on SIGTERM

    const double n = static_cast<double>(o.records);
    const uint64_t sent = stats1.sent - stats0.sent;
    const uint64_t dropped = stats1.dropped_total() - stats0.dropped_total();
    const double mon = last["monitor"] - base.at("monitor");
    const double ana = last["analyze"] - base.at("analyze");
    const auto secs = [&](Clock::time_point t) {
      return std::chrono::duration<double>(t - t0).count();
    };
    const double end_s = done_at.count("analyze") ? secs(done_at["analyze"]) : secs(Clock::now());
    std::printf(
        "\nrecords             %.0f measured (after %llu warm-up), %d partition(s), %d monitor(s), "
        "%d analyze(s)%s\n",
        n, static_cast<unsigned long long>(o.warmup), o.partitions, o.monitors, o.analyzers,
        o.with_control ? ", plan + execute" : "");
    std::printf(
        "offered             %.0f records/s by the app (%.2f s to record, %.2f s until the sensor "
        "had sent all)\n",
        n / secs(t_produced), secs(t_produced), secs(t_sent));
    std::printf(
        "end to end          %.0f records/s (last record processed by analyze after %.2f s)\n",
        ana / end_s, end_s);
    for (const char* k : {"monitor", "analyze"})
      if (done_at.count(k))
        std::printf("  %-17s %.0f records/s\n", k, (last[k] - base.at(k)) / secs(done_at[k]));
    // Each process's CPU over the records it handled (sent, for the app and the broker).
    const double sent_d = std::max(1.0, static_cast<double>(sent));
    std::printf("CPU per record      sensor side (this process) %.2f us\n",
                (self1 - self0) / sent_d * 1e6);
    for (const auto& s : stages) {
      if (!s.pid) continue;
      double handled = sent_d;
      if (last_stage.count(s.name))
        handled = std::max(1.0, last_stage.at(s.name) - base_stage.at(s.name));
      std::printf("                    %-8s %.2f us\n", s.name.c_str(),
                  (cpu1[s.name] - cpu0[s.name]) / handled * 1e6);
    }
    std::printf("monitor input       %.1f records per consumed message\n",
                mon / std::max(1.0, monitor_messages1 - monitor_messages0));
    std::ifstream lat(latency_file);
    std::vector<double> ms;
    uint64_t probe_scores = 0;
    lat >> probe_scores;
    for (double v; lat >> v;) ms.push_back(v);
    fs::remove(latency_file);
    std::printf("latency to score    p50 %.1f ms, p99 %.1f ms, max %.1f ms (%zu sampled records)\n",
                percentile(ms, 0.5), percentile(ms, 0.99),
                ms.empty() ? NAN : *std::max_element(ms.begin(), ms.end()), ms.size());
    if (learning_at_kill >= 0)
      std::printf(
          "rebalance           the survivors learnt %.0f vectors after the kill (0: the moved keys "
          "resumed from snapshots; a relearnt key learns its grace period again); %.0f vectors "
          "processed twice (the killed instance's uncommitted batches, read again)\n",
          survivors_learning() - learning_at_kill, std::max(0.0, ana - static_cast<double>(sent)));
    const double lost = std::max(0.0, static_cast<double>(sent) - ana);
    std::printf("dropped             %llu by the sensor\n",
                static_cast<unsigned long long>(dropped));
    std::printf("lost                %.0f (sent %llu, monitor %.0f, analyze %.0f)\n", lost,
                static_cast<unsigned long long>(sent), mon, ana);
    if (dropped > 0 || lost > 0 || ana < n) {
      std::printf("NOT A VALID FIGURE: records were dropped or lost\n");
      rc = 2;
    } else {
      std::printf("valid: 0 dropped, 0 lost, every record processed\n");
    }
  } catch (const std::exception& e) {
    std::cerr << "pipeline_bench: " << e.what() << "\n";
    rc = 1;
  }
  sup.stop_all(std::chrono::seconds(o.stop_grace_seconds));
  return rc;
}
