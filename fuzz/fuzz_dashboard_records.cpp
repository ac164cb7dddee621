// immunizer.alarms, immunizer.actions and immunizer.scores payloads through the dashboard's
// processor as the dashboard service runs them, then every JSON view the API serves
// (data-plane strings may hold any bytes: rendering must never throw).
#include "fuzz_util.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/dashboard/json.hpp"
#include "immunizer/dashboard/processor.hpp"
#include "immunizer/testing/manual_clock.hpp"

#include <prometheus/registry.h>

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const common::Topics topics = common::Topics::with_prefix("f.");
  common::ManualClock clock;
  prometheus::Registry registry;
  dashboard::DashboardConfig cfg;
  cfg.max_alarms = 8;
  cfg.max_actions = 8;
  dashboard::DashboardState state(cfg, clock);
  dashboard::SseHub hub(2, 16, registry);
  dashboard::DashboardProcessor proc(state, hub, topics, clock, std::chrono::milliseconds(1000));
  fuzz::NullProducer out;
  fuzz::run_processor(proc, {topics.alarms, topics.actions, topics.scores}, data, size, out);
  clock.advance(std::chrono::seconds(2));
  proc.tick(out);
  size_t n = dashboard::dump(state.alarms_json(100)).size();
  n += dashboard::dump(state.actions_json(100)).size();
  n += dashboard::dump(state.active_actions_json()).size();
  n += dashboard::dump(state.models_json(100)).size();
  n += dashboard::dump(state.stats_json()).size();
  for (const auto& a : state.alarms_json(100))
    if (a.contains("id") && a["id"].is_string()) {
      if (auto j = state.alarm_json(a["id"].get<std::string>())) n += dashboard::dump(*j).size();
    }
  hub.close();
  return n == 0;  // always 0: the views are never empty JSON text
}
