// The demo shop's request handler called directly (no sockets): what instrumenting a
// request costs on the application's thread, side by side with the uninstrumented handler.
//   BM_ShopHandle/0   baseline: no sensor, no effector
//   BM_ShopHandle/1   sensor recording every call + effector allows() (no directive)
//   BM_ShopHandle/2   the same with 5% of calls sampled (what a CPU budget leaves under load)
// The request is the one bench/agents/shop_load.sh sends with wrk. The sensor produces to
// librdkafka's in-process mock cluster (its producer thread runs on the other core).
// Counter cpu_ns_per_req: CPU time of the whole process (handler, sensor and librdkafka
// threads, and the in-process mock broker) per request. IMMUNIZER_SENSOR_* variables
// (e.g. IMMUNIZER_SENSOR_COMPRESSION, IMMUNIZER_SENSOR_LINGER_MS) apply to the sensor.
#include <benchmark/benchmark.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "mock_cluster.hpp"

#include <time.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/shop/shop.hpp"

namespace {

using immunizer::bench::MockCluster;

httplib::Request wrk_request() {
  httplib::Request req;
  req.method = "GET";
  req.target =
      "/tienda1/publico/"
      "anadir.jsp?id=3&nombre=Vino+Rioja&precio=100&cantidad=55&B1=A%F1adir+al+carrito";
  req.path = "/tienda1/publico/anadir.jsp";
  req.remote_addr = "127.0.0.1";
  req.headers.emplace("Host", "127.0.0.1:8080");
  req.headers.emplace("Cookie", "JSESSIONID=1F767F17239C9B670A39E9B10C3825F4");
  req.headers.emplace("User-Agent",
                      "Mozilla/5.0 (compatible; Konqueror/3.5; Linux) KHTML/3.5.8 (like Gecko)");
  req.headers.emplace("REMOTE_ADDR", "127.0.0.1");
  req.headers.emplace("REMOTE_PORT", "40000");
  req.headers.emplace("LOCAL_ADDR", "127.0.0.1");
  req.headers.emplace("LOCAL_PORT", "8080");
  return req;
}

// CPU time (ns) of this process's threads so far, summed by thread name ("imm-sensor",
// "rdk:broker1", ...), from /proc/self/task/*/schedstat.
std::map<std::string, double> cpu_by_thread() {
  std::map<std::string, double> out;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(t.path() / "comm"), sched(t.path() / "schedstat");
    std::string name;
    double ns = 0;
    if (std::getline(comm, name) && (sched >> ns)) out[name] += ns;
  }
  return out;
}

void BM_ShopHandle(benchmark::State& state) {
  const bool instrumented = state.range(0) >= 1;
  MockCluster k;
  std::shared_ptr<immunizer::sensor::Sensor> sensor;
  std::shared_ptr<immunizer::effector::Effector> effector;
  if (instrumented) {
    auto c = immunizer::sensor::SensorConfig::from_env();
    c.app = "shop";
    c.instance = "b1";
    c.bootstrap = k.bootstrap();
    c.topic_prefix = "bench.";
    c.cpu_budget = 0;  // the controller off: the rate below holds
    c.sample_rate = state.range(0) == 2 ? 0.05 : 1.0;
    c.max_inflight_bytes = 256u << 20;
    c.queue_capacity = 1u << 20;
    c.kafka_properties["log_level"] = "0";
    sensor = immunizer::sensor::Sensor::create(c);
    immunizer::effector::EffectorConfig e;
    e.app = "shop";
    e.execute_address = "127.0.0.1:1";  // nothing listens: allows() decides locally (fail-open)
    e.directive_public_keys = {immunizer::crypto::generate_ed25519().public_pem};
    e.tls = "none";  // never connects
    effector = immunizer::effector::Effector::create(e);
  }
  immunizer::shop::Shop shop(sensor, effector, {});
  const httplib::Request req = wrk_request();
  auto process_cpu_ns = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
  };
  const double cpu0 = process_cpu_ns();
  for (auto _ : state) {
    httplib::Response res;
    shop.handle(req, res);
    benchmark::DoNotOptimize(res.status);
  }
  state.SetItemsProcessed(state.iterations());
  const double n = static_cast<double>(state.iterations());
  if (sensor)
    sensor->flush(std::chrono::seconds(10));  // the records of this run are CPU of this run
  state.counters["cpu_ns_per_req"] = (process_cpu_ns() - cpu0) / n;
  if (sensor) {
    // The sensor's background threads (created with it, so all their time is this run's).
    double producer = 0, kafka = 0;
    for (const auto& [name, ns] : cpu_by_thread()) {
      if (name == "imm-sensor")
        producer += ns;
      else if (name.rfind("rdk:broker", 0) == 0 && name != "rdk:broker-1")
        kafka += ns;  // not the mock's
    }
    state.counters["producer_ns_per_req"] = producer / n;
    state.counters["kafka_ns_per_req"] = kafka / n;
    const auto st = sensor->stats();
    state.counters["records_sent"] = static_cast<double>(st.sent);
    state.counters["records_dropped"] = static_cast<double>(st.dropped_total());
  }
}
BENCHMARK(BM_ShopHandle)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->MinTime(1.0);

}  // namespace

BENCHMARK_MAIN();
