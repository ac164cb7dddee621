// immunizer.alarms, immunizer.actions and immunizer.scores payloads through the dashboard's
// processor as the dashboard service runs them, then every JSON view the API serves
// (data-plane strings may hold any bytes: rendering must never throw).
#include "fuzz_processor.hpp"
#include "immunizer/dashboard/json.hpp"
#include "immunizer/dashboard/processor.hpp"

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ProcessorHarness h;
  dashboard::DashboardConfig cfg;
  cfg.max_alarms = 8;
  cfg.max_actions = 8;
  dashboard::DashboardState state(cfg, h.clock);
  dashboard::SseHub hub(2, 16, h.registry);
  dashboard::DashboardProcessor proc(state, hub, h.topics, h.clock,
                                     std::chrono::milliseconds(1000));
  fuzz::run_processor(proc, {h.topics.alarms, h.topics.actions, h.topics.scores}, data, size,
                      h.out);
  h.clock.advance(std::chrono::seconds(2));
  proc.tick(h.out);
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
