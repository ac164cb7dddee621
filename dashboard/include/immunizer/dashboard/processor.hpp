// Feeds the dashboard from Kafka: alarms, actions and scores go into DashboardState and
// out to the browsers (SseHub); a `stats` event is pushed periodically. Runs on the stream
// loop's thread and never blocks on a browser.
#pragma once

#include <nlohmann/json.hpp>

#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/metrics.hpp"
#include "immunizer/common/stage.hpp"
#include "immunizer/dashboard/execute_view.hpp"
#include "immunizer/dashboard/incidents.hpp"
#include "immunizer/dashboard/notifier.hpp"
#include "immunizer/dashboard/pipeline_loss.hpp"
#include "immunizer/dashboard/sse.hpp"
#include "immunizer/dashboard/state.hpp"
#include "immunizer/dashboard/timeseries.hpp"

namespace immunizer::dashboard {

// Optional parts of the service the processor and the API feed or read (nullptr: absent).
struct DashboardParts {
  IncidentEngine* incidents = nullptr;
  Notifier* notifier = nullptr;
  const ExecuteView* execute = nullptr;
  TimeSeries* series = nullptr;
  const PipelineLoss* pipeline = nullptr;
  // An alarm id read again (a replay after a crash upstream): dropped and counted here
  // (immunizer_duplicates_dropped_total{what="alarm"}).
  prometheus::Counter* alarm_duplicates = nullptr;
};

// Sends an incident change to the browsers ("incident" event) and, for opened, escalated
// and resolved/false_positive incidents, to the notifier.
void announce(const IncidentChange& c, SseHub& hub, Notifier* notifier);

class DashboardProcessor final : public common::Processor {
 public:
  DashboardProcessor(DashboardState& state, SseHub& hub, const common::Topics& topics,
                     const common::Clock& clock, std::chrono::milliseconds stats_interval,
                     DashboardParts parts = {});
  // Throws common::BadMessage for payloads that do not parse (they become dead letters).
  void process(const common::Message& m, common::Producer& out) override;
  // One incident-history transaction per batch.
  void process_batch(const std::vector<common::Message>& batch, common::Producer& out,
                     const Reject& reject) override;
  void tick(common::Producer& out) override;

 private:
  DashboardState& state_;
  SseHub& hub_;
  common::Topics topics_;
  const common::Clock& clock_;
  int64_t stats_interval_nanos_;
  int64_t last_stats_ = 0;
  DashboardParts parts_;
};

// The dashboard stage: alarms, actions and scores in (never committed: every start replays the
// retained history, the incident history deduplicating it); feedback out; the UI, JSON API and
// SSE on the HTTP port; `immunizer-dashboard hash-password` hashes a dashboard.users password.
// main() runs it.
extern const common::Stage kStage;

}  // namespace immunizer::dashboard
