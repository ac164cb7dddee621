#include "immunizer/dashboard/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "immunizer/dashboard/json.hpp"
#include "store_stmt.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

namespace {
constexpr const char* kSeverityNames[5] = {"unspecified", "low", "medium", "high", "critical"};

// Every table in one script; IF NOT EXISTS keeps a restart idempotent.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  principal_key TEXT NOT NULL,
  principal TEXT NOT NULL,
  state TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  alarm_count INTEGER NOT NULL,
  group_count INTEGER NOT NULL,
  action_count INTEGER NOT NULL,
  sev0 INTEGER NOT NULL, sev1 INTEGER NOT NULL, sev2 INTEGER NOT NULL, sev3 INTEGER NOT NULL,
  sev4 INTEGER NOT NULL,
  max_severity INTEGER NOT NULL,
  max_ratio REAL NOT NULL,
  calls TEXT NOT NULL, models TEXT NOT NULL, features TEXT NOT NULL,
  state_by TEXT NOT NULL, state_at INTEGER NOT NULL, state_comment TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS incidents_principal ON incidents(principal_key, last_seen);
CREATE INDEX IF NOT EXISTS incidents_last_seen ON incidents(last_seen);
CREATE INDEX IF NOT EXISTS incidents_state ON incidents(state);
CREATE TABLE IF NOT EXISTS alarm_groups(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  incident_id INTEGER NOT NULL,
  model_key TEXT NOT NULL,
  top_feature TEXT NOT NULL,
  call TEXT NOT NULL,
  count INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  max_severity INTEGER NOT NULL,
  max_ratio REAL NOT NULL,
  last_alarm_id TEXT NOT NULL,
  UNIQUE(incident_id, model_key, top_feature));
CREATE INDEX IF NOT EXISTS alarm_groups_call ON alarm_groups(call);
CREATE TABLE IF NOT EXISTS alarms(
  id TEXT PRIMARY KEY,
  incident_id INTEGER NOT NULL,
  group_id INTEGER NOT NULL,
  at INTEGER NOT NULL,
  severity INTEGER NOT NULL,
  ratio REAL NOT NULL,
  proto BLOB NOT NULL,
  feedback TEXT,
  principal_key TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS alarms_incident ON alarms(incident_id, at);
CREATE TABLE IF NOT EXISTS actions(
  action_id TEXT PRIMARY KEY,
  incident_id INTEGER NOT NULL,
  alarm_id TEXT NOT NULL,
  last_at INTEGER NOT NULL,
  record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS actions_incident ON actions(incident_id);
CREATE INDEX IF NOT EXISTS actions_alarm ON actions(alarm_id);
CREATE TABLE IF NOT EXISTS operator_actions(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  who TEXT NOT NULL,
  what TEXT NOT NULL,
  incident_id INTEGER NOT NULL,
  detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS operator_actions_incident ON operator_actions(incident_id, at);
CREATE INDEX IF NOT EXISTS operator_actions_at ON operator_actions(at);
INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '1');
)sql";

json counts_json(const std::map<std::string, int64_t>& m) {
  json j = json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}
template <typename T>
std::map<std::string, T> counts_from(const std::string& text) {
  std::map<std::string, T> m;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return m;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it->is_number()) m[it.key()] = it->get<T>();
  return m;
}

// LIKE pattern matching `s` literally anywhere (escape character '\').
std::string like_pattern(const std::string& s) {
  std::string out = "%";
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out + "%";
}
}  // namespace

// An action record's JSON: its members under their names; a member missing from the JSON
// reads as its default (a record written before it existed).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ActionRecord, action_id, alarm_id, plan_id, kind,
                                                target_field, target_value, call, status, reason,
                                                extends, ttl_ms, dispatched_unix_nanos,
                                                applied_unix_nanos, call_timestamp_unix_nanos,
                                                last_unix_nanos, applied_acks, rejected_acks)

json action_to_json(const ActionRecord& a) {
  json j = a;
  j["event_keys"] = a.event_keys;
  return j;
}

ActionRecord action_from_json(const json& j) {
  ActionRecord a = j.get<ActionRecord>();
  if (auto it = j.find("event_keys"); it != j.end() && it->is_array())
    for (const auto& k : *it)
      if (k.is_string()) a.event_keys.push_back(k.get<std::string>());
  return a;
}

int severity_rank(const std::string& name) {
  for (int i = 0; i < 5; ++i)
    if (name == kSeverityNames[i]) return i;
  return -1;
}
const char* severity_of_rank(int rank) { return kSeverityNames[std::clamp(rank, 0, 4)]; }

IncidentStore::IncidentStore(const std::string& path) {
  if (path != ":memory:") {
    // Create the file owner-only before SQLite opens it: it holds attack
    // payloads and who did what.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw StoreError("cannot open " + path + ": " + std::strerror(errno));
    ::close(fd);
  }
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw StoreError("cannot open the dashboard database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  try {
    // auto_vacuum only takes effect on a new database (before the first table).
    exec("PRAGMA auto_vacuum=INCREMENTAL");
    if (path != ":memory:") {
      Stmt wal(db_, "PRAGMA journal_mode=WAL");
      if (!wal.step() || wal.text(0) != "wal")
        throw StoreError("cannot switch " + path + " to WAL mode");
    }
    exec("PRAGMA synchronous=NORMAL");
    exec("PRAGMA foreign_keys=OFF");
    exec(kSchema);
    migrate();
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

IncidentStore::~IncidentStore() { sqlite3_close(db_); }

void IncidentStore::migrate() {
  // Schema 1 had no alarms.principal_key (the principal an alarm of a pattern row came from):
  // added empty, so alarms stored before only count where they already are.
  bool has_principal = false;
  {
    Stmt s(db_, "PRAGMA table_info(alarms)");
    while (s.step()) has_principal = has_principal || s.text(1) == "principal_key";
  }
  if (!has_principal) exec("ALTER TABLE alarms ADD COLUMN principal_key TEXT NOT NULL DEFAULT ''");
  exec(
      "CREATE INDEX IF NOT EXISTS alarms_principal ON alarms(principal_key, at);"
      "UPDATE meta SET value = '2' WHERE key = 'schema_version'");
}

void IncidentStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw StoreError("sqlite: " + msg);
  }
}

void IncidentStore::begin() { exec("SAVEPOINT unit"); }
void IncidentStore::commit() { exec("RELEASE unit"); }
void IncidentStore::rollback() noexcept {
  if (sqlite3_get_autocommit(db_)) return;
  sqlite3_exec(db_, "ROLLBACK TO unit", nullptr, nullptr, nullptr);
  sqlite3_exec(db_, "RELEASE unit", nullptr, nullptr, nullptr);
}
void IncidentStore::begin_outer() { exec("BEGIN IMMEDIATE"); }
void IncidentStore::commit_outer() { exec("COMMIT"); }
void IncidentStore::rollback_outer() noexcept {
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

bool IncidentStore::has_alarm(const std::string& alarm_id) {
  Stmt s(db_, "SELECT 1 FROM alarms WHERE id = ?");
  s.bind(1, alarm_id);
  return s.step();
}

namespace {
constexpr const char* kIncidentColumns =
    "id, principal_key, principal, state, first_seen, last_seen, alarm_count, "
    "group_count, action_count, "
    "sev0, sev1, sev2, sev3, sev4, max_severity, max_ratio, calls, models, "
    "features, state_by, state_at, "
    "state_comment";
}

namespace {
template <typename S>
Incident read_incident(const S& s) {
  Incident i;
  i.id = s.i64(0);
  i.principal_key = s.text(1);
  i.principal = json::parse(s.text(2), nullptr, false);
  if (!i.principal.is_object()) i.principal = json::object();
  i.state = s.text(3);
  i.first_seen = s.i64(4);
  i.last_seen = s.i64(5);
  i.alarm_count = s.i64(6);
  i.group_count = s.i64(7);
  i.action_count = s.i64(8);
  for (int k = 0; k < 5; ++k) i.by_severity[k] = s.i64(9 + k);
  i.max_severity = static_cast<int>(s.i64(14));
  i.max_ratio = s.f64(15);
  i.calls = counts_from<int64_t>(s.text(16));
  i.models = counts_from<int64_t>(s.text(17));
  i.features = counts_from<double>(s.text(18));
  i.state_by = s.text(19);
  i.state_at = s.i64(20);
  i.state_comment = s.text(21);
  return i;
}
}  // namespace

std::optional<Incident> IncidentStore::latest_open(const std::string& principal_key) {
  const std::string sql = std::string("SELECT ") + kIncidentColumns +
                          " FROM incidents WHERE principal_key = ? AND state "
                          "IN ('open', 'acknowledged') "
                          "ORDER BY last_seen DESC LIMIT 1";
  Stmt s(db_, sql.c_str());
  s.bind(1, principal_key);
  if (!s.step()) return std::nullopt;
  return read_incident(s);
}

std::optional<Incident> IncidentStore::incident(int64_t id) {
  const std::string sql =
      std::string("SELECT ") + kIncidentColumns + " FROM incidents WHERE id = ?";
  Stmt s(db_, sql.c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_incident(s);
}

namespace {
// Binds every column but id, from parameter 1, in kIncidentColumns order.
template <typename S>
void bind_incident(S& s, const Incident& i) {
  s.bind(1, i.principal_key)
      .bind(2, dump(i.principal))
      .bind(3, i.state)
      .bind(4, i.first_seen)
      .bind(5, i.last_seen)
      .bind(6, i.alarm_count)
      .bind(7, i.group_count)
      .bind(8, i.action_count);
  for (int k = 0; k < 5; ++k) s.bind(9 + k, i.by_severity[k]);
  std::map<std::string, double> features = i.features;
  s.bind(14, i.max_severity)
      .bind(15, i.max_ratio)
      .bind(16, dump(counts_json(i.calls)))
      .bind(17, dump(counts_json(i.models)))
      .bind(18, dump(json(features)))
      .bind(19, i.state_by)
      .bind(20, i.state_at)
      .bind(21, i.state_comment);
}
}  // namespace

int64_t IncidentStore::insert_incident(const Incident& i) {
  Stmt s(db_,
         "INSERT INTO incidents(principal_key, principal, state, "
         "first_seen, last_seen, alarm_count, group_count, "
         "action_count, sev0, sev1, sev2, sev3, sev4, max_severity, "
         "max_ratio, calls, models, features, state_by, "
         "state_at, state_comment) "
         "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  bind_incident(s, i);
  s.run();
  return sqlite3_last_insert_rowid(db_);
}

void IncidentStore::update_incident(const Incident& i) {
  Stmt s(db_,
         "UPDATE incidents SET principal_key=?, principal=?, state=?, "
         "first_seen=?, last_seen=?, alarm_count=?, "
         "group_count=?, action_count=?, sev0=?, sev1=?, sev2=?, sev3=?, "
         "sev4=?, max_severity=?, max_ratio=?, "
         "calls=?, models=?, features=?, state_by=?, state_at=?, "
         "state_comment=? WHERE id=?");
  bind_incident(s, i);
  s.bind(22, i.id);
  s.run();
}

std::pair<int64_t, bool> IncidentStore::add_to_group(int64_t incident_id, const v1::Alarm& a,
                                                     const std::string& top_feature, int64_t at,
                                                     double ratio) {
  const int sev = std::clamp(static_cast<int>(a.severity()), 0, 4);
  {
    Stmt u(db_,
           "UPDATE alarm_groups SET count = count + 1, first_seen = "
           "min(first_seen, ?1), last_seen = max(last_seen, "
           "?1), max_severity = max(max_severity, ?2), max_ratio = "
           "max(max_ratio, ?3), last_alarm_id = ?4 "
           "WHERE incident_id = ?5 AND model_key = ?6 AND top_feature = "
           "?7 RETURNING id");
    u.bind(1, at)
        .bind(2, sev)
        .bind(3, ratio)
        .bind(4, a.id())
        .bind(5, incident_id)
        .bind(6, a.model_key());
    u.bind(7, top_feature);
    if (u.step()) {
      const int64_t id = u.i64(0);
      u.run();
      return {id, false};
    }
  }
  Stmt s(db_,
         "INSERT INTO alarm_groups(incident_id, model_key, top_feature, call, "
         "count, first_seen, last_seen, "
         "max_severity, max_ratio, last_alarm_id) VALUES(?,?,?,?,1,?,?,?,?,?)");
  s.bind(1, incident_id)
      .bind(2, a.model_key())
      .bind(3, top_feature)
      .bind(4, a.call())
      .bind(5, at)
      .bind(6, at);
  s.bind(7, sev).bind(8, ratio).bind(9, a.id());
  s.run();
  return {sqlite3_last_insert_rowid(db_), true};
}

void IncidentStore::insert_alarm(const v1::Alarm& a, int64_t incident_id, int64_t group_id,
                                 int64_t at, const std::string& principal_key) {
  Stmt s(db_,
         "INSERT OR IGNORE INTO alarms(id, incident_id, group_id, at, "
         "severity, ratio, proto, principal_key) "
         "VALUES(?,?,?,?,?,?,?,?)");
  const double ratio = a.threshold() > 0 ? a.combined_score() / a.threshold() : 0;
  s.bind(1, a.id()).bind(2, incident_id).bind(3, group_id).bind(4, at);
  s.bind(5, std::clamp(static_cast<int>(a.severity()), 0, 4))
      .bind(6, ratio)
      .bind_blob(7, a.SerializeAsString())
      .bind(8, principal_key);
  s.run();
}

std::vector<StoredAlarm> IncidentStore::pattern_alarms_of(const std::string& principal_key,
                                                          int64_t since, size_t limit) {
  Stmt s(db_,
         "SELECT a.id, a.incident_id, a.group_id, a.at, a.proto FROM alarms a "
         "JOIN incidents i ON i.id = a.incident_id "
         "WHERE a.principal_key = ? AND a.at >= ? AND i.principal_key LIKE 'pattern:%' "
         "AND i.state IN ('open', 'acknowledged') ORDER BY a.at LIMIT ?");
  s.bind(1, principal_key).bind(2, since).bind(3, static_cast<int64_t>(limit));
  std::vector<StoredAlarm> out;
  while (s.step()) {
    StoredAlarm r;
    r.id = s.text(0);
    r.incident_id = s.i64(1);
    r.group_id = s.i64(2);
    r.at = s.i64(3);
    r.principal_key = principal_key;
    if (r.alarm.ParseFromString(s.blob(4))) out.push_back(std::move(r));
  }
  return out;
}

std::optional<StoredAlarm> IncidentStore::stored_alarm(const std::string& alarm_id) {
  Stmt s(db_,
         "SELECT id, incident_id, group_id, at, proto, principal_key FROM alarms WHERE id = ?");
  s.bind(1, alarm_id);
  if (!s.step()) return std::nullopt;
  StoredAlarm r;
  r.id = s.text(0);
  r.incident_id = s.i64(1);
  r.group_id = s.i64(2);
  r.at = s.i64(3);
  r.principal_key = s.text(5);
  if (!r.alarm.ParseFromString(s.blob(4))) return std::nullopt;
  return r;
}

void IncidentStore::move_alarm(const std::string& alarm_id, int64_t incident_id, int64_t group_id) {
  Stmt s(db_, "UPDATE alarms SET incident_id = ?, group_id = ? WHERE id = ?");
  s.bind(1, incident_id).bind(2, group_id).bind(3, alarm_id);
  s.run();
  Stmt a(db_, "UPDATE actions SET incident_id = ? WHERE alarm_id = ?");
  a.bind(1, incident_id).bind(2, alarm_id);
  a.run();
}

bool IncidentStore::remove_from_group(int64_t group_id) {
  Stmt u(db_, "UPDATE alarm_groups SET count = count - 1 WHERE id = ? RETURNING count");
  u.bind(1, group_id);
  const bool found = u.step();
  const int64_t left = found ? u.i64(0) : 0;
  u.run();
  if (!found || left > 0) return false;
  Stmt d(db_, "DELETE FROM alarm_groups WHERE id = ?");
  d.bind(1, group_id);
  d.run();
  return true;
}

IncidentStore::Extent IncidentStore::extent(int64_t incident_id) {
  Stmt s(db_,
         "SELECT count(*), coalesce(min(at), 0), coalesce(max(at), 0), "
         "coalesce(max(severity), 0), coalesce(max(ratio), 0) FROM alarms WHERE incident_id = ?");
  s.bind(1, incident_id);
  s.step();
  return {s.i64(0), s.i64(1), s.i64(2), static_cast<int>(s.i64(3)), s.f64(4)};
}

void IncidentStore::delete_incident(int64_t incident_id) {
  for (const char* sql :
       {"DELETE FROM alarm_groups WHERE incident_id = ?", "DELETE FROM incidents WHERE id = ?"}) {
    Stmt s(db_, sql);
    s.bind(1, incident_id);
    s.run();
  }
}

bool IncidentStore::has_principal_alarm(int64_t incident_id, const std::string& principal_key) {
  Stmt s(db_, "SELECT 1 FROM alarms WHERE principal_key = ? AND incident_id = ? LIMIT 1");
  s.bind(1, principal_key).bind(2, incident_id);
  return s.step();
}

bool IncidentStore::has_action_of_kind(const std::string& alarm_id,
                                       const std::vector<std::string>& kinds) {
  Stmt s(db_, "SELECT record FROM actions WHERE alarm_id = ?");
  s.bind(1, alarm_id);
  while (s.step()) {
    const json j = json::parse(s.text(0), nullptr, false);
    if (!j.is_object()) continue;
    const auto a = action_from_json(j);
    if (a.status != "rejected" && std::find(kinds.begin(), kinds.end(), a.kind) != kinds.end())
      return true;
  }
  return false;
}

std::optional<v1::Alarm> IncidentStore::alarm(const std::string& alarm_id) {
  Stmt s(db_, "SELECT proto FROM alarms WHERE id = ?");
  s.bind(1, alarm_id);
  if (!s.step()) return std::nullopt;
  v1::Alarm a;
  if (!a.ParseFromString(s.blob(0))) return std::nullopt;
  return a;
}

std::optional<int64_t> IncidentStore::incident_of_alarm(const std::string& alarm_id) {
  Stmt s(db_, "SELECT incident_id FROM alarms WHERE id = ?");
  s.bind(1, alarm_id);
  if (!s.step()) return std::nullopt;
  return s.i64(0);
}

void IncidentStore::set_alarm_feedback(const std::string& alarm_id, const json& feedback) {
  Stmt s(db_, "UPDATE alarms SET feedback = ? WHERE id = ?");
  s.bind(1, dump(feedback)).bind(2, alarm_id);
  s.run();
}

std::optional<ActionRecord> IncidentStore::action(const std::string& action_id) {
  Stmt s(db_, "SELECT record FROM actions WHERE action_id = ?");
  s.bind(1, action_id);
  if (!s.step()) return std::nullopt;
  json j = json::parse(s.text(0), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return action_from_json(j);
}

void IncidentStore::put_action(const ActionRecord& a, int64_t incident_id) {
  Stmt s(db_,
         "INSERT INTO actions(action_id, incident_id, alarm_id, last_at, "
         "record) VALUES(?1,?2,?3,?4,?5) "
         "ON CONFLICT(action_id) DO UPDATE SET incident_id = CASE WHEN ?2 "
         "!= 0 THEN ?2 ELSE incident_id END, "
         "alarm_id = ?3, last_at = ?4, record = ?5");
  s.bind(1, a.action_id)
      .bind(2, incident_id)
      .bind(3, a.alarm_id)
      .bind(4, a.last_unix_nanos)
      .bind(5, dump(action_to_json(a)));
  s.run();
}

int64_t IncidentStore::link_actions(const std::string& alarm_id, int64_t incident_id) {
  if (alarm_id.empty()) return 0;
  Stmt s(db_,
         "UPDATE actions SET incident_id = ? WHERE alarm_id = ? AND "
         "incident_id = 0");
  s.bind(1, incident_id).bind(2, alarm_id);
  s.run();
  return sqlite3_changes(db_);
}

int64_t IncidentStore::count_actions(int64_t incident_id) {
  Stmt s(db_, "SELECT count(*) FROM actions WHERE incident_id = ?");
  s.bind(1, incident_id);
  s.step();
  return s.i64(0);
}

void IncidentStore::add_operator_action(int64_t at, const std::string& who, const std::string& what,
                                        int64_t incident_id, const std::string& detail) {
  Stmt s(db_,
         "INSERT INTO operator_actions(at, who, what, incident_id, "
         "detail) VALUES(?,?,?,?,?)");
  s.bind(1, at).bind(2, who).bind(3, what).bind(4, incident_id).bind(5, detail);
  s.run();
}

std::pair<std::vector<Incident>, int64_t> IncidentStore::list(const IncidentQuery& q) {
  std::string where = " WHERE 1=1";
  if (q.kind == IncidentQuery::Kind::kIncidents) where += " AND principal_key NOT LIKE 'pattern:%'";
  if (q.kind == IncidentQuery::Kind::kPatterns) where += " AND principal_key LIKE 'pattern:%'";
  struct Arg {
    bool is_text;
    int64_t n;
    std::string s;
  };
  std::vector<Arg> args;
  if (!q.states.empty()) {
    where += " AND state IN (";
    for (size_t k = 0; k < q.states.size(); ++k) {
      where += k ? ",?" : "?";
      args.push_back({true, 0, q.states[k]});
    }
    where += ")";
  }
  if (q.min_severity > 0) {
    where += " AND max_severity >= ?";
    args.push_back({false, q.min_severity, {}});
  }
  if (!q.principal.empty()) {
    // A pattern row matches through the principals of the alarms it holds.
    where +=
        " AND (principal_key LIKE ? ESCAPE '\\' OR principal LIKE ? ESCAPE '\\' OR "
        "(principal_key LIKE 'pattern:%' AND EXISTS (SELECT 1 FROM alarms al WHERE "
        "al.incident_id = incidents.id AND al.principal_key LIKE ? ESCAPE '\\')))";
    for (int k = 0; k < 3; ++k) args.push_back({true, 0, like_pattern(q.principal)});
  }
  if (!q.call.empty()) {
    where +=
        " AND EXISTS (SELECT 1 FROM alarm_groups g WHERE g.incident_id = "
        "incidents.id AND g.call LIKE ? "
        "ESCAPE '\\')";
    args.push_back({true, 0, like_pattern(q.call)});
  }
  if (q.from > 0) {
    where += " AND last_seen >= ?";
    args.push_back({false, q.from, {}});
  }
  if (q.to > 0) {
    where += " AND first_seen <= ?";
    args.push_back({false, q.to, {}});
  }
  auto bind_all = [&](Stmt& s) {
    int k = 1;
    for (const auto& a : args) {
      if (a.is_text) {
        s.bind(k++, a.s);
      } else {
        s.bind(k++, a.n);
      }
    }
    return k;
  };
  int64_t total = 0;
  {
    Stmt c(db_, ("SELECT count(*) FROM incidents" + where).c_str());
    bind_all(c);
    c.step();
    total = c.i64(0);
  }
  Stmt s(db_, (std::string("SELECT ") + kIncidentColumns + " FROM incidents" + where +
               " ORDER BY last_seen DESC, id DESC LIMIT ? OFFSET ?")
                  .c_str());
  int k = bind_all(s);
  s.bind(k++, q.limit);
  s.bind(k, q.offset);
  std::vector<Incident> out;
  while (s.step()) out.push_back(read_incident(s));
  return {std::move(out), total};
}

}  // namespace immunizer::dashboard
