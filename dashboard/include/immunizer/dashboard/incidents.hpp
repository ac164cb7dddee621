// Incidents: alarms grouped per principal (session, address, /24 or /64 prefix,
// user) within a sliding window, identical alarms (principal, model, top
// feature) collapsed into one row with a count, actions attached through their
// alarm, and an operator-driven state (open -> acknowledged -> resolved /
// false_positive). A principal gets an incident only on evidence (an alarm of
// at least min_severity, min_alarms alarms within the window, or an enforcing
// or escalating action taken on one of its alarms); until then its alarms are
// collapsed into pattern rows ("pattern:<call>|<top feature>", many principals
// each) that are counted and searchable but not in the incident list, and move
// into the principal's incident when it opens (docs/dashboard.md, "Incidents"). Everything is
// written through to the IncidentStore, so the history survives restarts. Thread-safe (one mutex
// around the store): the consumer thread feeds it, HTTP threads query it and change states. Store
// failures never escape to the consumer: they are logged (throttled) and
// counted.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "immunizer/common/ids.hpp"
#include "immunizer/common/metrics.hpp"
#include "immunizer/dashboard/store.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::dashboard {

struct IncidentConfig {
  // Which principal an incident groups on: session | ip | prefix | user. When
  // the alarm has no such field, the next of session, ip, user that it has is
  // used.
  std::string key = "session";
  // An alarm joins its principal's open incident when it comes at most this
  // long after the incident's last alarm; later, it opens a new incident.
  int64_t window_ms = 600'000;
  // Prefix lengths for key = prefix.
  int ipv4_prefix = 24;
  int ipv6_prefix = 64;
  // Evidence that opens a principal's incident: one alarm of at least this severity rank
  // (1 low .. 4 critical; 5: never by severity alone), or this many alarms within window_ms,
  // or an action of one of these kinds taken on one of its alarms.
  int min_severity = 3;
  int min_alarms = 3;
  std::vector<std::string> opening_actions = {"block_principal", "throttle_principal", "abort_call",
                                              "disable_call", "escalate"};
  RetentionConfig retention;
  // How often retention runs (from tick()).
  int64_t prune_interval_ms = 60'000;
};

// "session:abc", "ip:1.2.3.4", "prefix:1.2.3.0/24", "user:bob"; "none:" without
// any field.
std::string principal_key(const v1::Principal& p, const IncidentConfig& cfg);
// The pattern row of an alarm without an incident: "pattern:<call>|<top feature>".
std::string pattern_key(const v1::Alarm& a);
bool is_pattern_key(const std::string& key);
// The address's network prefix ("10.1.2.0/24", "2001:db8:1:2::/64"); "" if not
// an address.
std::string address_prefix(const std::string& ip, int v4_bits, int v6_bits);
// The incident as the API renders it (summary; details come from
// IncidentEngine::detail).
nlohmann::json incident_json(const Incident& i);

// What a change did, for the SSE feed and the notifier.
struct IncidentChange {
  enum Kind { kUpdated, kOpened, kEscalated, kStateChanged };
  Kind kind = kUpdated;
  Incident incident;
  // Pattern rows the change took alarms out of (they moved into `incident` when it opened or
  // grew): the rows as they are now, and the ids of rows left empty (deleted), so the page
  // updates its list live (they are announced, never notified).
  std::vector<Incident> patterns_updated;
  std::vector<int64_t> patterns_removed;
};
const char* change_name(IncidentChange::Kind k);  // "updated", "opened",
                                                  // "escalated", "state_changed"

class IncidentEngine {
 public:
  IncidentEngine(IncidentConfig cfg, std::unique_ptr<IncidentStore> store,
                 const common::Clock& clock, prometheus::Registry& registry);

  // nullopt for a duplicate alarm (already stored) or when the store failed.
  std::optional<IncidentChange> on_alarm(const v1::Alarm& a);
  // The incident the event's action belongs to, if known (the change is
  // kUpdated).
  std::optional<IncidentChange> on_action(const v1::ActionEvent& e);
  // Runs retention when it is due (not inside a batch).
  void tick();
  // Everything between begin_batch() and end_batch() is one transaction (one commit per
  // consumed Kafka batch instead of one per alarm). Without end_batch nothing is durable.
  void begin_batch();
  void end_batch();

  std::optional<v1::Alarm> find_alarm(const std::string& alarm_id);
  void record_feedback(const std::string& alarm_id, const nlohmann::json& feedback);

  // {"incidents": [...], "total": N, "limit", "offset"}
  nlohmann::json list(const IncidentQuery& q);
  std::vector<Incident> list_rows(const IncidentQuery& q);
  // The incident with its alarm groups, newest alarms, actions and operator
  // history.
  std::optional<nlohmann::json> detail(int64_t id, size_t alarm_limit);

  struct StateResult {
    enum Code { kOk, kNotFound, kInvalid, kFailed };
    Code code = kOk;
    std::string message;
    std::optional<IncidentChange> change;
  };
  // open -> acknowledged | resolved | false_positive; acknowledged -> resolved
  // | false_positive; resolved / false_positive -> open (reopen). Audited as an
  // operator action.
  StateResult set_state(int64_t id, const std::string& state, const std::string& who,
                        const std::string& comment);
  // Records an operator action that is not a state change (e.g. a block from an
  // incident).
  void audit(int64_t incident_id, const std::string& who, const std::string& what,
             const std::string& detail);

  // {"open": n, "acknowledged": n, "resolved": n, "false_positive": n, "total":
  // n} of incidents, and "patterns" / "pattern_alarms": open pattern rows and their alarms.
  nlohmann::json counts();
  uint64_t store_errors() const;

 private:
  template <typename F>
  auto guarded(const char* op, F&& f) -> decltype(f());
  // The principal's open incident within the window of `at`, opened (with the principal's
  // alarms moved out of pattern rows) when `open_one`; nullopt otherwise.
  std::optional<Incident> incident_for(const std::string& key, int64_t at, bool open_one,
                                       bool& opened);
  // Adds a stored alarm to `inc` (aggregates, group); the alarm row is written by the caller.
  int64_t fold(Incident& inc, const v1::Alarm& a, int64_t at);
  // Takes a pattern row's alarm out of it (aggregates, group, distinct principals); the row is
  // remembered in unfolded_ / unfolded_removed_ for the change being made.
  void unfold(const StoredAlarm& s);
  // Hands the pattern rows unfolded since the last call to the change.
  IncidentChange with_unfolded(IncidentChange c);
  // Collapses an alarm without an incident into its pattern row (the unit's commit too).
  std::optional<IncidentChange> to_pattern(const v1::Alarm& a, const std::string& key, int64_t at);
  // Opens the incident of the principal of a pattern row's alarm after an action on it.
  std::optional<IncidentChange> promote_after_action(const StoredAlarm& s);
  void failed(const char* op, const std::exception& e);

  IncidentConfig cfg_;
  std::unique_ptr<IncidentStore> store_;
  const common::Clock& clock_;
  mutable std::mutex mu_;
  std::vector<Incident> unfolded_;         // pattern rows changed by the current change
  std::vector<int64_t> unfolded_removed_;  // and those it deleted
  int64_t last_prune_ = 0;
  bool in_batch_ = false;
  int64_t last_error_log_ = 0;
  uint64_t errors_ = 0;
  prometheus::Family<prometheus::Counter>& incidents_family_;
  prometheus::Counter& alarms_grouped_;
  prometheus::Counter& alarms_duplicate_;
  prometheus::Counter& alarms_collapsed_;
  prometheus::Counter& alarms_in_patterns_;
  prometheus::Counter& alarms_moved_;
  prometheus::Family<prometheus::Counter>& errors_family_;
  prometheus::Counter& pruned_;
  prometheus::Gauge& db_bytes_;
};

}  // namespace immunizer::dashboard
