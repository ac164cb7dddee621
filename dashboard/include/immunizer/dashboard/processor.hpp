// Feeds the dashboard from Kafka: alarms, actions and scores go into DashboardState and
// out to the browsers (SseHub); a `stats` event is pushed periodically. Runs on the stream
// loop's thread and never blocks on a browser.
#pragma once

#include <nlohmann/json.hpp>

#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/stream_loop.hpp"
#include "immunizer/dashboard/execute_view.hpp"
#include "immunizer/dashboard/incidents.hpp"
#include "immunizer/dashboard/notifier.hpp"
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

// A Consumer that never commits: each start replays the retained history to rebuild the
// in-memory buffers; the incident history deduplicates the replay by alarm id.
class NonCommittingConsumer final : public common::Consumer {
 public:
  explicit NonCommittingConsumer(common::Consumer& inner) : inner_(inner) {}
  std::vector<common::Message> poll(size_t max, std::chrono::milliseconds timeout) override {
    return inner_.poll(max, timeout);
  }
  void commit(const std::vector<common::Message>&) override {}
  void rewind(const std::vector<common::Message>& batch) override { inner_.rewind(batch); }
  void close() override { inner_.close(); }

 private:
  common::Consumer& inner_;
};

}  // namespace immunizer::dashboard
