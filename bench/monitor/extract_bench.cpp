// Feature extraction throughput on CSIC-like records (the shop's outer http.request and inner
// endpoint records built from the CSIC 2010 training file), and memory per model after
// 100,000 records. Target: >= 300,000 records/s on one core.
#include <benchmark/benchmark.h>

#include <prometheus/registry.h>

#include <filesystem>
#include <iostream>
#include <map>

#include "immunizer/monitor/csic.hpp"
#include "immunizer/monitor/features.hpp"
#include "immunizer/monitor/processor.hpp"
#include "immunizer/testing/manual_clock.hpp"

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

// The monitor's processor on the same records as they arrive from the sensor: one
// CallRecordBatch message per model key of up to state.range(0) records, decoded, measured,
// and written out as FeatureVectorBatch messages (to a producer that only counts the bytes).
class CountingProducer final : public immunizer::common::Producer {
 public:
  void produce(const std::string&, std::string_view, std::string_view payload) override {
    bytes += payload.size();
    ++messages;
  }
  immunizer::common::FlushResult flush(std::chrono::milliseconds) override { return {true, 0}; }
  size_t bytes = 0, messages = 0;
};

std::vector<immunizer::common::Message> sensor_messages(size_t per_message) {
  std::vector<immunizer::common::Message> out;
  std::map<std::string, immunizer::v1::CallRecordBatch> open;
  auto send = [&](const std::string& key, immunizer::v1::CallRecordBatch& b) {
    immunizer::common::Message m;
    m.topic = "immunizer.calls";
    m.key = key;
    m.offset = static_cast<int64_t>(out.size());
    b.SerializeToString(&m.payload);
    out.push_back(std::move(m));
    b.clear_records();
  };
  for (const auto& r : records()) {
    const std::string key = FeatureExtractor::model_key(r);
    auto& b = open[key];
    b.set_batch_format(1);
    *b.add_records() = r;
    if (static_cast<size_t>(b.records_size()) >= per_message) send(key, b);
  }
  for (auto& [key, b] : open)
    if (b.records_size() > 0) send(key, b);
  return out;
}

// The benchmark's measured calls (a function of its own, for callgrind's --toggle-collect).
[[gnu::noinline]] void measured_batch(immunizer::monitor::MonitorProcessor& proc,
                                      const std::vector<immunizer::common::Message>& batch,
                                      immunizer::common::Producer& out,
                                      const immunizer::common::Processor::Reject& reject) {
  proc.process_batch(batch, out, reject);
}

// range(0): records a message; `warm_up`: consumed batches processed before the measurement,
// so that it sees models past their first records.
void run_processor(benchmark::State& state, int64_t warm_up) {
  const auto msgs = sensor_messages(static_cast<size_t>(state.range(0)));
  // About 1,000 records a consumed batch, however many a message holds.
  const size_t per_batch = std::max<size_t>(1, 1000 / static_cast<size_t>(state.range(0)));
  immunizer::common::ManualClock clock;
  prometheus::Registry reg;
  immunizer::monitor::MonitorProcessor proc(immunizer::monitor::MonitorConfig{},
                                            immunizer::common::Topics::with_prefix("immunizer."),
                                            clock, reg);
  CountingProducer out;
  size_t rejected = 0;
  const immunizer::common::Processor::Reject reject = [&](const immunizer::common::Message&,
                                                          const std::string&,
                                                          const std::string&) { ++rejected; };
  std::vector<std::vector<immunizer::common::Message>> batches;
  for (size_t i = 0; i < msgs.size(); i += per_batch)
    batches.emplace_back(
        msgs.begin() + static_cast<std::ptrdiff_t>(i),
        msgs.begin() + static_cast<std::ptrdiff_t>(std::min(msgs.size(), i + per_batch)));
  std::vector<size_t> records_in(batches.size(), 0);
  for (size_t i = 0; i < batches.size(); ++i)
    for (const auto& m : batches[i]) {
      immunizer::v1::CallRecordBatch b;
      b.ParseFromString(m.payload);
      records_in[i] += static_cast<size_t>(b.records_size());
    }
  size_t i = 0, n = 0;
  for (int64_t w = 0; w < warm_up; ++w) {
    proc.process_batch(batches[i], out, reject);
    if (++i == batches.size()) i = 0;
  }
  out.bytes = out.messages = 0;
  for (auto _ : state) {
    measured_batch(proc, batches[i], out, reject);
    n += records_in[i];
    if (++i == batches.size()) i = 0;
  }
  state.SetItemsProcessed(static_cast<int64_t>(n));
  state.counters["us_per_record"] = benchmark::Counter(
      static_cast<double>(n), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["out_bytes_per_record"] =
      static_cast<double>(out.bytes) / static_cast<double>(std::max<size_t>(n, 1));
  state.counters["rejected"] = static_cast<double>(rejected);
  state.counters["records"] = static_cast<double>(n);
}
void BM_ProcessorCsicBatches(benchmark::State& state) { run_processor(state, 0); }
BENCHMARK(BM_ProcessorCsicBatches)->Arg(1)->Arg(100)->Unit(benchmark::kMillisecond)->MinTime(3.0);
// The same work every run, for instruction counts under callgrind (a timed run does more or
// less of it): 60 batches (about 100,000 records, 100 a message) after 60 of warm-up.
void BM_ProcessorCsicBatchesFixed(benchmark::State& state) { run_processor(state, 60); }
BENCHMARK(BM_ProcessorCsicBatchesFixed)->Arg(100)->Iterations(60)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  print_memory_after_100k();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
