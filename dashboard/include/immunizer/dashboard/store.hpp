// The dashboard's durable history: incidents, their collapsed alarm groups,
// every alarm (for feedback and deduplication), actions and operator actions in
// one SQLite database (WAL mode) under dashboard.data_dir, with retention by
// age and by size. Not thread-safe: one owner (IncidentEngine) serialises every
// call. Throws StoreError.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "immunizer/v1/records.pb.h"

namespace immunizer::dashboard {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Severity ranks: 0 unspecified, 1 low, 2 medium, 3 high, 4 critical.
int severity_rank(const std::string& name);  // -1 for an unknown name
const char* severity_of_rank(int rank);

// One incident as stored. calls/models count alarms per value (at most
// kMaxListed kept); features sum the positive contributions of non-zero
// features over the incident.
struct Incident {
  static constexpr size_t kMaxListed = 32;
  int64_t id = 0;
  std::string principal_key;                            // "session:abc", "ip:10.0.0.1",
                                                        // "prefix:10.0.0.0/24", "user:bob"
  nlohmann::json principal = nlohmann::json::object();  // the newest alarm's {user, session, ip}
  std::string state = "open";             // open | acknowledged | resolved | false_positive
  int64_t first_seen = 0, last_seen = 0;  // alarm raise times (unix ns)
  int64_t alarm_count = 0, group_count = 0, action_count = 0;
  int64_t by_severity[5] = {0, 0, 0, 0, 0};  // by rank
  int max_severity = 0;
  double max_ratio = 0;  // highest combined_score / threshold
  std::map<std::string, int64_t> calls, models;
  std::map<std::string, double> features;
  std::string state_by, state_comment;
  int64_t state_at = 0;
};

// A filtered, paginated list request; empty fields do not filter.
struct IncidentQuery {
  // Which rows: incidents (a principal's alarms), patterns ("pattern:..." rows collapsing
  // low-evidence alarms of many principals), or both.
  enum class Kind { kIncidents, kPatterns, kAll };
  Kind kind = Kind::kIncidents;
  std::vector<std::string> states;
  int min_severity = 0;
  std::string principal;  // substring of the principal key or of any principal field
  std::string call;       // substring of any call of the incident
  int64_t from = 0,
          to = 0;  // incidents overlapping [from, to] (unix ns; 0 = open-ended)
  int64_t limit = 50, offset = 0;
};

// One action of an incident, merged from its events.
struct ActionRecord {
  std::string action_id, alarm_id, plan_id, kind, target_field, target_value, call, status, reason;
  std::string extends;  // the primary action this one extended (execute merged
                        // them), or ""
  int64_t ttl_ms = 0, dispatched_unix_nanos = 0, applied_unix_nanos = 0;
  int64_t call_timestamp_unix_nanos = 0, last_unix_nanos = 0;
  int64_t applied_acks = 0, rejected_acks = 0;
  std::vector<std::string> event_keys;  // events already merged (redelivery); the newest 64
};

// An alarm as stored, with where it is.
struct StoredAlarm {
  std::string id;
  int64_t incident_id = 0, group_id = 0, at = 0;
  std::string principal_key;  // the principal's incident key ("" before schema 2)
  v1::Alarm alarm;
};

struct RetentionConfig {
  int64_t max_age_ms = 30LL * 24 * 3600 * 1000;
  int64_t max_bytes = 1LL << 30;
};

class IncidentStore {
 public:
  // `path` is a file (created with mode 0600) or ":memory:". Creates the
  // schema, turns on WAL.
  explicit IncidentStore(const std::string& path);
  ~IncidentStore();
  IncidentStore(const IncidentStore&) = delete;
  IncidentStore& operator=(const IncidentStore&) = delete;

  // A unit of work: a savepoint, so it nests inside an outer batch transaction.
  void begin();
  void commit();
  void rollback() noexcept;
  // An outer transaction around many units (one commit per consumed batch).
  void begin_outer();
  void commit_outer();
  void rollback_outer() noexcept;

  bool has_alarm(const std::string& alarm_id);
  // The newest incident of `principal_key` still open or acknowledged, if any.
  std::optional<Incident> latest_open(const std::string& principal_key);
  int64_t insert_incident(const Incident& i);  // returns the new id
  void update_incident(const Incident& i);
  std::optional<Incident> incident(int64_t id);
  // Adds one alarm to its collapsed group (incident, model, top feature);
  // returns the group id and whether the group is new.
  std::pair<int64_t, bool> add_to_group(int64_t incident_id, const v1::Alarm& a,
                                        const std::string& top_feature, int64_t at, double ratio);
  // `principal_key`: the principal's incident key (where a pattern row's alarm goes when its
  // principal gets an incident).
  void insert_alarm(const v1::Alarm& a, int64_t incident_id, int64_t group_id, int64_t at,
                    const std::string& principal_key);
  std::optional<StoredAlarm> stored_alarm(const std::string& alarm_id);
  // The alarms of `principal_key` raised at or after `since` that sit in open or acknowledged
  // pattern rows, oldest first, at most `limit`.
  std::vector<StoredAlarm> pattern_alarms_of(const std::string& principal_key, int64_t since,
                                             size_t limit);
  // Moves an alarm (and the actions taken on it) to another incident's group.
  void move_alarm(const std::string& alarm_id, int64_t incident_id, int64_t group_id);
  // One alarm less in a group; true when that was its last (the group is deleted).
  bool remove_from_group(int64_t group_id);
  // What an incident's stored alarms span (after alarms moved out of it).
  struct Extent {
    int64_t alarms = 0, first = 0, last = 0;
    int max_severity = 0;
    double max_ratio = 0;
  };
  Extent extent(int64_t incident_id);
  void delete_incident(int64_t incident_id);  // with its groups (its alarms moved out first)
  bool has_principal_alarm(int64_t incident_id, const std::string& principal_key);
  // Whether an action of one of these kinds ("block_principal", ...) not rejected by every
  // effector was taken on the alarm.
  bool has_action_of_kind(const std::string& alarm_id, const std::vector<std::string>& kinds);
  std::optional<v1::Alarm> alarm(const std::string& alarm_id);
  std::optional<int64_t> incident_of_alarm(const std::string& alarm_id);
  void set_alarm_feedback(const std::string& alarm_id, const nlohmann::json& feedback);

  std::optional<ActionRecord> action(const std::string& action_id);
  // Inserts or replaces; incident_id 0 = not (yet) linked to an incident.
  void put_action(const ActionRecord& a, int64_t incident_id);
  // Actions whose alarm arrived after them; returns how many were linked.
  int64_t link_actions(const std::string& alarm_id, int64_t incident_id);
  int64_t count_actions(int64_t incident_id);

  void add_operator_action(int64_t at, const std::string& who, const std::string& what,
                           int64_t incident_id, const std::string& detail);

  // Newest last_seen first, and the total matching the filters (for
  // pagination).
  std::pair<std::vector<Incident>, int64_t> list(const IncidentQuery& q);
  nlohmann::json groups_json(int64_t incident_id, size_t limit);
  nlohmann::json alarms_json(int64_t incident_id,
                             size_t limit);  // brief rows, newest first
  nlohmann::json actions_json(int64_t incident_id);
  nlohmann::json operator_actions_json(int64_t incident_id, size_t limit);
  // Incidents (not pattern rows) by state.
  std::map<std::string, int64_t> count_by_state();
  // Open or acknowledged pattern rows and the alarms in them.
  std::pair<int64_t, int64_t> count_open_patterns();

  // Deletes incidents (with their groups, alarms, actions) whose last alarm is
  // older than the age limit, then the oldest ones until the database is under
  // the size limit. Returns the number of incidents deleted.
  int64_t prune(int64_t now_unix_nanos, const RetentionConfig& r);
  // Bytes in use (pages not on the free list).
  int64_t size_bytes();

 private:
  class Stmt;
  void exec(const char* sql);
  void migrate();  // schema 1 -> 2
  // The rows of `sql` (parameters: the incident, then the row limit) as a JSON array of
  // row(stmt); a row for which it returns a discarded value is left out (store_views.cpp).
  template <typename Row>
  nlohmann::json incident_rows(const char* sql, int64_t incident_id, size_t limit, Row row);
  sqlite3* db_ = nullptr;
};

}  // namespace immunizer::dashboard
