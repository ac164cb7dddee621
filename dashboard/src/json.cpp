#include "immunizer/dashboard/json.hpp"

#include "immunizer/common/enum_names.hpp"
#include "immunizer/v1/names.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

std::string severity_name(v1::Severity s) { return std::string(v1::severity_label(s)); }

std::string action_kind_name(v1::ActionKind k) { return std::string(v1::name_of(k)); }

namespace {
// In the order of ActionEventType's values.
constexpr std::string_view kActionEventNames[] = {"unspecified", "dispatched", "applied",
                                                  "rejected",    "expired",    "revoked"};
}  // namespace

std::string action_event_name(v1::ActionEventType t) {
  return std::string(common::enum_name(kActionEventNames, t, "unspecified"));
}

std::string principal_field_name(v1::PrincipalField f) { return std::string(v1::name_of(f)); }

v1::PrincipalField principal_field_from(const std::string& s) {
  const auto f = v1::principal_field_from_name(s);
  // Operators block a session, an address or a user here; networks only through the API of
  // execute (a prefix value must be a canonical CIDR, which execute checks).
  return f == v1::PRINCIPAL_FIELD_IP_PREFIX ? v1::PRINCIPAL_FIELD_UNSPECIFIED : f;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json to_json(const v1::RecordId& id) {
  return {{"app", id.app()}, {"instance", id.instance()}, {"seq", id.seq()}};
}

json to_json(const v1::Principal& p) {
  return {{"user", p.user()}, {"session", p.session()}, {"ip", p.ip()}};
}

json to_json(const v1::Action& a) {
  return {{"id", a.id()},
          {"kind", action_kind_name(a.kind())},
          {"target_field", principal_field_name(a.target_field())},
          {"target_value", a.target_value()},
          {"call", a.call()},
          {"ttl_millis", a.ttl_millis()},
          {"rate_per_second", a.rate_per_second()},
          {"burst", a.burst()}};
}

json to_json(const v1::Alarm& a) {
  json scores = json::array();
  for (const auto& s : a.scores())
    scores.push_back(
        {{"detector", s.detector()}, {"raw", s.raw()}, {"tail_probability", s.tail_probability()}});
  json features = json::array();
  for (const auto& f : a.top_features())
    features.push_back(
        {{"feature", f.feature()}, {"contribution", f.contribution()}, {"value", f.value()}});
  json labels = json::object();
  for (const auto& [k, v] : a.labels()) labels[k] = v;
  return {{"id", a.id()},
          {"record_id", to_json(a.record_id())},
          {"model_key", a.model_key()},
          {"principal", to_json(a.principal())},
          {"call", a.call()},
          {"scores", std::move(scores)},
          {"combined_score", a.combined_score()},
          {"threshold", a.threshold()},
          {"severity", severity_name(a.severity())},
          {"top_features", std::move(features)},
          {"timestamp_unix_nanos", a.timestamp_unix_nanos()},
          {"raised_unix_nanos", a.raised_unix_nanos()},
          {"labels", std::move(labels)}};
}

json to_json(const v1::ActionEvent& e) {
  json j = {{"action_id", e.action_id()},
            {"plan_id", e.plan_id()},
            {"alarm_id", e.alarm_id()},
            {"type", action_event_name(e.type())},
            {"action", to_json(e.action())},
            {"effector", e.effector()},
            {"reason", e.reason()},
            {"at_unix_nanos", e.at_unix_nanos()},
            {"call_timestamp_unix_nanos", e.call_timestamp_unix_nanos()},
            {"latency_ms", nullptr}};
  if (e.type() == v1::ACTION_EVENT_APPLIED && e.call_timestamp_unix_nanos() > 0 &&
      e.at_unix_nanos() >= e.call_timestamp_unix_nanos())
    j["latency_ms"] = static_cast<double>(e.at_unix_nanos() - e.call_timestamp_unix_nanos()) / 1e6;
  return j;
}

}  // namespace immunizer::dashboard
