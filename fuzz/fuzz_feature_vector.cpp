// immunizer.features (FeatureVectorBatch, or a former single FeatureVector) and
// immunizer.feedback (Feedback) payloads through the
// analyze processor as the analyze service runs them: learning, fitting after a short
// grace period, scoring, alarms, feedback into the reservoir, snapshots.
#include "fuzz_processor.hpp"
#include "immunizer/analyze/processor.hpp"

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ProcessorHarness h;
  analyze::AnalyzeConfig cfg;
  cfg.detector.grace_records = 16;  // the smallest allowed: a seed of real vectors fits a model
  cfg.threads = 1;
  analyze::AnalyzeProcessor proc(cfg, h.topics, h.clock, h.registry);
  fuzz::run_processor(proc, {h.topics.features, h.topics.feedback}, data, size, h.out);
  return 0;
}
