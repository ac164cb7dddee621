// The incident store's read-only views (the JSON of an incident's groups, alarms, actions and
// operator actions; counts and size) and its retention (prune). See store.hpp.
#include <algorithm>

#include "immunizer/dashboard/json.hpp"
#include "immunizer/dashboard/store.hpp"
#include "store_stmt.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

template <typename Row>
json IncidentStore::incident_rows(const char* sql, int64_t incident_id, size_t limit, Row row) {
  Stmt s(db_, sql);
  s.bind(1, incident_id).bind(2, static_cast<int64_t>(limit));
  json out = json::array();
  while (s.step()) {
    json j = row(s);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

json IncidentStore::groups_json(int64_t incident_id, size_t limit) {
  return incident_rows(
      "SELECT id AS group_id, model_key, top_feature, call, count, "
      "first_seen AS first_seen_unix_nanos, last_seen AS last_seen_unix_nanos, max_severity, "
      "max_ratio, last_alarm_id FROM alarm_groups WHERE incident_id = ? "
      "ORDER BY count DESC, last_seen DESC LIMIT ?",
      incident_id, limit, [](const Stmt& s) {
        json j = s.row_json();
        j["max_severity"] = severity_of_rank(static_cast<int>(s.i64(7)));
        return j;
      });
}

json IncidentStore::alarms_json(int64_t incident_id, size_t limit) {
  return incident_rows(
      "SELECT id, group_id, at, severity, ratio, proto, feedback FROM alarms "
      "WHERE incident_id = ? ORDER BY at DESC LIMIT ?",
      incident_id, limit, [](const Stmt& s) {
        v1::Alarm a;
        a.ParseFromString(s.blob(5));
        json j = to_json(a);
        j.erase("values");  // the feature vector is for feedback, not for people
        j["group_id"] = s.i64(1);
        j["ratio"] = s.f64(4);
        j["feedback"] = s.is_null(6) ? json(nullptr) : json::parse(s.text(6), nullptr, false);
        return j;
      });
}

json IncidentStore::actions_json(int64_t incident_id) {
  return incident_rows(
      "SELECT record FROM actions WHERE incident_id = ? ORDER BY last_at DESC LIMIT ?", incident_id,
      500, [](const Stmt& s) {
        json j = json::parse(s.text(0), nullptr, false);
        if (!j.is_object()) return json(json::value_t::discarded);
        const auto a = action_from_json(j);
        j.erase("event_keys");
        j["latency_ms"] =
            (a.applied_unix_nanos > 0 && a.call_timestamp_unix_nanos > 0 &&
             a.applied_unix_nanos >= a.call_timestamp_unix_nanos)
                ? json(static_cast<double>(a.applied_unix_nanos - a.call_timestamp_unix_nanos) /
                       1e6)
                : json(nullptr);
        return j;
      });
}

json IncidentStore::operator_actions_json(int64_t incident_id, size_t limit) {
  return incident_rows(
      "SELECT at AS at_unix_nanos, who, what, detail FROM operator_actions "
      "WHERE incident_id = ? ORDER BY at DESC, id DESC LIMIT ?",
      incident_id, limit, [](const Stmt& s) { return s.row_json(); });
}

std::map<std::string, int64_t> IncidentStore::count_by_state() {
  Stmt s(db_,
         "SELECT state, count(*) FROM incidents WHERE principal_key NOT LIKE 'pattern:%' "
         "GROUP BY state");
  std::map<std::string, int64_t> out;
  while (s.step()) out[s.text(0)] = s.i64(1);
  return out;
}

std::pair<int64_t, int64_t> IncidentStore::count_open_patterns() {
  Stmt s(db_,
         "SELECT count(*), coalesce(sum(alarm_count), 0) FROM incidents WHERE principal_key LIKE "
         "'pattern:%' AND state IN ('open', 'acknowledged')");
  s.step();
  return {s.i64(0), s.i64(1)};
}

int64_t IncidentStore::size_bytes() {
  Stmt a(db_, "PRAGMA page_count");
  a.step();
  const int64_t pages = a.i64(0);
  Stmt f(db_, "PRAGMA freelist_count");
  f.step();
  const int64_t free_pages = f.i64(0);
  Stmt p(db_, "PRAGMA page_size");
  p.step();
  return (pages - free_pages) * p.i64(0);
}

int64_t IncidentStore::prune(int64_t now, const RetentionConfig& r) {
  auto delete_where = [this](const std::string& cond, int64_t arg) {
    begin();
    try {
      const std::string sub = "SELECT id FROM incidents WHERE " + cond;
      for (const char* table : {"alarm_groups", "alarms", "actions", "operator_actions"}) {
        Stmt s(
            db_,
            (std::string("DELETE FROM ") + table + " WHERE incident_id IN (" + sub + ")").c_str());
        s.bind(1, arg);
        s.run();
      }
      Stmt s(db_, ("DELETE FROM incidents WHERE " + cond).c_str());
      s.bind(1, arg);
      s.run();
      const int64_t n = sqlite3_changes(db_);
      commit();
      return n;
    } catch (...) {
      rollback();
      throw;
    }
  };
  const int64_t cutoff = now - r.max_age_ms * 1'000'000;
  int64_t deleted = delete_where("last_seen < ?", cutoff);
  {
    // Unlinked actions (manual blocks, events whose alarm never came) and old
    // operator actions.
    Stmt s(db_, "DELETE FROM actions WHERE incident_id = 0 AND last_at < ?");
    s.bind(1, cutoff);
    s.run();
    Stmt o(db_, "DELETE FROM operator_actions WHERE at < ?");
    o.bind(1, cutoff);
    o.run();
  }
  // Over the size limit: drop the oldest tenth of the incidents at a time
  // (bounded rounds).
  for (int round = 0; round < 20 && size_bytes() > r.max_bytes; ++round) {
    Stmt c(db_, "SELECT count(*) FROM incidents");
    c.step();
    const int64_t n = c.i64(0);
    if (n == 0) break;
    Stmt t(db_,
           "SELECT last_seen FROM incidents ORDER BY last_seen ASC LIMIT "
           "1 OFFSET ?");
    t.bind(1, std::max<int64_t>(0, n / 10 - 1));
    if (!t.step()) break;
    deleted += delete_where("last_seen <= ?", t.i64(0));
  }
  exec("PRAGMA incremental_vacuum");
  return deleted;
}

}  // namespace immunizer::dashboard
