#include "immunizer/dashboard/processor.hpp"

#include "immunizer/dashboard/api.hpp"
#include "immunizer/dashboard/json.hpp"

namespace immunizer::dashboard {

void announce(const IncidentChange& c, SseHub& hub, Notifier* notifier) {
  nlohmann::json j = incident_json(c.incident);
  j["change"] = change_name(c.kind);
  hub.publish("incident", dump(j));
  if (!notifier) return;
  if (c.kind == IncidentChange::kOpened) notifier->notify("opened", j);
  if (c.kind == IncidentChange::kEscalated) notifier->notify("escalated", j);
  if (c.kind == IncidentChange::kStateChanged &&
      (c.incident.state == "resolved" || c.incident.state == "false_positive"))
    notifier->notify("resolved", j);
}

DashboardProcessor::DashboardProcessor(DashboardState& state, SseHub& hub,
                                       const common::Topics& topics, const common::Clock& clock,
                                       std::chrono::milliseconds stats_interval,
                                       DashboardParts parts)
    : state_(state),
      hub_(hub),
      topics_(topics),
      clock_(clock),
      stats_interval_nanos_(
          std::chrono::duration_cast<std::chrono::nanoseconds>(stats_interval).count()),
      parts_(parts) {}

void DashboardProcessor::process(const common::Message& m, common::Producer&) {
  if (m.topic == topics_.alarms) {
    v1::Alarm a;
    if (!a.ParseFromString(m.payload))
      throw common::BadMessage("bad_alarm", "not an Alarm protobuf");
    if (auto j = state_.add_alarm(a)) hub_.publish("alarm", dump(*j));
    if (parts_.incidents)
      if (auto c = parts_.incidents->on_alarm(a)) announce(*c, hub_, parts_.notifier);
  } else if (m.topic == topics_.actions) {
    v1::ActionEvent e;
    if (!e.ParseFromString(m.payload))
      throw common::BadMessage("bad_action_event", "not an ActionEvent protobuf");
    if (auto j = state_.add_action(e)) hub_.publish("action", dump(*j));
    if (parts_.incidents)
      if (auto c = parts_.incidents->on_action(e)) announce(*c, hub_, parts_.notifier);
  } else if (m.topic == topics_.scores) {
    v1::Score s;
    if (!s.ParseFromString(m.payload))
      throw common::BadMessage("bad_score", "not a Score protobuf");
    state_.add_score(s);
  } else {
    throw common::BadMessage("unexpected_topic", "dashboard does not read " + m.topic);
  }
}

void DashboardProcessor::process_batch(const std::vector<common::Message>& batch,
                                       common::Producer& out, const Reject& reject) {
  if (!parts_.incidents) return Processor::process_batch(batch, out, reject);
  struct Batch {
    IncidentEngine& e;
    explicit Batch(IncidentEngine& x) : e(x) { e.begin_batch(); }
    ~Batch() { e.end_batch(); }
  } b(*parts_.incidents);
  Processor::process_batch(batch, out, reject);
}

void DashboardProcessor::tick(common::Producer&) {
  if (parts_.incidents) parts_.incidents->tick();
  const int64_t now = clock_.now_unix_nanos();
  if (now - last_stats_ < stats_interval_nanos_) return;
  last_stats_ = now;
  if (hub_.clients() == 0 && !parts_.series) return;
  const auto stats = full_stats(state_, hub_, parts_);
  if (parts_.series) parts_.series->maybe_sample(now, stats);
  if (hub_.clients() > 0) hub_.publish("stats", dump(stats));
}

}  // namespace immunizer::dashboard
