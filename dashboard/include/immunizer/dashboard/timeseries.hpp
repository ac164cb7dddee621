// The overview's charts: a bounded ring of samples of the dashboard's figures (records
// scored per second, alarms in the last minute, open incidents, active blocks, attack call
// to applied latency, records lost), one sample per interval, the newest `points` kept.
// Memory is fixed by the configuration (dashboard.timeseries_points). Thread-safe: the
// stream loop's thread adds samples, HTTP threads read them.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>

namespace immunizer::dashboard {

struct SeriesSample {
  int64_t at_unix_nanos = 0;
  double scored_per_second = 0;
  double alarms_last_minute = 0;
  double incidents_open = 0;
  double blocks_active = 0;
  double latency_p50_ms = -1;  // -1: no applied action yet
  double records_lost = 0;     // total over the services, since they started
};

class TimeSeries {
 public:
  TimeSeries(int64_t interval_nanos, size_t points);

  // Samples `stats` (the JSON of GET /api/stats) when an interval has passed since the last
  // sample; returns whether it did. Missing fields count as 0.
  bool maybe_sample(int64_t now_unix_nanos, const nlohmann::json& stats);
  // Whether maybe_sample would take a sample now.
  bool due(int64_t now_unix_nanos) const;
  void add(const SeriesSample& s);

  // {"interval_ms": .., "points": [{"t": unix ms, "scored_per_second": .., ...}, ...]},
  // oldest first.
  nlohmann::json to_json() const;
  size_t size() const;

 private:
  const int64_t interval_nanos_;
  const size_t points_;
  int64_t last_ = 0;
  mutable std::mutex mu_;
  std::deque<SeriesSample> samples_;
};

}  // namespace immunizer::dashboard
