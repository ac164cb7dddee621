// immunizer.features (FeatureVectorBatch, or a former single FeatureVector) and
// immunizer.feedback (Feedback) payloads through the
// analyze processor as the analyze service runs them: learning, fitting after a short
// grace period, scoring, alarms, feedback into the reservoir, snapshots.
#include "fuzz_util.hpp"
#include "immunizer/analyze/processor.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/testing/manual_clock.hpp"

#include <prometheus/registry.h>

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const common::Topics topics = common::Topics::with_prefix("f.");
  common::ManualClock clock;
  prometheus::Registry registry;
  analyze::AnalyzeConfig cfg;
  cfg.detector.grace_records = 16;  // the smallest allowed: a seed of real vectors fits a model
  cfg.threads = 1;
  analyze::AnalyzeProcessor proc(cfg, topics, clock, registry);
  fuzz::NullProducer out;
  fuzz::run_processor(proc, {topics.features, topics.feedback}, data, size, out);
  return 0;
}
