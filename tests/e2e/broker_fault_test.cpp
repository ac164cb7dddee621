// Broker faults (issue 11): a 3-broker embedded cluster hosted by this test, every service and
// the demo shop as processes under replayed traffic. One broker goes down mid-stream for
// IMMUNIZER_E2E_OUTAGE_SECONDS (default 30 s, as the issue asks) and comes back: nothing is lost
// (every call record the shop delivered is scored, nothing counted lost or dropped by the sensor),
// no process is restarted, and the app's request latency stays flat (the sensor never blocks
// the calling thread: a probe times shop requests before and during the outage). Then every
// broker goes down for a few seconds: each service's /readyz answers 503 while it cannot
// reach Kafka and 200 once it can again.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "immunizer/common/mock_broker.hpp"
#include "immunizer/replay/replayer.hpp"
#include "immunizer/tools/commands.hpp"
#include "immunizer/tools/pki.hpp"
#include "immunizer/tools/supervisor.hpp"
#include "immunizer/v1/call_records.hpp"
#include "immunizer/v1/records.pb.h"
#include "ports.hpp"
#include "topic_reader.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace tools = immunizer::tools;
namespace common = immunizer::common;
namespace v1 = immunizer::v1;

namespace {

int readyz(const std::string& host, int port) {
  httplib::Client c(host, port);
  c.set_connection_timeout(0, 500'000);
  c.set_read_timeout(2);
  auto r = c.Get("/readyz");
  return r ? r->status : 0;
}

// Waits until every port answers /readyz with `status`; returns the ports that did not.
std::vector<int> wait_all(const std::string& host, const std::vector<int>& ports, int status,
                          std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::vector<int> pending = ports;
  while (!pending.empty() && std::chrono::steady_clock::now() < deadline) {
    std::vector<int> still;
    for (int p : pending)
      if (readyz(host, p) != status) still.push_back(p);
    pending = still;
    if (!pending.empty()) std::this_thread::sleep_for(200ms);
  }
  return pending;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string id_of(const v1::RecordId& r) {
  return r.app() + "/" + r.instance() + "/" + std::to_string(r.seq());
}

// An app user next to the replayer: one instrumented shop request every 50 ms on a keep-alive
// connection, timed from the client (so a sensor that blocked the handler's thread shows).
// Each sample is tagged with the phase it started in (0 before the outage, 1 during, 2 after).
class LatencyProbe {
 public:
  LatencyProbe(const std::string& host, int port)
      : thread_([this, host, port] { run(host, port); }) {}
  ~LatencyProbe() { stop(); }
  void phase(int p) { phase_ = p; }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  struct Figures {
    size_t n = 0, failed = 0;
    double p50_ms = 0, p99_ms = 0, max_ms = 0;
  };
  Figures figures(int phase) {
    std::lock_guard lk(mu_);
    std::vector<double> v = ms_[phase];
    Figures f;
    f.n = v.size();
    f.failed = failed_[phase];
    if (v.empty()) return f;
    std::sort(v.begin(), v.end());
    f.p50_ms = v[v.size() / 2];
    f.p99_ms = v[std::min(v.size() - 1, v.size() * 99 / 100)];
    f.max_ms = v.back();
    return f;
  }

 private:
  void run(const std::string& host, int port) {
    httplib::Client c(host, port);
    c.set_keep_alive(true);
    c.set_connection_timeout(5);
    c.set_read_timeout(10);
    while (!stop_) {
      const int ph = phase_;
      const auto t0 = std::chrono::steady_clock::now();
      const auto r = c.Get("/tienda1/publico/productos.jsp?id=7");
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      {
        std::lock_guard lk(mu_);
        ms_[ph].push_back(ms);
        if (!r) ++failed_[ph];
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  std::atomic<int> phase_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<double> ms_[3];
  size_t failed_[3] = {0, 0, 0};
  std::thread thread_;
};

std::ostream& operator<<(std::ostream& o, const LatencyProbe::Figures& f) {
  return o << f.n << " requests (" << f.failed << " failed), p50 " << f.p50_ms << " ms, p99 "
           << f.p99_ms << " ms, max " << f.max_ms << " ms";
}

}  // namespace

// What it found (issue 11 item 8), on librdkafka 2.0.2's mock cluster: a downed broker leaves
// some client connections dead without a reset (the coordinator's, some producers'), so a
// request sent on one is never answered; librdkafka gave up on it only after 30 s (requests) or
// 60 s (socket), and every request behind it on that connection waited too. Consumer sessions
// expired behind a hung commit, analyze once stopped consuming after its rejoin (3,699 of 6,000
// records never scored, nothing counted), and the sensor's records timed out with their request
// (30 s, its delivery timeout). Now requests and sockets time out after 10 s (common/kafka.cpp,
// the sensor) and the sensor's delivery timeout is 120 s, longer than the outage.
TEST(BrokerFault, OneBrokerDownMidStreamLosesNothingAllDownMeansNotReady) {
  const std::string bin = IMMUNIZER_BIN_DIR;
  const int outage = std::getenv("IMMUNIZER_E2E_OUTAGE_SECONDS")
                         ? std::atoi(std::getenv("IMMUNIZER_E2E_OUTAGE_SECONDS"))
                         : 30;
  const int base = immunizer::e2e::free_base(7);
  ASSERT_GT(base, 0);
  const std::string state =
      fs::temp_directory_path().string() + "/immunizer_broker_fault_" + std::to_string(getpid());
  fs::remove_all(state);
  fs::create_directories(state);
  tools::pki::init(tools::pki::Layout{state});

  // The cluster `immunizer broker --brokers 3` runs, here in this process so that the test
  // can take brokers down.
  const auto topics = common::Topics::with_prefix("immunizer.");
  std::vector<common::TopicSpec> specs;
  for (const auto& t : {topics.calls, topics.features, topics.scores}) specs.push_back({t, 12});
  for (const auto& t : {topics.alarms, topics.plans, topics.actions, topics.feedback, topics.models,
                        topics.deadletter})
    specs.push_back({t, 1});
  common::MockBroker cluster(3, specs);
  const std::string bootstrap = cluster.bootstrap();

  tools::UpOptions o;
  o.demo = true;
  o.datasets = state;  // generated traffic
  o.port_base = base;
  o.dashboard_port = base + 6;
  o.shop_port = base + 7;
  o.state_dir = state;
  o.env = {{"IMMUNIZER_DASHBOARD_DATA_DIR", state + "/dashboard"}};
  auto children = tools::up_children(o, bootstrap, bin);
  tools::Supervisor sup(true);
  for (const auto& s : children.services) sup.spawn(s);
  ASSERT_TRUE(wait_all(children.host, children.service_ports, 200, 90s).empty())
      << "services not ready";
  sup.spawn(children.shop);
  {
    httplib::Client c(children.host, o.shop_port);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline && !c.Get("/healthz"))
      std::this_thread::sleep_for(100ms);
  }
  // Training traffic only, at a steady rate, long enough to span the outage.
  auto replay = children.replay;
  for (size_t i = 0; i + 1 < replay.args.size(); ++i)
    if (replay.args[i] == "--scenario") replay.args[i + 1] = "train";
  const int seconds = outage + 20;
  replay.args.insert(replay.args.end(), {"--rate", "100", "--train-count",
                                         std::to_string(seconds * 100), "--time-limit", "600"});
  sup.spawn(replay);

  LatencyProbe probe(children.host, o.shop_port);
  std::this_thread::sleep_for(10s);
  ASSERT_TRUE(sup.alive("replay"));
  std::cout << "[broker fault] broker 1 of 3 down for " << outage << " s" << std::endl;
  probe.phase(1);
  cluster.set_broker_down(1);
  std::this_thread::sleep_for(std::chrono::seconds(outage));
  probe.phase(2);
  cluster.set_broker_up(1);
  std::cout << "[broker fault] broker 1 up again" << std::endl;
  std::this_thread::sleep_for(5s);
  probe.stop();
  for (const auto& s : children.services) EXPECT_TRUE(sup.alive(s.name)) << s.name << " died";
  // The app's latency stays flat: a sensor that waited on the broker (a full queue, a blocking
  // produce or flush) would hold requests for seconds. The bound is generous for a loaded
  // machine (3x the p99 before the outage, at least 50 ms) and strict on stalls (1 s).
  const auto before = probe.figures(0), during = probe.figures(1), after = probe.figures(2);
  std::cout << "[broker fault] shop request latency before the outage: " << before
            << "; during: " << during << "; after: " << after << std::endl;
  ASSERT_GT(before.n, 50u);
  ASSERT_GT(during.n, static_cast<size_t>(outage * 5));
  EXPECT_EQ(before.failed + during.failed + after.failed, 0u);
  EXPECT_LT(during.p99_ms, std::max(50.0, 3 * before.p99_ms)) << "the app slowed during the outage";
  EXPECT_LT(during.max_ms, 1000.0) << "a request stalled during the outage";
  EXPECT_LT(after.max_ms, 1000.0) << "a request stalled as the broker came back";

  const auto t_wait = std::chrono::steady_clock::now();
  while (sup.alive("replay") && std::chrono::steady_clock::now() - t_wait < 300s)
    std::this_thread::sleep_for(500ms);
  ASSERT_FALSE(sup.alive("replay")) << "the replayer did not finish";
  const std::string mon = "http://" + children.host + ":" + std::to_string(base + 1) + "/metrics";
  const std::string ana = "http://" + children.host + ":" + std::to_string(base + 2) + "/metrics";
  std::atomic<bool> never{false};
  EXPECT_TRUE(immunizer::replay::wait_for_pipeline({mon, ana}, 120s, never, nullptr))
      << "monitor and analyze did not catch up after the outage";

  // Nothing lost: every delivered record scored; no loss counted anywhere.
  const auto msgs = immunizer::e2e::read_topics(bootstrap, {topics.calls, topics.scores}, 3s, 120s);
  std::set<std::string> delivered, scored;
  for (const auto& m : msgs) {
    if (m.topic == topics.calls) {
      std::vector<v1::CallRecord> recs;
      ASSERT_TRUE(v1::parse_call_records(m.payload, &recs));
      for (const auto& r : recs) delivered.insert(id_of(r.id()));
    } else {
      v1::Score s;
      ASSERT_TRUE(s.ParseFromString(m.payload));
      scored.insert(id_of(s.record_id()));
    }
  }
  size_t unscored = 0;
  for (const auto& id : delivered) unscored += !scored.count(id);
  std::vector<std::string> urls;
  for (int p : children.service_ports)
    urls.push_back("http://" + children.host + ":" + std::to_string(p) + "/metrics");
  urls.push_back("http://" + children.host + ":" + std::to_string(o.shop_port) + "/metrics");
  const auto counts = immunizer::replay::pipeline_counts(urls);
  std::cout << "[broker fault] " << outage << " s outage of 1 of 3 brokers: records delivered "
            << delivered.size() << ", scored " << scored.size() << ", not scored " << unscored
            << "; counters: " << immunizer::replay::describe(counts) << std::endl;
  EXPECT_GT(delivered.size(), static_cast<size_t>(seconds * 100)) << "too little traffic";
  EXPECT_EQ(unscored, 0u) << "records lost across the outage";
  EXPECT_EQ(counts.lost, 0) << "lost records counted (consumer resets, sensor drops)";
  EXPECT_EQ(counts.unreachable, 0);

  // Every broker down: nobody can reach Kafka, nobody is ready; back up: all ready again.
  for (int id = 1; id <= 3; ++id) cluster.set_broker_down(id);
  const auto t_down = std::chrono::steady_clock::now();
  const auto unready = wait_all(children.host, children.service_ports, 503, 20s);
  const double down_s = seconds_since(t_down);
  EXPECT_TRUE(unready.empty()) << unready.size() << " services still ready with every broker down";
  for (int id = 1; id <= 3; ++id) cluster.set_broker_up(id);
  const auto t_up = std::chrono::steady_clock::now();
  const auto not_back = wait_all(children.host, children.service_ports, 200, 60s);
  const double up_s = seconds_since(t_up);
  EXPECT_TRUE(not_back.empty()) << not_back.size() << " services not ready again";
  for (const auto& s : children.services) EXPECT_TRUE(sup.alive(s.name)) << s.name << " died";

  sup.stop_all(15s);
  // Last, so that it is in the tail of a long log: every figure the checks above judged.
  std::cout << "[broker fault] summary: not scored " << unscored << ", counted lost " << counts.lost
            << ", unreachable metrics " << counts.unreachable << "; latency during the outage p99 "
            << during.p99_ms << " ms (before " << before.p99_ms << "), max " << during.max_ms
            << " ms; every broker down: " << unready.size() << " service(s) still ready after "
            << down_s << " s; back up: " << not_back.size() << " not ready after " << up_s << " s"
            << std::endl;
  fs::remove_all(state);
}
