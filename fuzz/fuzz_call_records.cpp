// immunizer.calls payloads (CallRecordBatch or CallRecord, attacker-influenced bytes from
// the sensor) through parse_call_records and the monitor's processor, as the monitor
// service runs them: feature extraction, schema freezing, snapshots.
#include <cstdlib>

#include "fuzz_processor.hpp"
#include "immunizer/monitor/processor.hpp"
#include "immunizer/v1/call_records.hpp"

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The decoder alone: false leaves `out` as it was.
  {
    std::vector<v1::CallRecord> out(1);
    const std::string_view whole(reinterpret_cast<const char*>(data), size);
    if (!v1::parse_call_records(whole, &out) && out.size() != 1) std::abort();
  }
  // The service's path; a fresh processor per input keeps findings reproducible. A low
  // schema freeze reaches the frozen-schema paths within one input.
  fuzz::ProcessorHarness h;
  monitor::MonitorConfig cfg;
  cfg.features.schema_freeze_records = 3;
  cfg.features.max_models = 16;
  monitor::MonitorProcessor proc(cfg, h.topics, h.clock, h.registry);
  fuzz::run_processor(proc, {h.topics.calls}, data, size, h.out);
  return 0;
}
