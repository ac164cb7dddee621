// JSON rendering of the dashboard's records: the field names here are the public API
// (docs/dashboard.md) and stay stable. Pure functions; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "immunizer/v1/control.pb.h"
#include "immunizer/v1/records.pb.h"

namespace immunizer::dashboard {

std::string severity_name(v1::Severity s);               // "low" ... "critical", "unspecified"
std::string action_kind_name(v1::ActionKind k);          // "block_principal", ...
std::string action_event_name(v1::ActionEventType t);    // "dispatched", "applied", ...
std::string principal_field_name(v1::PrincipalField f);  // "user", "session", "ip", ""
// Inverse of principal_field_name; PRINCIPAL_FIELD_UNSPECIFIED for anything else.
v1::PrincipalField principal_field_from(const std::string& s);

// Serialises for the wire. Data-plane strings (calls, principals, payload-derived feature
// names) may hold invalid UTF-8; it is replaced by U+FFFD instead of throwing.
std::string dump(const nlohmann::json& j);

// A message's JSON carries its string, bytes, 64-bit integer and double fields under their proto
// names, and the fields each function names below (an enum by its name, a message as its JSON).
nlohmann::json to_json(const v1::RecordId& id);
nlohmann::json to_json(const v1::Principal& p);
nlohmann::json to_json(const v1::Action& a);  // also kind, target_field
// The alarm as sent on the wire, without dashboard annotations (see DashboardState): also its
// record id, principal, severity, scores, top features and labels (not its values or schema
// version).
nlohmann::json to_json(const v1::Alarm& a);
// One action event: also type, action, and latency_ms (attack call -> this event) for applied
// events, null for others.
nlohmann::json to_json(const v1::ActionEvent& e);

}  // namespace immunizer::dashboard
