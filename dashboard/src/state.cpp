#include "immunizer/dashboard/state.hpp"

#include <algorithm>
#include <cmath>

#include "immunizer/dashboard/json.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

namespace {
constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr size_t kMaxLatencies = 1000;

int64_t second_of(int64_t nanos) { return nanos / kNanosPerSecond; }

bool is_enforcement(v1::ActionKind k) {
  return k == v1::ACTION_BLOCK_PRINCIPAL || k == v1::ACTION_ABORT_CALL ||
         k == v1::ACTION_THROTTLE_PRINCIPAL || k == v1::ACTION_DISABLE_CALL;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(std::lround(q * static_cast<double>(v.size() - 1)));
  return v[std::min(i, v.size() - 1)];
}
}  // namespace

const std::vector<double>& score_bucket_bounds() {
  static const std::vector<double> b = {0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0};
  return b;
}

void RateWindow::add(int64_t now_nanos, uint64_t n) {
  const int64_t s = second_of(now_nanos);
  if (first_second_ < 0) first_second_ = s;
  auto& b = buckets_[static_cast<size_t>(s) % buckets_.size()];
  if (b.second != s) b = {s, 0};
  b.n += n;
}

uint64_t RateWindow::count(int64_t now_nanos) const {
  const int64_t now = second_of(now_nanos);
  const auto window = static_cast<int64_t>(buckets_.size());
  uint64_t sum = 0;
  for (const auto& b : buckets_)
    if (b.second >= 0 && b.second > now - window && b.second <= now) sum += b.n;
  return sum;
}

double RateWindow::per_second(int64_t now_nanos) const {
  if (first_second_ < 0) return 0;
  const int64_t now = second_of(now_nanos);
  const auto window = static_cast<int64_t>(buckets_.size());
  const uint64_t sum = count(now_nanos);
  // Young windows divide by the time actually observed, so the first seconds are not diluted.
  const int64_t span = std::clamp<int64_t>(now - first_second_ + 1, 1, window);
  return static_cast<double>(sum) / static_cast<double>(span);
}

DashboardState::DashboardState(const DashboardConfig& cfg, const common::Clock& clock)
    : cfg_(cfg), clock_(clock), score_buckets_(score_bucket_bounds().size() + 1, 0) {}

DashboardState::AlarmEntry* DashboardState::find_locked(const std::string& id) {
  auto it = alarm_index_.find(id);
  if (it == alarm_index_.end()) return nullptr;
  return &alarms_[static_cast<size_t>(it->second - alarms_evicted_)];
}
const DashboardState::AlarmEntry* DashboardState::find_locked(const std::string& id) const {
  return const_cast<DashboardState*>(this)->find_locked(id);
}

std::optional<json> DashboardState::add_alarm(const v1::Alarm& a) {
  std::lock_guard lock(mu_);
  const int64_t now = clock_.now_unix_nanos();
  if (!a.id().empty() && alarm_index_.count(a.id())) {
    ++alarms_duplicate_;
    return std::nullopt;
  }
  ++alarms_total_;
  ++alarms_by_severity_[severity_name(a.severity())];
  alarm_rate_.add(now);
  AlarmEntry e;
  e.alarm = a;
  e.received_unix_nanos = now;
  if (!a.id().empty()) alarm_index_[a.id()] = alarms_evicted_ + alarms_.size();
  alarms_.push_back(std::move(e));
  while (alarms_.size() > static_cast<size_t>(cfg_.max_alarms)) {
    const auto& old = alarms_.front().alarm;
    auto it = alarm_index_.find(old.id());
    if (it != alarm_index_.end() && it->second == alarms_evicted_) alarm_index_.erase(it);
    alarm_actions_.erase(old.id());
    alarms_.pop_front();
    ++alarms_evicted_;
  }
  return alarm_entry_json(alarms_.back());
}

std::optional<json> DashboardState::add_action(const v1::ActionEvent& e) {
  std::lock_guard lock(mu_);
  const int64_t now = clock_.now_unix_nanos();
  const std::string key = e.action_id() + '\x1f' + std::to_string(e.type()) + '\x1f' +
                          e.effector() + '\x1f' + std::to_string(e.at_unix_nanos());
  if (event_keys_.count(key)) return std::nullopt;
  ++action_events_total_;
  ++events_by_type_[action_event_name(e.type())];
  action_rate_.add(now);

  events_.push_back(e);
  event_keys_.insert(key);
  while (events_.size() > static_cast<size_t>(cfg_.max_actions)) {
    const auto& old = events_.front();
    event_keys_.erase(old.action_id() + '\x1f' + std::to_string(old.type()) + '\x1f' +
                      old.effector() + '\x1f' + std::to_string(old.at_unix_nanos()));
    events_.pop_front();
  }

  auto [it, inserted] = actions_.try_emplace(e.action_id());
  ActionState& s = it->second;
  if (inserted) {
    action_order_.push_back(e.action_id());
    if (!e.alarm_id().empty()) {
      auto& ids = alarm_actions_[e.alarm_id()];
      if (ids.size() < 16) ids.push_back(e.action_id());
    }
  }
  // Later events may carry only the id; keep the richest description of the action.
  if (e.has_action() && (e.action().kind() != v1::ACTION_KIND_UNSPECIFIED ||
                         s.action.kind() == v1::ACTION_KIND_UNSPECIFIED))
    s.action = e.action();
  if (!e.plan_id().empty()) s.plan_id = e.plan_id();
  if (!e.alarm_id().empty()) s.alarm_id = e.alarm_id();
  if (e.call_timestamp_unix_nanos() > 0)
    s.call_timestamp_unix_nanos = e.call_timestamp_unix_nanos();
  // Events can arrive out of order across partitions: a terminal state (expired, revoked)
  // is never undone by a late dispatched/applied event.
  const bool terminal =
      s.latest == v1::ACTION_EVENT_EXPIRED || s.latest == v1::ACTION_EVENT_REVOKED;
  switch (e.type()) {
    case v1::ACTION_EVENT_DISPATCHED:
      if (s.dispatched_unix_nanos == 0) s.dispatched_unix_nanos = e.at_unix_nanos();
      if (!terminal && s.latest != v1::ACTION_EVENT_APPLIED) s.latest = e.type();
      break;
    case v1::ACTION_EVENT_APPLIED:
      ++s.applied_acks;
      if (s.applied_unix_nanos == 0) {
        s.applied_unix_nanos = e.at_unix_nanos();
        if (e.call_timestamp_unix_nanos() > 0 &&
            e.at_unix_nanos() >= e.call_timestamp_unix_nanos()) {
          latencies_ms_.push_back(
              static_cast<double>(e.at_unix_nanos() - e.call_timestamp_unix_nanos()) / 1e6);
          if (latencies_ms_.size() > kMaxLatencies) latencies_ms_.pop_front();
        }
      }
      if (!terminal) s.latest = e.type();
      break;
    case v1::ACTION_EVENT_REJECTED:
      ++s.rejected_acks;
      if (!terminal && s.applied_acks == 0) s.latest = e.type();
      break;
    case v1::ACTION_EVENT_EXPIRED:
    case v1::ACTION_EVENT_REVOKED:
      s.latest = e.type();
      break;
    default:
      break;
  }
  s.last_unix_nanos = std::max(s.last_unix_nanos, e.at_unix_nanos());
  while (action_order_.size() > static_cast<size_t>(cfg_.max_actions)) {
    actions_.erase(action_order_.front());
    action_order_.pop_front();
  }

  json j = to_json(e);
  j["status"] = action_event_name(s.latest);
  return j;
}

void DashboardState::add_score(const v1::Score& s) {
  std::lock_guard lock(mu_);
  const int64_t now = clock_.now_unix_nanos();
  ++scored_total_;
  scored_rate_.add(now);
  if (s.alarmed()) ++scored_alarmed_total_;
  const bool learning = s.model_state() == "LEARNING" || s.threshold() <= 0;
  if (learning) {
    ++scores_learning_;
  } else {
    const double ratio = s.combined_score() / s.threshold();
    const auto& bounds = score_bucket_bounds();
    size_t i = 0;
    while (i < bounds.size() && ratio > bounds[i]) ++i;
    ++score_buckets_[i];
  }
  auto [it, inserted] = models_.try_emplace(s.model_key());
  if (inserted) {
    model_order_.push_back(s.model_key());
    while (model_order_.size() > static_cast<size_t>(cfg_.max_models)) {
      models_.erase(model_order_.front());
      model_order_.pop_front();
    }
    it = models_.find(s.model_key());
    if (it == models_.end()) return;
  }
  auto& m = it->second;
  if (!s.model_state().empty()) m.state = s.model_state();
  ++m.scored;
  if (s.alarmed()) ++m.alarmed;
  m.last_score = s.combined_score();
  m.threshold = s.threshold();
  m.last_seen_unix_nanos = now;
}

std::optional<v1::Alarm> DashboardState::find_alarm(const std::string& id) const {
  std::lock_guard lock(mu_);
  const auto* e = find_locked(id);
  if (!e) return std::nullopt;
  return e->alarm;
}

std::optional<json> DashboardState::record_feedback(const std::string& alarm_id,
                                                    const std::string& verdict,
                                                    const std::string& analyst,
                                                    const std::string& comment) {
  std::lock_guard lock(mu_);
  ++feedback_total_;
  if (verdict == "false_positive") ++false_positive_total_;
  if (verdict == "confirmed") ++confirmed_total_;
  auto* e = find_locked(alarm_id);
  if (!e) return std::nullopt;
  e->feedback_verdict = verdict;
  e->feedback_analyst = analyst;
  e->feedback_comment = comment;
  e->feedback_unix_nanos = clock_.now_unix_nanos();
  return alarm_entry_json(*e);
}

json DashboardState::alarm_entry_json(const AlarmEntry& e) const {
  json j = to_json(e.alarm);
  j["received_unix_nanos"] = e.received_unix_nanos;
  if (e.feedback_verdict.empty()) {
    j["feedback"] = nullptr;
  } else {
    j["feedback"] = {{"verdict", e.feedback_verdict},
                     {"analyst", e.feedback_analyst},
                     {"comment", e.feedback_comment},
                     {"at_unix_nanos", e.feedback_unix_nanos}};
  }
  json actions = json::array();
  if (auto it = alarm_actions_.find(e.alarm.id()); it != alarm_actions_.end()) {
    for (const auto& id : it->second)
      if (auto a = actions_.find(id); a != actions_.end())
        actions.push_back(action_state_json(id, a->second));
  }
  j["actions"] = std::move(actions);
  return j;
}

bool DashboardState::enforcing(const ActionState& s, int64_t now) const {
  if (s.latest != v1::ACTION_EVENT_DISPATCHED && s.latest != v1::ACTION_EVENT_APPLIED) return false;
  if (!is_enforcement(s.action.kind())) return false;
  const int64_t start = s.dispatched_unix_nanos ? s.dispatched_unix_nanos : s.applied_unix_nanos;
  if (s.action.ttl_millis() > 0 && start > 0 && start + s.action.ttl_millis() * 1'000'000 <= now)
    return false;
  return true;
}

json DashboardState::action_state_json(const std::string& id, const ActionState& s) const {
  const int64_t start = s.dispatched_unix_nanos ? s.dispatched_unix_nanos : s.applied_unix_nanos;
  json j = {
      {"action_id", id},
      {"plan_id", s.plan_id},
      {"alarm_id", s.alarm_id},
      {"status", action_event_name(s.latest)},
      {"action", to_json(s.action)},
      {"dispatched_unix_nanos", s.dispatched_unix_nanos},
      {"applied_unix_nanos", s.applied_unix_nanos},
      {"applied_acks", s.applied_acks},
      {"rejected_acks", s.rejected_acks},
      {"expires_unix_nanos",
       (s.action.ttl_millis() > 0 && start > 0) ? start + s.action.ttl_millis() * 1'000'000 : 0},
      {"latency_ms", nullptr}};
  if (s.applied_unix_nanos > 0 && s.call_timestamp_unix_nanos > 0 &&
      s.applied_unix_nanos >= s.call_timestamp_unix_nanos)
    j["latency_ms"] = static_cast<double>(s.applied_unix_nanos - s.call_timestamp_unix_nanos) / 1e6;
  return j;
}

json DashboardState::alarms_json(size_t limit) const {
  std::lock_guard lock(mu_);
  json out = json::array();
  for (auto it = alarms_.rbegin(); it != alarms_.rend() && out.size() < limit; ++it)
    out.push_back(alarm_entry_json(*it));
  return out;
}

std::optional<json> DashboardState::alarm_json(const std::string& id) const {
  std::lock_guard lock(mu_);
  const auto* e = find_locked(id);
  if (!e) return std::nullopt;
  return alarm_entry_json(*e);
}

json DashboardState::actions_json(size_t limit) const {
  std::lock_guard lock(mu_);
  json out = json::array();
  for (auto it = events_.rbegin(); it != events_.rend() && out.size() < limit; ++it) {
    json j = to_json(*it);
    auto s = actions_.find(it->action_id());
    j["status"] = s != actions_.end() ? action_event_name(s->second.latest) : "unspecified";
    out.push_back(std::move(j));
  }
  return out;
}

json DashboardState::active_actions_json() const {
  std::lock_guard lock(mu_);
  const int64_t now = clock_.now_unix_nanos();
  json out = json::array();
  for (auto it = action_order_.rbegin(); it != action_order_.rend(); ++it) {
    const auto& s = actions_.at(*it);
    if (enforcing(s, now)) out.push_back(action_state_json(*it, s));
  }
  return out;
}

json DashboardState::models_json(size_t limit) const {
  std::lock_guard lock(mu_);
  std::vector<const std::pair<const std::string, ModelEntry>*> v;
  v.reserve(models_.size());
  for (const auto& kv : models_) v.push_back(&kv);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) {
    if (a->second.alarmed != b->second.alarmed) return a->second.alarmed > b->second.alarmed;
    if (a->second.scored != b->second.scored) return a->second.scored > b->second.scored;
    return a->first < b->first;
  });
  json out = json::array();
  for (size_t i = 0; i < v.size() && i < limit; ++i) {
    const auto& m = v[i]->second;
    out.push_back({{"model_key", v[i]->first},
                   {"state", m.state},
                   {"scored", m.scored},
                   {"alarmed", m.alarmed},
                   {"last_score", m.last_score},
                   {"threshold", m.threshold},
                   {"last_seen_unix_nanos", m.last_seen_unix_nanos}});
  }
  return out;
}

json DashboardState::stats_json() const {
  std::lock_guard lock(mu_);
  const int64_t now = clock_.now_unix_nanos();
  size_t active = 0;
  for (const auto& [id, s] : actions_)
    if (enforcing(s, now)) ++active;
  size_t learning = 0, active_models = 0;
  for (const auto& [k, m] : models_) {
    if (m.state == "LEARNING") ++learning;
    if (m.state == "ACTIVE") ++active_models;
  }
  json buckets = json::array();
  const auto& bounds = score_bucket_bounds();
  for (size_t i = 0; i < score_buckets_.size(); ++i)
    buckets.push_back({{"le", i < bounds.size() ? json(bounds[i]) : json(nullptr)},
                       {"count", score_buckets_[i]}});
  json severity = json::object();
  for (const char* s : {"low", "medium", "high", "critical", "unspecified"}) {
    auto it = alarms_by_severity_.find(s);
    severity[s] = it == alarms_by_severity_.end() ? 0 : it->second;
  }
  json by_type = json::object();
  for (const char* t : {"dispatched", "applied", "rejected", "expired", "revoked"}) {
    auto it = events_by_type_.find(t);
    by_type[t] = it == events_by_type_.end() ? 0 : it->second;
  }
  std::vector<double> lat(latencies_ms_.begin(), latencies_ms_.end());
  json latency = {{"count", lat.size()},
                  {"last", lat.empty() ? json(nullptr) : json(lat.back())},
                  {"p50", lat.empty() ? json(nullptr) : json(percentile(lat, 0.5))},
                  {"p95", lat.empty() ? json(nullptr) : json(percentile(lat, 0.95))}};
  return {
      {"now_unix_nanos", now},
      {"records_scored", scored_total_},
      {"records_alarmed", scored_alarmed_total_},
      {"alarms", alarms_total_},
      {"alarms_duplicate", alarms_duplicate_},
      {"alarms_buffered", alarms_.size()},
      {"alarms_by_severity", std::move(severity)},
      {"action_events", action_events_total_},
      {"action_events_by_type", std::move(by_type)},
      {"blocks_active", active},
      {"feedback",
       {{"total", feedback_total_},
        {"false_positive", false_positive_total_},
        {"confirmed", confirmed_total_}}},
      {"rates",
       {{"scored_per_second", scored_rate_.per_second(now)},
        {"alarms_per_second", alarm_rate_.per_second(now)},
        {"alarms_last_minute", alarm_rate_.count(now)},
        {"action_events_per_second", action_rate_.per_second(now)}}},
      {"score_distribution",
       {{"unit", "combined_score/threshold"},
        {"buckets", std::move(buckets)},
        {"learning", scores_learning_}}},
      {"models", {{"tracked", models_.size()}, {"learning", learning}, {"active", active_models}}},
      {"latency_call_to_applied_ms", std::move(latency)}};
}

size_t DashboardState::alarm_count() const {
  std::lock_guard lock(mu_);
  return alarms_.size();
}
size_t DashboardState::action_event_count() const {
  std::lock_guard lock(mu_);
  return events_.size();
}

}  // namespace immunizer::dashboard
