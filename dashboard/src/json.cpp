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

namespace {
// Every singular string, bytes, 64-bit integer and double field of `m` under its proto name
// (unset ones at their defaults); its enums, messages and repeated fields are the caller's.
json plain_fields(const google::protobuf::Message& m) {
  using F = google::protobuf::FieldDescriptor;
  json j = json::object();
  const auto* r = m.GetReflection();
  for (int i = 0; i < m.GetDescriptor()->field_count(); ++i) {
    const F* f = m.GetDescriptor()->field(i);
    if (f->is_repeated()) continue;
    const F::CppType t = f->cpp_type();
    if (t == F::CPPTYPE_STRING) j[f->name()] = r->GetString(m, f);
    if (t == F::CPPTYPE_INT64) j[f->name()] = r->GetInt64(m, f);
    if (t == F::CPPTYPE_UINT64) j[f->name()] = r->GetUInt64(m, f);
    if (t == F::CPPTYPE_DOUBLE) j[f->name()] = r->GetDouble(m, f);
  }
  return j;
}
}  // namespace

json to_json(const v1::RecordId& id) { return plain_fields(id); }

json to_json(const v1::Principal& p) { return plain_fields(p); }

json to_json(const v1::Action& a) {
  json j = plain_fields(a);
  j["kind"] = action_kind_name(a.kind());
  j["target_field"] = principal_field_name(a.target_field());
  return j;
}

json to_json(const v1::Alarm& a) {
  json j = plain_fields(a);
  j["record_id"] = to_json(a.record_id());
  j["principal"] = to_json(a.principal());
  j["severity"] = severity_name(a.severity());
  json& scores = j["scores"] = json::array();
  for (const auto& s : a.scores()) scores.push_back(plain_fields(s));
  json& features = j["top_features"] = json::array();
  for (const auto& f : a.top_features()) features.push_back(plain_fields(f));
  json& labels = j["labels"] = json::object();
  for (const auto& [k, v] : a.labels()) labels[k] = v;
  return j;
}

json to_json(const v1::ActionEvent& e) {
  json j = plain_fields(e);
  j["type"] = action_event_name(e.type());
  j["action"] = to_json(e.action());
  j["latency_ms"] = nullptr;
  if (e.type() == v1::ACTION_EVENT_APPLIED && e.call_timestamp_unix_nanos() > 0 &&
      e.at_unix_nanos() >= e.call_timestamp_unix_nanos())
    j["latency_ms"] = static_cast<double>(e.at_unix_nanos() - e.call_timestamp_unix_nanos()) / 1e6;
  return j;
}

}  // namespace immunizer::dashboard
