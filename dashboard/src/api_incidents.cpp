// The incident routes of DashboardApi: list with filters and pagination, export
// (CSV and JSON), detail, and state changes by the authenticated operator
// (audited).
#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>

#include <algorithm>
#include <ctime>

#include "http_reply.hpp"
#include "immunizer/dashboard/api.hpp"
#include "immunizer/dashboard/json.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

namespace {

constexpr int64_t kMaxPage = 500;
constexpr int64_t kMaxExport = 10'000;

// An integer query parameter in [lo, hi]; nullopt (and a 400 answer) when it is
// not one.
std::optional<int64_t> int_param(const httplib::Request& req, httplib::Response& res,
                                 const char* name, int64_t def, int64_t lo, int64_t hi) {
  if (!req.has_param(name)) return def;
  const std::string v = req.get_param_value(name);
  try {
    size_t used = 0;
    const long long n = std::stoll(v, &used);
    if (used == v.size() && n >= lo && n <= hi) return n;
  } catch (...) {
  }
  send_error(res, 400,
             std::string(name) + " must be an integer in " + std::to_string(lo) + ".." +
                 std::to_string(hi));
  return std::nullopt;
}

// Filters shared by the list and the export; nullopt after answering 400.
std::optional<IncidentQuery> query_of(const httplib::Request& req, httplib::Response& res,
                                      int64_t def_limit, int64_t max_limit) {
  IncidentQuery q;
  if (req.has_param("kind")) {
    const std::string k = req.get_param_value("kind");
    if (k == "incidents") {
      q.kind = IncidentQuery::Kind::kIncidents;
    } else if (k == "patterns") {
      q.kind = IncidentQuery::Kind::kPatterns;
    } else if (k == "all") {
      q.kind = IncidentQuery::Kind::kAll;
    } else {
      send_error(res, 400, "kind must be incidents, patterns or all");
      return std::nullopt;
    }
  }
  if (req.has_param("state") && !req.get_param_value("state").empty()) {
    std::string s = req.get_param_value("state");
    size_t start = 0;
    while (start <= s.size()) {
      const size_t end = std::min(s.find(',', start), s.size());
      const std::string one = s.substr(start, end - start);
      if (one != "open" && one != "acknowledged" && one != "resolved" && one != "false_positive") {
        send_error(res, 400,
                   "state must be a comma-separated list of open, "
                   "acknowledged, resolved, false_positive");
        return std::nullopt;
      }
      q.states.push_back(one);
      start = end + 1;
    }
  }
  if (req.has_param("severity")) {
    q.min_severity = severity_rank(req.get_param_value("severity"));
    if (q.min_severity < 0) {
      send_error(res, 400, "severity must be low, medium, high or critical (the minimum)");
      return std::nullopt;
    }
  }
  q.principal = req.get_param_value("principal").substr(0, 256);
  q.call = req.get_param_value("call").substr(0, 512);
  const auto from = int_param(req, res, "from", 0, 0, INT64_MAX);
  if (!from) return std::nullopt;
  const auto to = int_param(req, res, "to", 0, 0, INT64_MAX);
  if (!to) return std::nullopt;
  const auto limit = int_param(req, res, "limit", def_limit, 1, max_limit);
  if (!limit) return std::nullopt;
  const auto offset = int_param(req, res, "offset", 0, 0, 1'000'000'000);
  if (!offset) return std::nullopt;
  q.from = *from;
  q.to = *to;
  q.limit = *limit;
  q.offset = *offset;
  return q;
}

std::string iso_time(int64_t nanos) {
  if (nanos <= 0) return "";
  const std::time_t t = static_cast<std::time_t>(nanos / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>((nanos / 1'000'000) % 1000));
  return std::string(buf) + ms;
}

// One CSV cell (RFC 4180 quoting). Cells a spreadsheet would run as a formula
// are prefixed with a quote: principals and calls come from attackers.
std::string csv_cell(const std::string& v) {
  std::string s = v;
  if (!s.empty() &&
      (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r'))
    s.insert(s.begin(), '\'');
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string joined(const std::map<std::string, int64_t>& m) {
  std::string out;
  for (const auto& [k, n] : m)
    out += (out.empty() ? "" : " | ") + k + " (" + std::to_string(n) + ")";
  return out;
}

}  // namespace

std::optional<v1::Alarm> DashboardApi::any_alarm(const std::string& id) const {
  if (auto a = state_.find_alarm(id)) return a;
  if (parts_.incidents) return parts_.incidents->find_alarm(id);
  return std::nullopt;
}

void DashboardApi::audit_incident(const httplib::Request& req, const json& body,
                                  const std::string& what, const std::string& detail) {
  if (!parts_.incidents) return;
  auto it = body.find("incident_id");
  if (it == body.end() || !it->is_number_integer()) return;
  parts_.incidents->audit(it->get<int64_t>(), analyst(req), what, detail);
}

void DashboardApi::install_incidents(httplib::Server& server) {
  if (!parts_.incidents) return;
  server.Get("/api/incidents", [this](const httplib::Request& req, httplib::Response& res) {
    incidents_list(req, res);
  });
  server.Get("/api/incidents/export", [this](const httplib::Request& req, httplib::Response& res) {
    incidents_export(req, res);
  });
  server.Get(
      R"(/api/incidents/(\d{1,18}))",
      [this](const httplib::Request& req, httplib::Response& res) { incident_detail(req, res); });
  server.Post(
      R"(/api/incidents/(\d{1,18})/state)",
      [this](const httplib::Request& req, httplib::Response& res) { incident_state(req, res); });
}

void DashboardApi::incidents_list(const httplib::Request& req, httplib::Response& res) {
  auto q = query_of(req, res, 50, kMaxPage);
  if (!q) return;
  json j = parts_.incidents->list(*q);
  if (j.is_null())
    return send_error(res, 503, "the dashboard database failed; see the dashboard's log");
  send_json(res, j);
}

void DashboardApi::incidents_export(const httplib::Request& req, httplib::Response& res) {
  auto q = query_of(req, res, kMaxExport, kMaxExport);
  if (!q) return;
  const std::string format = req.has_param("format") ? req.get_param_value("format") : "csv";
  if (format != "csv" && format != "json")
    return send_error(res, 400, "format must be csv or json");
  const auto rows = parts_.incidents->list_rows(*q);
  res.set_header("Cache-Control", "no-store");
  if (format == "json") {
    json out = json::array();
    for (const auto& i : rows) out.push_back(incident_json(i));
    res.set_header("Content-Disposition", "attachment; filename=\"incidents.json\"");
    res.set_content(dump(out), "application/json");
    return;
  }
  std::string csv =
      "id,state,principal,severity,alarms,rows,actions,first_"
      "seen,last_seen,max_score_ratio,calls,models,"
      "top_features,state_by,state_at,state_comment\r\n";
  for (const auto& i : rows) {
    std::string features;
    // Held by name: a range-for over a member of a temporary reads it after its destruction.
    const json incident = incident_json(i);
    for (const auto& f : incident["top_features"])
      features += (features.empty() ? "" : " | ") + f["feature"].get<std::string>();
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.3f", i.max_ratio);
    const std::vector<std::string> cells = {std::to_string(i.id),
                                            i.state,
                                            i.principal_key,
                                            severity_of_rank(i.max_severity),
                                            std::to_string(i.alarm_count),
                                            std::to_string(i.group_count),
                                            std::to_string(i.action_count),
                                            iso_time(i.first_seen),
                                            iso_time(i.last_seen),
                                            ratio,
                                            joined(i.calls),
                                            joined(i.models),
                                            features,
                                            i.state_by,
                                            iso_time(i.state_at),
                                            i.state_comment};
    for (size_t k = 0; k < cells.size(); ++k) csv += (k ? "," : "") + csv_cell(cells[k]);
    csv += "\r\n";
  }
  res.set_header("Content-Disposition", "attachment; filename=\"incidents.csv\"");
  res.set_content(csv, "text/csv; charset=utf-8");
}

void DashboardApi::incident_detail(const httplib::Request& req, httplib::Response& res) {
  const int64_t id = std::stoll(req.matches[1]);
  const auto alarms = int_param(req, res, "alarms", 100, 0, 1000);
  if (!alarms) return;
  auto j = parts_.incidents->detail(id, static_cast<size_t>(*alarms));
  if (!j) return send_error(res, 404, "no incident " + std::to_string(id));
  send_json(res, *j);
}

void DashboardApi::incident_state(const httplib::Request& req, httplib::Response& res) {
  const auto body = json_body(req, res);
  if (!body) return;
  const int64_t id = std::stoll(req.matches[1]);
  const std::string state = string_field(*body, "state");
  const std::string comment = string_field(*body, "comment").substr(0, 2000);
  if (state != "open" && state != "acknowledged" && state != "resolved" &&
      state != "false_positive")
    return send_error(res, 400, "state must be open, acknowledged, resolved or false_positive");
  auto r = parts_.incidents->set_state(id, state, analyst(req), comment);
  switch (r.code) {
    case IncidentEngine::StateResult::kNotFound:
      return send_error(res, 404, r.message);
    case IncidentEngine::StateResult::kInvalid:
      return send_error(res, 409, r.message);
    case IncidentEngine::StateResult::kFailed:
      return send_error(res, 503, r.message);
    case IncidentEngine::StateResult::kOk:
      break;
  }
  announce(*r.change, hub_, parts_.notifier);
  send_json(res, incident_json(r.change->incident));
}

}  // namespace immunizer::dashboard
