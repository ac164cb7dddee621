// What a stream processor's fuzz target builds per input, as its service would around the
// processor: the topics (prefix "f."), a manual clock, a fresh metrics registry (a fresh
// processor per input keeps findings reproducible) and a producer that keeps nothing; declare
// it before the processor, which refers to it. Header-only; one per input, single-threaded.
#pragma once

#include <prometheus/registry.h>

#include "fuzz_util.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/testing/manual_clock.hpp"

namespace immunizer::fuzz {

struct ProcessorHarness {
  const common::Topics& topics = fuzz_topics();
  common::ManualClock clock;
  prometheus::Registry registry;
  NullProducer out;

  static const common::Topics& fuzz_topics() {
    static const common::Topics t = common::Topics::with_prefix("f.");
    return t;
  }
};

}  // namespace immunizer::fuzz
