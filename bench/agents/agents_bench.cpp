// Cost of the microagents on the application's thread (issue 5 targets):
//   BM_SensorCall4Args  begin + principal + 4 args + result + end/enqueue   target <= 250 ns median
//   BM_SensorDisabled   the same call with the sensor switched off at run time  target <= 5 ns
//   BM_EffectorAllows   allows() with directives active, principal not listed  target <= 30 ns
// The sensor produces to librdkafka's in-process mock cluster, so the producer thread really
// sends; the counters report how many records were sent and dropped during the run.
#include <benchmark/benchmark.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "mock_cluster.hpp"

#include <chrono>
#include <memory>
#include <string>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/effector/effector.hpp"
#include "immunizer/sensor/sensor.hpp"
#include "immunizer/v1/control.pb.h"

namespace {

using immunizer::sensor::CallScope;
using immunizer::sensor::DropReason;
using immunizer::sensor::Principal;
using immunizer::sensor::Sensor;

using immunizer::bench::MockCluster;

std::shared_ptr<Sensor> make_sensor(MockCluster& k) {
  immunizer::sensor::SensorConfig c;
  c.app = "bench";
  c.instance = "b1";
  c.bootstrap = k.bootstrap();
  c.topic_prefix = "bench.";
  c.cpu_budget = 0;  // measure the full cost: no adaptive sampling
  c.max_inflight_bytes = 256u << 20;
  c.queue_capacity = 1u << 20;
  c.kafka_properties["log_level"] = "0";
  return Sensor::create(c);
}

const Principal kPrincipal{"alice", "3f2a9c1e", "192.168.1.20"};

inline void one_call(Sensor& s, int64_t i) {
  CallScope c(s, "http GET /tienda1/publico/anadir.jsp");
  c.principal(kPrincipal)
      .arg("id", i)
      .arg("nombre", std::string_view("Queso Manchego"))
      .arg("precio", 39.5)
      .arg("cantidad", int64_t{2});
  c.result(200);
}

void report(benchmark::State& state, Sensor& s, const immunizer::sensor::SensorStats& before) {
  s.flush(std::chrono::seconds(10));
  const auto after = s.stats();
  state.counters["sent"] = static_cast<double>(after.sent - before.sent);
  state.counters["dropped"] = static_cast<double>(after.dropped_total() - before.dropped_total());
}

// The caller's wall time per call with a healthy pipeline: bursts of kBurst calls are timed,
// then (untimed) the producer thread drains them to the broker, as it would between bursts
// in a real application. Reported time = wall time of one call.
constexpr int kBurst = 256;
void BM_SensorCall4Args(benchmark::State& state) {
  static MockCluster k;
  static auto s = make_sensor(k);
  const auto before = s->stats();
  int64_t i = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int n = 0; n < kBurst; ++n) one_call(*s, ++i);
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count() / kBurst);
    s->flush(std::chrono::seconds(10));
  }
  report(state, *s, before);
}
BENCHMARK(BM_SensorCall4Args)
    ->UseManualTime()
    ->Iterations(400)
    ->Repetitions(9)
    ->ReportAggregatesOnly(true);

// The same call in a flood: the producer thread cannot keep up on two cores, the ring fills,
// records are dropped (counted). CPU column = the caller's own cost.
void BM_SensorCall4ArgsFlood(benchmark::State& state) {
  static MockCluster k;
  static auto s = make_sensor(k);
  const auto before = s->stats();
  int64_t i = 0;
  for (auto _ : state) one_call(*s, ++i);
  report(state, *s, before);  // after the timed loop
}
BENCHMARK(BM_SensorCall4ArgsFlood)->Repetitions(3)->ReportAggregatesOnly(true);

void BM_SensorCall4ArgsThreads(benchmark::State& state) {
  static MockCluster k;
  static auto s = make_sensor(k);
  int64_t i = 0;
  for (auto _ : state) one_call(*s, ++i);
}
BENCHMARK(BM_SensorCall4ArgsThreads)->Threads(2)->Repetitions(3)->ReportAggregatesOnly(true);

void BM_SensorNested(benchmark::State& state) {
  static MockCluster k;
  static auto s = make_sensor(k);
  int64_t i = 0;
  for (auto _ : state) {
    CallScope outer(*s, "http.request");
    outer.principal(kPrincipal).arg("path", std::string_view("/tienda1/index.jsp"));
    {
      CallScope inner(*s, "db.query");
      inner.arg("sql", std::string_view("select * from products where id = ?")).arg("id", ++i);
    }
    outer.result(200);
  }
}
BENCHMARK(BM_SensorNested)->Repetitions(3)->ReportAggregatesOnly(true);

void BM_SensorDisabled(benchmark::State& state) {
  static MockCluster k;
  static auto s = make_sensor(k);
  s->set_enabled(false);
  int64_t i = 0;
  for (auto _ : state) one_call(*s, ++i);
  s->set_enabled(true);
}
BENCHMARK(BM_SensorDisabled)->Repetitions(9)->ReportAggregatesOnly(true);

void BM_SensorSampledOut(benchmark::State& state) {
  static MockCluster k;
  static std::shared_ptr<Sensor> s = [] {
    immunizer::sensor::SensorConfig c;
    c.app = "bench";
    c.bootstrap = k.bootstrap();
    c.topic_prefix = "bench.";
    c.sample_rate = 0;
    c.cpu_budget = 0;
    c.kafka_properties["log_level"] = "0";
    return Sensor::create(c);
  }();
  int64_t i = 0;
  for (auto _ : state) one_call(*s, ++i);
}
BENCHMARK(BM_SensorSampledOut)->Repetitions(3)->ReportAggregatesOnly(true);

// ---- effector ----

const immunizer::crypto::SigningKey& bench_key() {
  static const auto k =
      immunizer::crypto::SigningKey::from_pem(immunizer::crypto::generate_ed25519().private_pem);
  return k;
}

std::shared_ptr<immunizer::effector::Effector> make_effector(int blocked) {
  immunizer::effector::EffectorConfig c;
  c.app = "bench";
  c.directive_public_keys = {bench_key().public_pem()};
  c.tls = "none";  // never started: no stream, no background threads
  c.execute_address = "127.0.0.1:1";
  auto e = immunizer::effector::Effector::create(c);
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (int i = 0; i < blocked; ++i) {
    immunizer::v1::Directive d;
    d.set_id("d" + std::to_string(i));
    d.set_issued_unix_nanos(now);
    auto* a = d.mutable_action();
    a->set_id("a" + std::to_string(i));
    a->set_kind(immunizer::v1::ACTION_BLOCK_PRINCIPAL);
    // a realistic mix: mostly IPs, some users and sessions
    const auto field = i % 5 == 0   ? immunizer::v1::PRINCIPAL_FIELD_USER
                       : i % 5 == 1 ? immunizer::v1::PRINCIPAL_FIELD_SESSION
                                    : immunizer::v1::PRINCIPAL_FIELD_IP;
    a->set_target_field(field);
    a->set_target_value("10.9." + std::to_string(i / 256) + "." + std::to_string(i % 256));
    a->set_ttl_millis(3'600'000);
    immunizer::effector::sign(d, bench_key());
    e->apply(d);
  }
  return e;
}

// The effector the allows() cases ask: with no block or with 100 blocks in force, made once.
const immunizer::effector::Effector& effector_with(int blocked) {
  if (blocked == 0) {
    static const auto none = make_effector(0);
    return *none;
  }
  static const auto some = make_effector(100);
  return *some;
}

// The allows() cases: blocks in force, the client address asked about (null: kPrincipal, not
// listed), threads and repetitions.
struct AllowsCase {
  const char* name;
  int blocked;
  const char* ip;
  int threads;
  int repetitions;
};
constexpr AllowsCase kAllowsCases[] = {
    {"BM_EffectorAllows", 100, nullptr, 1, 9},
    {"BM_EffectorAllowsNothingActive", 0, nullptr, 1, 3},
    {"BM_EffectorAllowsDenied", 100, "10.9.0.7", 1, 3},  // blocked by IP
    {"BM_EffectorAllowsThreads", 100, nullptr, 2, 3},
};

const bool kAllowsRegistered = [] {
  for (const AllowsCase& c : kAllowsCases) {
    auto* b = benchmark::RegisterBenchmark(c.name, [c](benchmark::State& state) {
      const auto& e = effector_with(c.blocked);
      const immunizer::effector::PrincipalView p =
          c.ip ? immunizer::effector::PrincipalView("", "", c.ip)
               : immunizer::effector::PrincipalView(kPrincipal);
      for (auto _ : state) benchmark::DoNotOptimize(e.allows(p, "http.request"));
    });
    if (c.threads > 1) b->Threads(c.threads);
    b->Repetitions(c.repetitions)->ReportAggregatesOnly(true);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
