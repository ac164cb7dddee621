// Short lowercase names of wire enums, for metric labels, logs and JSON ("high", not
// "SEVERITY_HIGH"). Stable: dashboards and alert rules match on them. Pure, thread-safe.
//
// Action kinds have one vocabulary, the ActionKind enum, and two spellings of it, both
// defined here only: the name, name_of() ("block_principal": the proto value without its
// ACTION_ prefix; JSON, the ops CLI, effector capabilities) and the verb, verb_of() ("block":
// metric labels, log lines, and the configuration keys plan.response and
// execute.guard.automatic_actions). Named name_of/verb_of, not after their types, so that
// argument-dependent lookup never makes a caller's own action_kind_name() ambiguous.
#pragma once

#include <array>
#include <string_view>

#include "immunizer/common/enum_names.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::v1 {

// In the order of the enum's values.
inline constexpr std::string_view kSeverityLabels[] = {"unspecified", "low", "medium", "high",
                                                       "critical"};
constexpr std::string_view severity_label(Severity s) noexcept {
  return common::enum_name(kSeverityLabels, s, "unspecified");
}

struct ActionKindSpelling {
  ActionKind kind;
  std::string_view name;
  std::string_view verb;
};
inline constexpr std::array<ActionKindSpelling, 7> kActionKinds = {{
    {ACTION_LOG, "log", "log"},
    {ACTION_ABORT_CALL, "abort_call", "abort"},
    {ACTION_BLOCK_PRINCIPAL, "block_principal", "block"},
    {ACTION_THROTTLE_PRINCIPAL, "throttle_principal", "throttle"},
    {ACTION_DISABLE_CALL, "disable_call", "disable"},
    {ACTION_ESCALATE, "escalate", "escalate"},
    {ACTION_WATCH_PRINCIPAL, "watch_principal", "watch"},
}};

// "block_principal", ...; "unspecified" for anything else.
constexpr std::string_view name_of(ActionKind k) noexcept {
  for (const auto& s : kActionKinds)
    if (s.kind == k) return s.name;
  return "unspecified";
}
// "block", "abort", ...; "unknown" for anything else.
constexpr std::string_view verb_of(ActionKind k) noexcept {
  for (const auto& s : kActionKinds)
    if (s.kind == k) return s.verb;
  return "unknown";
}
// ACTION_KIND_UNSPECIFIED when `name` is not one.
constexpr ActionKind action_kind_from_name(std::string_view name) noexcept {
  for (const auto& s : kActionKinds)
    if (s.name == name) return s.kind;
  return ACTION_KIND_UNSPECIFIED;
}
constexpr ActionKind action_kind_from_verb(std::string_view verb) noexcept {
  for (const auto& s : kActionKinds)
    if (s.verb == verb) return s.kind;
  return ACTION_KIND_UNSPECIFIED;
}

// "user", "session", "ip", "prefix" (the PrincipalLevel names); "" for unspecified.
inline constexpr std::string_view kPrincipalFieldNames[] = {"", "user", "session", "ip", "prefix"};
constexpr std::string_view name_of(PrincipalField f) noexcept {
  return common::enum_name(kPrincipalFieldNames, f, "");
}
constexpr PrincipalField principal_field_from_name(std::string_view name) noexcept {
  if (name.empty()) return PRINCIPAL_FIELD_UNSPECIFIED;
  return common::enum_value<PrincipalField>(kPrincipalFieldNames, name)
      .value_or(PRINCIPAL_FIELD_UNSPECIFIED);
}

}  // namespace immunizer::v1
