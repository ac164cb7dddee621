#include "immunizer/dashboard/incidents.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cstring>

#include "immunizer/common/enum_names.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/common/metrics.hpp"
#include "immunizer/dashboard/json.hpp"
#include "immunizer/v1/principal.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

namespace {
constexpr int64_t kNanosPerMilli = 1'000'000;
constexpr const char* kOthers = "(others)";
constexpr const char* kExtendsPrefix = "extends active action ";
constexpr size_t kMaxEventKeys = 64;
constexpr const char* kPatternPrefix = "pattern:";
constexpr const char* kNoPrincipal = "none:";
// A principal's alarms moved out of pattern rows when its incident opens, at most.
constexpr size_t kMaxMovedAlarms = 1000;

auto log() {
  static auto l = common::logger("dashboard");
  return l;
}

// Counts one more under `key`; beyond kMaxListed distinct keys, under
// "(others)".
void count_into(std::map<std::string, int64_t>& m, const std::string& key) {
  if (m.count(key) || m.size() < Incident::kMaxListed) {
    ++m[key];
  } else {
    ++m[kOthers];
  }
}

// One less under `key` (or under "(others)" when it was counted there); zero counts go.
void uncount(std::map<std::string, int64_t>& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) it = m.find(kOthers);
  if (it != m.end() && --it->second <= 0) m.erase(it);
}

// The first explaining feature: positive contribution and a non-zero value (a
// feature of value 0 says what is absent, which no person reads as a reason).
const v1::FeatureContribution* top_feature(const v1::Alarm& a) {
  for (const auto& f : a.top_features())
    if (f.contribution() > 0 && f.value() != 0) return &f;
  return nullptr;
}

bool valid_state(const std::string& s) {
  return s == "open" || s == "acknowledged" || s == "resolved" || s == "false_positive";
}
bool closed(const std::string& s) { return s == "resolved" || s == "false_positive"; }

json features_json(const std::map<std::string, double>& m, size_t limit) {
  std::vector<std::pair<std::string, double>> v(m.begin(), m.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  json out = json::array();
  for (size_t i = 0; i < v.size() && i < limit; ++i)
    out.push_back({{"feature", v[i].first}, {"contribution", v[i].second}});
  return out;
}

json counted_json(const std::map<std::string, int64_t>& m) {
  std::vector<std::pair<std::string, int64_t>> v(m.begin(), m.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  json out = json::array();
  for (const auto& [k, n] : v) out.push_back({{"value", k}, {"alarms", n}});
  return out;
}

// What the event says about its action: identifiers, the action itself (the first event that
// carries it, or any that names a kind), the call's time, what it extends, the reason.
void merge_event_fields(ActionRecord& r, const v1::ActionEvent& e) {
  r.action_id = e.action_id();
  if (!e.alarm_id().empty()) r.alarm_id = e.alarm_id();
  if (!e.plan_id().empty()) r.plan_id = e.plan_id();
  if (e.has_action() && (e.action().kind() != v1::ACTION_KIND_UNSPECIFIED || r.kind.empty())) {
    r.kind = action_kind_name(e.action().kind());
    r.target_field = principal_field_name(e.action().target_field());
    r.target_value = e.action().target_value();
    r.call = e.action().call();
    r.ttl_ms = e.action().ttl_millis();
  }
  if (e.call_timestamp_unix_nanos() > 0)
    r.call_timestamp_unix_nanos = e.call_timestamp_unix_nanos();
  if (e.reason().rfind(kExtendsPrefix, 0) == 0 ||
      e.reason().find(std::string("; ") + kExtendsPrefix) != std::string::npos) {
    r.extends = e.reason().substr(e.reason().find(kExtendsPrefix) + std::strlen(kExtendsPrefix));
  }
  if (!e.reason().empty()) r.reason = e.reason().substr(0, 500);
}

// The action's status after the event: expired and revoked are final; an applied action stays
// applied whatever later dispatches or rejections of other effectors say.
void merge_event_status(ActionRecord& r, const v1::ActionEvent& e) {
  const bool terminal = r.status == "expired" || r.status == "revoked";
  switch (e.type()) {
    case v1::ACTION_EVENT_DISPATCHED:
      if (r.dispatched_unix_nanos == 0) r.dispatched_unix_nanos = e.at_unix_nanos();
      if (!terminal && r.status != "applied") r.status = "dispatched";
      break;
    case v1::ACTION_EVENT_APPLIED:
      ++r.applied_acks;
      if (r.applied_unix_nanos == 0) r.applied_unix_nanos = e.at_unix_nanos();
      if (!terminal) r.status = "applied";
      break;
    case v1::ACTION_EVENT_REJECTED:
      ++r.rejected_acks;
      if (!terminal && r.applied_acks == 0) r.status = "rejected";
      break;
    case v1::ACTION_EVENT_EXPIRED:
      r.status = "expired";
      break;
    case v1::ACTION_EVENT_REVOKED:
      r.status = "revoked";
      break;
    default:
      break;
  }
}

void merge_event(ActionRecord& r, const v1::ActionEvent& e) {
  merge_event_fields(r, e);
  merge_event_status(r, e);
}
}  // namespace

namespace {
// In the order of IncidentChange::Kind's values (literals: data() is NUL-terminated).
constexpr std::string_view kChangeNames[] = {"updated", "opened", "escalated", "state_changed"};
}  // namespace

const char* change_name(IncidentChange::Kind k) {
  return common::enum_name(kChangeNames, k, "updated").data();
}

std::string address_prefix(const std::string& ip, int v4_bits, int v6_bits) {
  return v1::address_prefix(ip, v4_bits, v6_bits);
}

std::string pattern_key(const v1::Alarm& a) {
  const auto* top = top_feature(a);
  return kPatternPrefix + a.call() + "|" + (top ? top->feature() : std::string("-"));
}

bool is_pattern_key(const std::string& key) { return key.rfind(kPatternPrefix, 0) == 0; }

std::string principal_key(const v1::Principal& p, const IncidentConfig& cfg) {
  // The keys plan aggregates on (v1::key_or_fallback), so an incident is what plan blocks.
  const auto level = v1::level_from_name(cfg.key).value_or(v1::PrincipalLevel::kSession);
  return v1::key_or_fallback(p, level, {cfg.ipv4_prefix, cfg.ipv6_prefix}).text();
}

json incident_json(const Incident& i) {
  json sev = json::object();
  for (int k = 1; k < 5; ++k) sev[severity_of_rank(k)] = i.by_severity[k];
  sev["unspecified"] = i.by_severity[0];
  const auto colon = i.principal_key.find(':');
  const bool pattern = is_pattern_key(i.principal_key);
  return {{"id", i.id},
          {"kind", pattern ? "pattern" : "incident"},
          {"principals", pattern ? i.principal.value("principals", int64_t{0}) : int64_t{1}},
          {"principal_key", i.principal_key},
          {"principal_kind", i.principal_key.substr(0, colon)},
          {"principal_value", colon == std::string::npos ? "" : i.principal_key.substr(colon + 1)},
          {"principal", i.principal},
          {"state", i.state},
          {"first_seen_unix_nanos", i.first_seen},
          {"last_seen_unix_nanos", i.last_seen},
          {"alarms", i.alarm_count},
          {"rows", i.group_count},
          {"actions", i.action_count},
          {"by_severity", std::move(sev)},
          {"severity", severity_of_rank(i.max_severity)},
          {"max_ratio", i.max_ratio},
          {"calls", counted_json(i.calls)},
          {"models", counted_json(i.models)},
          {"top_features", features_json(i.features, 10)},
          {"state_by", i.state_by},
          {"state_at_unix_nanos", i.state_at},
          {"state_comment", i.state_comment}};
}

IncidentEngine::IncidentEngine(IncidentConfig cfg, std::unique_ptr<IncidentStore> store,
                               const common::Clock& clock, prometheus::Registry& registry)
    : cfg_(std::move(cfg)),
      store_(std::move(store)),
      clock_(clock),
      incidents_family_(
          common::counter_family(registry, "immunizer_dashboard_incidents_total",
                                 "Incident events: opened, escalated, state changes by operators")),
      alarms_grouped_(common::register_counter(
          registry, "immunizer_dashboard_incident_alarms_total", "Alarms added to incidents")),
      alarms_duplicate_(
          common::register_counter(registry, "immunizer_dashboard_incident_alarms_duplicate_total",
                                   "Alarms already stored (redelivery, replay after a restart)")),
      alarms_collapsed_(common::register_counter(
          registry, "immunizer_dashboard_incident_alarms_collapsed_total",
          "Alarms collapsed into an existing row (same principal, model, top feature)")),
      alarms_in_patterns_(common::register_counter(
          registry, "immunizer_dashboard_incident_pattern_alarms_total",
          "Alarms collapsed into a pattern row (their principal had no incident: too little "
          "evidence)")),
      alarms_moved_(common::register_counter(
          registry, "immunizer_dashboard_incident_alarms_moved_total",
          "Alarms moved from a pattern row into their principal's incident when it opened")),
      errors_family_(
          common::counter_family(registry, "immunizer_dashboard_store_errors_total",
                                 "Failed writes or reads of the dashboard database, by operation")),
      pruned_(common::register_counter(registry, "immunizer_dashboard_store_pruned_incidents_total",
                                       "Incidents deleted by retention (age or size)")),
      db_bytes_(common::register_gauge(registry, "immunizer_dashboard_store_bytes",
                                       "Bytes in use in the dashboard database")) {
  for (const char* e : {"opened", "escalated", "state_changed"})
    incidents_family_.Add({{"event", e}});
  for (const char* op : {"alarm", "action", "query", "state", "prune", "feedback"})
    errors_family_.Add({{"op", op}});
}

void IncidentEngine::failed(const char* op, const std::exception& e) {
  ++errors_;
  errors_family_.Add({{"op", op}}).Increment();
  const int64_t now = clock_.now_unix_nanos();
  if (now - last_error_log_ >= 5'000'000'000LL) {
    last_error_log_ = now;
    log()->error("dashboard database: {} failed: {} ({} failures so far)", op, e.what(), errors_);
  }
}

template <typename F>
auto IncidentEngine::guarded(const char* op, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    store_->rollback();
    failed(op, e);
    return decltype(f()){};
  }
}

int64_t IncidentEngine::fold(Incident& inc, const v1::Alarm& a, int64_t at) {
  const int sev = std::clamp(static_cast<int>(a.severity()), 0, 4);
  const double ratio = a.threshold() > 0 ? a.combined_score() / a.threshold() : 0;
  inc.first_seen = inc.alarm_count == 0 ? at : std::min(inc.first_seen, at);
  inc.last_seen = inc.alarm_count == 0 ? at : std::max(inc.last_seen, at);
  ++inc.alarm_count;
  ++inc.by_severity[sev];
  inc.max_severity = std::max(inc.max_severity, sev);
  inc.max_ratio = std::max(inc.max_ratio, ratio);
  count_into(inc.calls, a.call());
  count_into(inc.models, a.model_key());
  for (const auto& f : a.top_features()) {
    if (f.contribution() <= 0 || f.value() == 0) continue;
    if (inc.features.count(f.feature()) || inc.features.size() < Incident::kMaxListed)
      inc.features[f.feature()] += f.contribution();
  }
  const auto* top = top_feature(a);
  const auto [group_id, new_group] =
      store_->add_to_group(inc.id, a, top ? top->feature() : "", at, ratio);
  if (new_group) {
    ++inc.group_count;
  } else {
    alarms_collapsed_.Increment();
  }
  return group_id;
}

void IncidentEngine::unfold(const StoredAlarm& s) {
  auto d = store_->incident(s.incident_id);
  if (!d) return;
  const v1::Alarm& a = s.alarm;
  const int sev = std::clamp(static_cast<int>(a.severity()), 0, 4);
  d->by_severity[sev] = std::max<int64_t>(0, d->by_severity[sev] - 1);
  uncount(d->calls, a.call());
  uncount(d->models, a.model_key());
  for (const auto& f : a.top_features()) {
    auto it = d->features.find(f.feature());
    if (f.contribution() <= 0 || f.value() == 0 || it == d->features.end()) continue;
    if ((it->second -= f.contribution()) <= 1e-9) d->features.erase(it);
  }
  if (store_->remove_from_group(s.group_id))
    d->group_count = std::max<int64_t>(0, d->group_count - 1);
  const auto e = store_->extent(d->id);  // the alarm row has moved already
  auto known = std::find_if(unfolded_.begin(), unfolded_.end(),
                            [&](const Incident& u) { return u.id == d->id; });
  if (e.alarms == 0) {
    store_->delete_incident(d->id);
    if (known != unfolded_.end()) unfolded_.erase(known);
    unfolded_removed_.push_back(d->id);
    return;
  }
  d->alarm_count = e.alarms;
  d->first_seen = e.first;
  d->last_seen = e.last;
  d->max_severity = e.max_severity;
  d->max_ratio = e.max_ratio;
  d->action_count = store_->count_actions(d->id);  // the alarm's actions moved with it
  if (is_pattern_key(d->principal_key) && !store_->has_principal_alarm(d->id, s.principal_key))
    d->principal["principals"] = std::max<int64_t>(0, d->principal.value("principals", 1) - 1);
  store_->update_incident(*d);
  if (known != unfolded_.end())
    *known = *d;
  else
    unfolded_.push_back(*d);
}

IncidentChange IncidentEngine::with_unfolded(IncidentChange c) {
  c.patterns_updated = std::move(unfolded_);
  c.patterns_removed = std::move(unfolded_removed_);
  unfolded_.clear();
  unfolded_removed_.clear();
  return c;
}

std::optional<Incident> IncidentEngine::incident_for(const std::string& key, int64_t at,
                                                     bool open_one, bool& opened) {
  opened = false;
  auto inc = store_->latest_open(key);
  if (inc && at - inc->last_seen > cfg_.window_ms * kNanosPerMilli)
    inc.reset();  // a quiet gap: new incident
  if (inc || !open_one) return inc;
  Incident n;
  n.principal_key = key;
  n.first_seen = n.last_seen = at;
  n.state_at = clock_.now_unix_nanos();
  n.id = store_->insert_incident(n);
  opened = true;
  if (is_pattern_key(key)) {
    n.principal = {{"principals", 0}};
    return n;
  }
  // The principal's earlier alarms, collapsed into pattern rows until now, join it.
  for (const auto& p :
       store_->pattern_alarms_of(key, at - cfg_.window_ms * kNanosPerMilli, kMaxMovedAlarms)) {
    const int64_t group = fold(n, p.alarm, p.at);
    n.principal = to_json(p.alarm.principal());
    store_->move_alarm(p.id, n.id, group);
    unfold(p);
    alarms_moved_.Increment();
  }
  n.action_count = store_->count_actions(n.id);
  return n;
}

std::optional<IncidentChange> IncidentEngine::on_alarm(const v1::Alarm& in) {
  std::lock_guard lock(mu_);
  return guarded("alarm", [&]() -> std::optional<IncidentChange> {
    unfolded_.clear();
    unfolded_removed_.clear();
    v1::Alarm a = in;
    if (a.id().empty())
      a.set_id(common::random_id());  // stored once; no redelivery dedupe possible
    store_->begin();
    if (store_->has_alarm(a.id())) {
      store_->rollback();
      alarms_duplicate_.Increment();
      return std::nullopt;
    }
    const int64_t at = a.raised_unix_nanos() > 0      ? a.raised_unix_nanos()
                       : a.timestamp_unix_nanos() > 0 ? a.timestamp_unix_nanos()
                                                      : clock_.now_unix_nanos();
    const std::string key = principal_key(a.principal(), cfg_);
    const int sev = std::clamp(static_cast<int>(a.severity()), 0, 4);
    bool opened = false;
    auto inc = incident_for(key, at, false, opened);
    if (!inc) {
      // Evidence enough for an incident of its own? Else a pattern row collapses it.
      const bool evidence = sev >= cfg_.min_severity ||
                            (key != kNoPrincipal && cfg_.min_alarms > 0 &&
                             store_->pattern_alarms_of(key, at - cfg_.window_ms * kNanosPerMilli,
                                                       static_cast<size_t>(cfg_.min_alarms))
                                         .size() +
                                     1 >=
                                 static_cast<size_t>(cfg_.min_alarms)) ||
                            store_->has_action_of_kind(a.id(), cfg_.opening_actions);
      if (evidence) inc = incident_for(key, at, true, opened);
    }
    if (!inc) return to_pattern(a, key, at);
    const int old_severity = opened ? 0 : inc->max_severity;
    inc->principal = to_json(a.principal());
    const int64_t group_id = fold(*inc, a, at);
    store_->insert_alarm(a, inc->id, group_id, at, key);
    if (store_->link_actions(a.id(), inc->id) > 0 || opened)
      inc->action_count = store_->count_actions(inc->id);
    store_->update_incident(*inc);
    store_->commit();
    alarms_grouped_.Increment();
    IncidentChange c;
    c.kind = opened                          ? IncidentChange::kOpened
             : sev > old_severity && !opened ? IncidentChange::kEscalated
                                             : IncidentChange::kUpdated;
    if (c.kind != IncidentChange::kUpdated)
      incidents_family_.Add({{"event", change_name(c.kind)}}).Increment();
    c.incident = std::move(*inc);
    return with_unfolded(std::move(c));
  });
}

std::optional<IncidentChange> IncidentEngine::to_pattern(const v1::Alarm& a, const std::string& key,
                                                         int64_t at) {
  bool opened = false;
  auto pat = incident_for(pattern_key(a), at, true, opened);
  if (!store_->has_principal_alarm(pat->id, key))
    pat->principal["principals"] = pat->principal.value("principals", int64_t{0}) + 1;
  const int64_t group_id = fold(*pat, a, at);
  store_->insert_alarm(a, pat->id, group_id, at, key);
  store_->link_actions(a.id(), pat->id);
  pat->action_count = store_->count_actions(pat->id);
  store_->update_incident(*pat);
  store_->commit();
  alarms_grouped_.Increment();
  alarms_in_patterns_.Increment();
  // A pattern row never notifies (no "opened"/"escalated"): the page updates it in place.
  return IncidentChange{IncidentChange::kUpdated, std::move(*pat)};
}

std::optional<IncidentChange> IncidentEngine::promote_after_action(const StoredAlarm& s) {
  if (s.principal_key.empty() || s.principal_key == kNoPrincipal) return std::nullopt;
  bool opened = false;
  auto inc = incident_for(s.principal_key, s.at, true, opened);
  if (!opened) {  // the principal's incident exists (opened after this alarm): the alarm joins it
    const int64_t group = fold(*inc, s.alarm, s.at);
    store_->move_alarm(s.id, inc->id, group);
    unfold(s);
    alarms_moved_.Increment();
  } else {
    incidents_family_.Add({{"event", "opened"}}).Increment();
  }
  inc->action_count = store_->count_actions(inc->id);
  store_->update_incident(*inc);
  return with_unfolded(
      IncidentChange{opened ? IncidentChange::kOpened : IncidentChange::kUpdated, std::move(*inc)});
}

std::optional<IncidentChange> IncidentEngine::on_action(const v1::ActionEvent& e) {
  if (e.action_id().empty()) return std::nullopt;
  std::lock_guard lock(mu_);
  return guarded("action", [&]() -> std::optional<IncidentChange> {
    unfolded_.clear();
    unfolded_removed_.clear();
    store_->begin();
    ActionRecord r = store_->action(e.action_id()).value_or(ActionRecord{});
    const std::string ek = std::to_string(e.type()) + '\x1f' + e.effector() + '\x1f' +
                           std::to_string(e.at_unix_nanos());
    if (std::find(r.event_keys.begin(), r.event_keys.end(), ek) != r.event_keys.end()) {
      store_->rollback();
      return std::nullopt;  // redelivered
    }
    r.event_keys.push_back(ek);
    if (r.event_keys.size() > kMaxEventKeys) r.event_keys.erase(r.event_keys.begin());
    merge_event(r, e);
    r.last_unix_nanos = std::max(r.last_unix_nanos, e.at_unix_nanos());
    std::optional<int64_t> incident_id;
    if (!r.alarm_id.empty()) incident_id = store_->incident_of_alarm(r.alarm_id);
    store_->put_action(r, incident_id.value_or(0));
    std::optional<IncidentChange> change;
    const bool opening = e.type() != v1::ACTION_EVENT_REJECTED &&
                         std::find(cfg_.opening_actions.begin(), cfg_.opening_actions.end(),
                                   r.kind) != cfg_.opening_actions.end();
    std::optional<StoredAlarm> in_pattern;
    if (incident_id && opening)
      if (auto inc = store_->incident(*incident_id); inc && is_pattern_key(inc->principal_key))
        in_pattern = store_->stored_alarm(r.alarm_id);
    if (in_pattern) {
      // An action on a pattern row's alarm: its principal has an incident now.
      change = promote_after_action(*in_pattern);
    } else if (incident_id) {
      if (auto inc = store_->incident(*incident_id)) {
        inc->action_count = store_->count_actions(inc->id);
        store_->update_incident(*inc);
        change = IncidentChange{IncidentChange::kUpdated, std::move(*inc)};
      }
    }
    store_->commit();
    return change;
  });
}

void IncidentEngine::begin_batch() {
  std::lock_guard lock(mu_);
  if (in_batch_) return;
  try {
    store_->begin_outer();
    in_batch_ = true;
  } catch (const std::exception& e) {
    failed("batch", e);  // the units then commit one by one
  }
}

void IncidentEngine::end_batch() {
  std::lock_guard lock(mu_);
  if (!in_batch_) return;
  in_batch_ = false;
  try {
    store_->commit_outer();
  } catch (const std::exception& e) {
    store_->rollback_outer();
    failed("batch", e);
  }
}

void IncidentEngine::tick() {
  std::lock_guard lock(mu_);
  if (in_batch_) return;
  const int64_t now = clock_.now_unix_nanos();
  if (last_prune_ != 0 && now - last_prune_ < cfg_.prune_interval_ms * kNanosPerMilli) return;
  last_prune_ = now;
  guarded("prune", [&] {
    const int64_t n = store_->prune(now, cfg_.retention);
    if (n > 0) {
      pruned_.Increment(static_cast<double>(n));
      log()->info(
          "retention deleted {} incident(s) (older than {} ms or over "
          "{} bytes)",
          n, cfg_.retention.max_age_ms, cfg_.retention.max_bytes);
    }
    db_bytes_.Set(static_cast<double>(store_->size_bytes()));
    return 0;
  });
}

std::optional<v1::Alarm> IncidentEngine::find_alarm(const std::string& alarm_id) {
  std::lock_guard lock(mu_);
  return guarded("query", [&] { return store_->alarm(alarm_id); });
}

void IncidentEngine::record_feedback(const std::string& alarm_id, const json& feedback) {
  std::lock_guard lock(mu_);
  guarded("feedback", [&] {
    store_->set_alarm_feedback(alarm_id, feedback);
    if (auto id = store_->incident_of_alarm(alarm_id))
      store_->add_operator_action(clock_.now_unix_nanos(), feedback.value("analyst", std::string()),
                                  "feedback:" + feedback.value("verdict", std::string()), *id,
                                  "alarm " + alarm_id);
    return 0;
  });
}

std::vector<Incident> IncidentEngine::list_rows(const IncidentQuery& q) {
  std::lock_guard lock(mu_);
  return guarded("query", [&] { return store_->list(q).first; });
}

json IncidentEngine::list(const IncidentQuery& q) {
  std::lock_guard lock(mu_);
  return guarded("query", [&] {
    auto [rows, total] = store_->list(q);
    json items = json::array();
    for (const auto& i : rows) items.push_back(incident_json(i));
    return json{{"incidents", std::move(items)},
                {"total", total},
                {"limit", q.limit},
                {"offset", q.offset}};
  });
}

std::optional<json> IncidentEngine::detail(int64_t id, size_t alarm_limit) {
  std::lock_guard lock(mu_);
  return guarded("query", [&]() -> std::optional<json> {
    auto inc = store_->incident(id);
    if (!inc) return std::nullopt;
    json j = incident_json(*inc);
    j["groups"] = store_->groups_json(id, 500);
    j["recent_alarms"] = store_->alarms_json(id, alarm_limit);
    j["action_list"] = store_->actions_json(id);
    j["history"] = store_->operator_actions_json(id, 200);
    return j;
  });
}

IncidentEngine::StateResult IncidentEngine::set_state(int64_t id, const std::string& state,
                                                      const std::string& who,
                                                      const std::string& comment) {
  if (!valid_state(state))
    return {StateResult::kInvalid, "state must be open, acknowledged, resolved or false_positive",
            std::nullopt};
  std::lock_guard lock(mu_);
  try {
    store_->begin();
    auto inc = store_->incident(id);
    if (!inc) {
      store_->rollback();
      return {StateResult::kNotFound, "no incident " + std::to_string(id), std::nullopt};
    }
    const std::string& from = inc->state;
    const bool allowed = (from == "open" && state != "open") ||
                         (from == "acknowledged" && closed(state)) ||
                         (closed(from) && state == "open");
    if (!allowed) {
      store_->rollback();
      return {StateResult::kInvalid, "cannot go from " + from + " to " + state, std::nullopt};
    }
    const int64_t now = clock_.now_unix_nanos();
    const std::string what = "state:" + from + "->" + state;
    inc->state = state;
    inc->state_by = who;
    inc->state_at = now;
    inc->state_comment = comment;
    store_->update_incident(*inc);
    store_->add_operator_action(now, who, what, id, comment);
    store_->commit();
    incidents_family_.Add({{"event", "state_changed"}}).Increment();
    return {StateResult::kOk, "", IncidentChange{IncidentChange::kStateChanged, std::move(*inc)}};
  } catch (const std::exception& e) {
    store_->rollback();
    failed("state", e);
    return {StateResult::kFailed, std::string("the dashboard database failed: ") + e.what(),
            std::nullopt};
  }
}

void IncidentEngine::audit(int64_t incident_id, const std::string& who, const std::string& what,
                           const std::string& detail) {
  std::lock_guard lock(mu_);
  guarded("state", [&] {
    store_->add_operator_action(clock_.now_unix_nanos(), who, what, incident_id, detail);
    return 0;
  });
}

json IncidentEngine::counts() {
  std::lock_guard lock(mu_);
  return guarded("query", [&] {
    json j = {{"open", 0}, {"acknowledged", 0}, {"resolved", 0}, {"false_positive", 0}};
    int64_t total = 0;
    for (const auto& [s, n] : store_->count_by_state()) {
      j[s] = n;
      total += n;
    }
    j["total"] = total;
    const auto [patterns, pattern_alarms] = store_->count_open_patterns();
    j["patterns"] = patterns;
    j["pattern_alarms"] = pattern_alarms;
    return j;
  });
}

uint64_t IncidentEngine::store_errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

}  // namespace immunizer::dashboard
