// The dashboard's in-memory view of the loop: bounded ring buffers of the newest alarms
// and action events, per-action and per-model state, counters, rates and the score
// distribution, all rendered as JSON for the API. Thread-safe (one mutex): the consumer
// thread feeds it, HTTP threads read it. Memory is bounded by DashboardConfig.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "immunizer/common/ids.hpp"
#include "immunizer/dashboard/config.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::dashboard {

// Events per second over a sliding window of one-second buckets.
class RateWindow {
 public:
  explicit RateWindow(int seconds = 60) : buckets_(static_cast<size_t>(seconds)) {}
  void add(int64_t now_nanos, uint64_t n = 1);
  double per_second(int64_t now_nanos) const;
  // Events within the window ending now.
  uint64_t count(int64_t now_nanos) const;

 private:
  struct Bucket {
    int64_t second = -1;
    uint64_t n = 0;
  };
  std::vector<Bucket> buckets_;
  int64_t first_second_ = -1;
};

class DashboardState {
 public:
  DashboardState(const DashboardConfig& cfg, const common::Clock& clock);

  // Each returns the JSON pushed to browsers, or nullopt for a duplicate (at-least-once
  // redelivery) that changed nothing.
  std::optional<nlohmann::json> add_alarm(const v1::Alarm& a);
  std::optional<nlohmann::json> add_action(const v1::ActionEvent& e);
  void add_score(const v1::Score& s);

  // The alarm still in the buffer, for feedback and manual actions.
  std::optional<v1::Alarm> find_alarm(const std::string& id) const;
  // Marks an alarm reviewed; returns its JSON (nullopt when it has left the buffer).
  std::optional<nlohmann::json> record_feedback(const std::string& alarm_id,
                                                const std::string& verdict,
                                                const std::string& analyst,
                                                const std::string& comment);

  // Newest first.
  nlohmann::json alarms_json(size_t limit) const;
  std::optional<nlohmann::json> alarm_json(const std::string& id) const;
  nlohmann::json actions_json(size_t limit) const;
  // Actions whose latest event is dispatched/applied and whose TTL has not run out.
  nlohmann::json active_actions_json() const;
  // Models with the most alarms first, then the most scored.
  nlohmann::json models_json(size_t limit) const;
  nlohmann::json stats_json() const;

  size_t alarm_count() const;
  size_t action_event_count() const;

 private:
  struct AlarmEntry {
    v1::Alarm alarm;
    int64_t received_unix_nanos = 0;
    std::string feedback_verdict;  // "", "false_positive", "confirmed"
    std::string feedback_analyst;
    std::string feedback_comment;
    int64_t feedback_unix_nanos = 0;
  };
  struct ActionState {
    v1::Action action;
    std::string plan_id, alarm_id;
    v1::ActionEventType latest = v1::ACTION_EVENT_UNSPECIFIED;
    int64_t dispatched_unix_nanos = 0, applied_unix_nanos = 0, last_unix_nanos = 0;
    int64_t call_timestamp_unix_nanos = 0;
    int applied_acks = 0, rejected_acks = 0;
  };
  struct ModelEntry {
    std::string state;
    uint64_t scored = 0, alarmed = 0;
    double last_score = 0, threshold = 0;
    int64_t last_seen_unix_nanos = 0;
  };

  AlarmEntry* find_locked(const std::string& id);
  const AlarmEntry* find_locked(const std::string& id) const;
  nlohmann::json alarm_entry_json(const AlarmEntry& e) const;
  nlohmann::json action_state_json(const std::string& id, const ActionState& s) const;
  bool enforcing(const ActionState& s, int64_t now) const;

  DashboardConfig cfg_;
  const common::Clock& clock_;
  mutable std::mutex mu_;

  std::deque<AlarmEntry> alarms_;
  uint64_t alarms_evicted_ = 0;                            // absolute index of alarms_.front()
  std::unordered_map<std::string, uint64_t> alarm_index_;  // id -> absolute index
  std::unordered_map<std::string, std::vector<std::string>>
      alarm_actions_;  // alarm id -> action ids

  std::deque<v1::ActionEvent> events_;
  std::unordered_set<std::string> event_keys_;  // dedupe of the events in the buffer
  std::unordered_map<std::string, ActionState> actions_;
  std::deque<std::string> action_order_;  // insertion order, for eviction

  std::unordered_map<std::string, ModelEntry> models_;
  std::deque<std::string> model_order_;

  // Counters since start (including replayed history).
  uint64_t alarms_total_ = 0, alarms_duplicate_ = 0, action_events_total_ = 0;
  uint64_t scored_total_ = 0, scored_alarmed_total_ = 0, feedback_total_ = 0;
  uint64_t false_positive_total_ = 0, confirmed_total_ = 0;
  std::map<std::string, uint64_t> alarms_by_severity_;
  std::map<std::string, uint64_t> events_by_type_;
  // Score distribution as combined_score / threshold; learning models counted apart.
  std::vector<uint64_t> score_buckets_;
  uint64_t scores_learning_ = 0;
  std::deque<double> latencies_ms_;  // attack call -> applied, newest last (bounded)
  RateWindow scored_rate_, alarm_rate_, action_rate_;
};

// Upper bounds of the score-distribution buckets, as multiples of the threshold
// (the last bucket is everything above the last bound).
const std::vector<double>& score_bucket_bounds();

}  // namespace immunizer::dashboard
