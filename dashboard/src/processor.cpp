#include "immunizer/dashboard/processor.hpp"

#include "immunizer/dashboard/json.hpp"

namespace immunizer::dashboard {

DashboardProcessor::DashboardProcessor(DashboardState& state, SseHub& hub, const common::Topics& topics,
                                       const common::Clock& clock, std::chrono::milliseconds stats_interval)
    : state_(state),
      hub_(hub),
      topics_(topics),
      clock_(clock),
      stats_interval_nanos_(std::chrono::duration_cast<std::chrono::nanoseconds>(stats_interval).count()) {}

void DashboardProcessor::process(const common::Message& m, common::Producer&) {
  if (m.topic == topics_.alarms) {
    v1::Alarm a;
    if (!a.ParseFromString(m.payload)) throw common::BadMessage("bad_alarm", "not an Alarm protobuf");
    if (auto j = state_.add_alarm(a)) hub_.publish("alarm", dump(*j));
  } else if (m.topic == topics_.actions) {
    v1::ActionEvent e;
    if (!e.ParseFromString(m.payload))
      throw common::BadMessage("bad_action_event", "not an ActionEvent protobuf");
    if (auto j = state_.add_action(e)) hub_.publish("action", dump(*j));
  } else if (m.topic == topics_.scores) {
    v1::Score s;
    if (!s.ParseFromString(m.payload)) throw common::BadMessage("bad_score", "not a Score protobuf");
    state_.add_score(s);
  } else {
    throw common::BadMessage("unexpected_topic", "dashboard does not read " + m.topic);
  }
}

void DashboardProcessor::tick(common::Producer&) {
  const int64_t now = clock_.now_unix_nanos();
  if (now - last_stats_ < stats_interval_nanos_) return;
  last_stats_ = now;
  if (hub_.clients() == 0) return;
  nlohmann::json j = state_.stats_json();
  j["sse"] = {{"clients", hub_.clients()}, {"dropped", hub_.dropped()}};
  hub_.publish("stats", dump(j));
}

}  // namespace immunizer::dashboard
