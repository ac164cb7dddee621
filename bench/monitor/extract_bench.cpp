// Feature extraction throughput on CSIC-like records (the shop's outer http.request and inner
// endpoint records built from the CSIC 2010 training file), and memory per model after
// 100,000 records. Target: >= 300,000 records/s on one core.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <iostream>

#include "immunizer/monitor/csic.hpp"
#include "immunizer/monitor/features.hpp"

namespace {

using immunizer::monitor::FeatureExtractor;
namespace csic = immunizer::monitor::csic;

const std::vector<immunizer::v1::CallRecord>& records() {
  static const std::vector<immunizer::v1::CallRecord> recs = [] {
    std::vector<immunizer::v1::CallRecord> out;
    const std::string dir = std::string(IMMUNIZER_DATASETS) + "/csic2010/";
    std::vector<csic::Request> reqs;
    if (std::filesystem::exists(dir + "normalTrafficTraining.txt.gz")) {
      auto normal = csic::read_file(dir + "normalTrafficTraining.txt.gz");
      auto anom = csic::read_file(dir + "anomalousTrafficTest.txt.gz");
      // ~1 attack per 10 requests, so the rarer code paths are exercised too.
      reqs.reserve(normal.size() + anom.size());
      for (size_t i = 0, a = 0; i < normal.size(); ++i) {
        if (i % 9 == 0 && a < anom.size()) reqs.push_back(std::move(anom[a++]));
        reqs.push_back(std::move(normal[i]));
      }
    } else {
      csic::Request r;
      r.method = "GET";
      r.path = "/tienda1/publico/anadir.jsp";
      r.query = "id=3&nombre=Vino+Rioja&precio=100&cantidad=55&B1=A%F1adir+al+carrito";
      r.headers = {
          {"User-Agent", "Mozilla/5.0 (compatible; Konqueror/3.5; Linux) KHTML/3.5.8 (like Gecko)"},
          {"Accept", "text/xml,application/xml,application/xhtml+xml,text/html;q=0.9,*/*;q=0.5"},
          {"Cookie", "JSESSIONID=1F767F17239C9B670A39E9B10C3825F4"}};
      reqs.assign(1000, r);
    }
    uint64_t seq = 0;
    int64_t ts = 1'600'000'000'000'000'000LL;
    for (const auto& r : reqs) {
      csic::ShopRecordOptions o;
      o.seq = seq;
      seq += 2;
      o.timestamp_unix_nanos = ts += 1'000'000;
      o.duration_nanos = 200'000 + static_cast<int64_t>(seq % 7) * 10'000;
      for (auto& rec : csic::to_call_records(r, o)) out.push_back(std::move(rec));
    }
    return out;
  }();
  return recs;
}

void BM_ExtractCsicRecords(benchmark::State& state) {
  const auto& recs = records();
  FeatureExtractor fx;
  // One reusable output vector per model key, as a service would keep per partition.
  std::unordered_map<std::string, immunizer::v1::FeatureVector> outs;
  std::vector<immunizer::v1::FeatureVector*> out_of(recs.size());
  for (size_t i = 0; i < recs.size(); ++i) out_of[i] = &outs[FeatureExtractor::model_key(recs[i])];
  std::string why;
  size_t i = 0;
  for (auto _ : state) {
    const bool ok = fx.extract(recs[i], out_of[i], &why);
    benchmark::DoNotOptimize(ok);
    if (++i == recs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["models"] = static_cast<double>(fx.model_keys().size());
}
BENCHMARK(BM_ExtractCsicRecords)->Unit(benchmark::kMicrosecond)->MinTime(3.0);

// Same with a fresh FeatureVector per record (no schema-name reuse): the cost a service pays
// if it does not keep one output message per model key.
void BM_ExtractCsicRecordsFreshOutput(benchmark::State& state) {
  const auto& recs = records();
  FeatureExtractor fx;
  std::string why;
  size_t i = 0;
  for (auto _ : state) {
    immunizer::v1::FeatureVector v;
    benchmark::DoNotOptimize(fx.extract(recs[i], &v, &why));
    if (++i == recs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExtractCsicRecordsFreshOutput)->Unit(benchmark::kMicrosecond)->MinTime(2.0);

// Snapshot cost of the largest model (bytes and time).
void BM_SnapshotOuterModel(benchmark::State& state) {
  const auto& recs = records();
  FeatureExtractor fx;
  immunizer::v1::FeatureVector v;
  std::string why;
  for (size_t i = 0; i < std::min<size_t>(recs.size(), 20000); ++i) fx.extract(recs[i], &v, &why);
  const std::string key = "shop|http.request|";
  size_t size = 0;
  for (auto _ : state) {
    auto s = fx.snapshot(key);
    size = s.size();
    benchmark::DoNotOptimize(s);
  }
  state.counters["snapshot_bytes"] = static_cast<double>(size);
}
BENCHMARK(BM_SnapshotOuterModel)->Unit(benchmark::kMillisecond);

void print_memory_after_100k() {
  const auto& recs = records();
  FeatureExtractor fx;
  std::unordered_map<std::string, immunizer::v1::FeatureVector> outs;  // as in the benchmark
  std::string why;
  for (size_t n = 0; n < 100000; ++n) {
    const auto& r = recs[n % recs.size()];
    fx.extract(r, &outs[FeatureExtractor::model_key(r)], &why);
  }
  std::cout << "memory after 100000 records (" << fx.model_keys().size() << " model keys, total "
            << fx.memory_bytes() / 1024 << " KiB):\n";
  for (const auto& k : fx.model_keys()) {
    const auto st = fx.stats(k);
    std::cout << "  " << k << ": " << st.records << " records, " << st.paths << " paths, "
              << st.features << " features, " << st.memory_bytes / 1024 << " KiB, snapshot "
              << fx.snapshot(k).size() / 1024 << " KiB\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  print_memory_after_100k();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
