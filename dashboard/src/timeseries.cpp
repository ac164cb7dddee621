#include "immunizer/dashboard/timeseries.hpp"

#include <algorithm>

namespace immunizer::dashboard {

using nlohmann::json;

namespace {

// A number at a path of the stats JSON, or `def` when the path is missing or not a number.
double number_at(const json& j, std::initializer_list<const char*> path, double def = 0) {
  const json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object()) return def;
    auto it = cur->find(key);
    if (it == cur->end()) return def;
    cur = &*it;
  }
  return cur->is_number() ? cur->get<double>() : def;
}

}  // namespace

TimeSeries::TimeSeries(int64_t interval_nanos, size_t points)
    : interval_nanos_(std::max<int64_t>(interval_nanos, 1)), points_(std::max<size_t>(points, 1)) {}

bool TimeSeries::due(int64_t now) const { return last_ == 0 || now - last_ >= interval_nanos_; }

bool TimeSeries::maybe_sample(int64_t now, const json& stats) {
  if (!due(now)) return false;
  last_ = now;
  SeriesSample s;
  s.at_unix_nanos = now;
  s.scored_per_second = number_at(stats, {"rates", "scored_per_second"});
  s.alarms_last_minute = number_at(stats, {"rates", "alarms_last_minute"});
  s.incidents_open = number_at(stats, {"incidents", "open"});
  s.blocks_active = number_at(stats, {"blocks_active"});
  s.latency_p50_ms = number_at(stats, {"latency_call_to_applied_ms", "p50"}, -1);
  s.records_lost = number_at(stats, {"pipeline", "records_lost"});
  add(s);
  return true;
}

void TimeSeries::add(const SeriesSample& s) {
  std::lock_guard lock(mu_);
  samples_.push_back(s);
  while (samples_.size() > points_) samples_.pop_front();
}

size_t TimeSeries::size() const {
  std::lock_guard lock(mu_);
  return samples_.size();
}

json TimeSeries::to_json() const {
  std::lock_guard lock(mu_);
  json points = json::array();
  for (const auto& s : samples_)
    points.push_back(
        {{"t", s.at_unix_nanos / 1'000'000},
         {"scored_per_second", s.scored_per_second},
         {"alarms_last_minute", s.alarms_last_minute},
         {"incidents_open", s.incidents_open},
         {"blocks_active", s.blocks_active},
         {"latency_p50_ms", s.latency_p50_ms < 0 ? json(nullptr) : json(s.latency_p50_ms)},
         {"records_lost", s.records_lost}});
  return {{"interval_ms", interval_nanos_ / 1'000'000}, {"points", std::move(points)}};
}

}  // namespace immunizer::dashboard
