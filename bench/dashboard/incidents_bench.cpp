// The incident engine on a SQLite file in /tmp (WAL, synchronous=NORMAL): alarms per second
// into incidents (one transaction per alarm, as the consumer does), with P principals
// (P = 1: one attacker, every alarm joins one incident and one collapsed row; P = 10000:
// mostly new incidents), and a filtered, paginated list over the resulting history.
#include <benchmark/benchmark.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <filesystem>

#include "immunizer/dashboard/incidents.hpp"
#include "immunizer/testing/manual_clock.hpp"

using namespace immunizer;
using namespace immunizer::dashboard;

namespace {

v1::Alarm alarm(int64_t i, int64_t principals, int64_t at) {
  v1::Alarm a;
  a.set_id("alarm-" + std::to_string(i));
  a.set_model_key("shop|/tienda1/publico/anadir.jsp|http.request");
  a.set_call("/tienda1/publico/anadir.jsp");
  a.mutable_principal()->set_session("sess-" + std::to_string(i % principals));
  a.mutable_principal()->set_ip("198.18." + std::to_string((i % principals) % 256) + ".7");
  a.set_combined_score(3.0);
  a.set_threshold(2.0);
  a.set_severity(i % 7 == 0 ? v1::SEVERITY_CRITICAL : v1::SEVERITY_HIGH);
  for (int k = 0; k < 4; ++k) {
    auto* f = a.add_top_features();
    f->set_feature("arg:cantidad:" + std::string(k % 2 ? "rare_3gram" : "length_deviation") +
                   std::to_string(i % 3));
    f->set_contribution(2.0 - 0.3 * k);
    f->set_value(1.0 + k);
  }
  for (int k = 0; k < 64; ++k) a.add_values(k * 0.5);
  a.set_raised_unix_nanos(at);
  a.set_timestamp_unix_nanos(at - 1'000'000);
  return a;
}

struct Db {
  std::filesystem::path dir;
  Db() {
    char tmpl[] = "/tmp/immunizer-bench-incidents-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~Db() { std::filesystem::remove_all(dir); }
  std::string path() const { return (dir / "d.db").string(); }
};

// An incident engine on a fresh database, with its clock and registry.
struct Bed {
  Db db;
  common::ManualClock clock;
  prometheus::Registry reg;
  IncidentEngine engine{IncidentConfig{}, std::make_unique<IncidentStore>(db.path()), clock, reg};
};

void report(benchmark::State& state, IncidentEngine& engine, int64_t alarms) {
  state.SetItemsProcessed(alarms);
  state.counters["incidents"] = static_cast<double>(engine.counts()["total"].get<int64_t>());
  state.counters["store_errors"] = static_cast<double>(engine.store_errors());
}

void BM_OnAlarm(benchmark::State& state) {
  const int64_t principals = state.range(0);
  Bed b;
  int64_t i = 0;
  for (auto _ : state) {
    auto c = b.engine.on_alarm(alarm(i, principals, b.clock.now_unix_nanos() + i * 1'000'000));
    benchmark::DoNotOptimize(c);
    ++i;
  }
  report(state, b.engine, i);
}
BENCHMARK(BM_OnAlarm)->Arg(1)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond)->UseRealTime();

// As the consumer runs it: one transaction per batch of 100 alarms.
void BM_OnAlarmBatched(benchmark::State& state) {
  const int64_t principals = state.range(0);
  Bed b;
  int64_t i = 0;
  for (auto _ : state) {
    b.engine.begin_batch();
    for (int k = 0; k < 100; ++k, ++i)
      benchmark::DoNotOptimize(
          b.engine.on_alarm(alarm(i, principals, b.clock.now_unix_nanos() + i * 1'000'000)));
    b.engine.end_batch();
  }
  report(state, b.engine, i);
}
BENCHMARK(BM_OnAlarmBatched)->Arg(1)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ListFiltered(benchmark::State& state) {
  Bed b;
  for (int64_t i = 0; i < 20'000; ++i)
    b.engine.on_alarm(alarm(i, 5000, b.clock.now_unix_nanos() + i * 1'000'000));
  IncidentQuery q;
  q.states = {"open", "acknowledged"};
  q.min_severity = 3;
  q.principal = "sess-4";
  q.limit = 25;
  for (auto _ : state) benchmark::DoNotOptimize(b.engine.list(q));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ListFiltered)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
