// Internal to execute/src: constants and helpers the Dispatcher's source files share
// (dispatcher.cpp: construction, events, effector sessions, TTLs; dispatcher_plans.cpp: plan
// intake, guard policy, recall after a restart; dispatcher_enforce.cpp: directives for plan
// actions and manual requests; dispatcher_state.cpp: persisted state and the outboxes).
// Pure functions; no state.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "immunizer/common/logging.hpp"
#include "immunizer/execute/dispatcher.hpp"
#include "immunizer/v1/names.hpp"
#include "immunizer/v1/principal.hpp"

namespace immunizer::execute::internal {

inline constexpr int64_t kNanosPerMilli = 1'000'000;
// How long after its expiry an issued directive is still recognised in a late ack.
inline constexpr int64_t kAckGraceNanos = 120LL * 1'000'000'000;
// Action ids remembered per active entry (each extension adds one).
inline constexpr size_t kMaxAliases = 256;
// Plan ids remembered to drop a plan read again (oldest forgotten first).
inline constexpr size_t kRecentPlans = 100'000;

// Action ids remembered as decided (dispatched or refused), oldest forgotten first.
inline constexpr size_t kRecentDecisions = 200'000;
// Clock slack between a directive's issue time and its DISPATCHED event's (recall()).
inline constexpr int64_t kRecallMarginNanos = 1'000'000'000;

// Whether an event records execute's decision on an action: DISPATCHED, or REJECTED by
// execute itself (not by an effector's ack).
inline bool is_decision(v1::ActionEventType type, const std::string& effector) {
  return type == v1::ACTION_EVENT_DISPATCHED ||
         (type == v1::ACTION_EVENT_REJECTED && effector == "execute");
}

inline std::shared_ptr<spdlog::logger> log() { return common::logger("execute"); }

// "session=abc", "ip=1.2.3.4", "prefix=1.2.3.0/24", "" for call-wide actions; for log lines.
inline std::string target_text(const v1::Action& a) {
  const std::string_view f = v1::name_of(a.target_field());
  std::string s = f.empty() ? "" : std::string(f) + "=" + a.target_value();
  if (!a.call().empty()) s += (s.empty() ? "call '" : " call '") + a.call() + "'";
  return s;
}

inline bool needs_principal(v1::ActionKind k) {
  return k == v1::ACTION_BLOCK_PRINCIPAL || k == v1::ACTION_ABORT_CALL ||
         k == v1::ACTION_THROTTLE_PRINCIPAL || k == v1::ACTION_WATCH_PRINCIPAL;
}
inline bool enforceable(v1::ActionKind k) {
  return needs_principal(k) || k == v1::ACTION_DISABLE_CALL;
}

// Empty when the action can be enforced by an effector, else why not.
inline std::string invalid_reason(const v1::Action& a) {
  if (needs_principal(a.kind())) {
    if (v1::name_of(a.target_field()).empty()) return "no target field";
    if (a.target_value().empty()) return "no target value";
    if (a.target_field() == v1::PRINCIPAL_FIELD_IP_PREFIX && !v1::parse_network(a.target_value()))
      return "target value is not a network (canonical CIDR, e.g. 198.51.100.0/24)";
  }
  if ((a.kind() == v1::ACTION_ABORT_CALL || a.kind() == v1::ACTION_DISABLE_CALL) &&
      a.call().empty())
    return kind_label(a.kind()) + " needs a call";
  if (a.kind() == v1::ACTION_THROTTLE_PRINCIPAL && (a.rate_per_second() < 0 || a.burst() < 0))
    return "negative throttle rate or burst";
  return {};
}

}  // namespace immunizer::execute::internal
