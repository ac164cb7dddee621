#include "immunizer/dashboard/api.hpp"

#include <algorithm>

#include "immunizer/common/logging.hpp"
#include "immunizer/dashboard/json.hpp"
#include "immunizer/dashboard/web_assets.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

namespace {

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t n = uint8_t(in[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

void send_json(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, {{"error", message}}, status);
}

size_t limit_param(const httplib::Request& req, size_t def, size_t max) {
  if (!req.has_param("limit")) return std::min(def, max);
  try {
    const long long v = std::stoll(req.get_param_value("limit"));
    return static_cast<size_t>(std::clamp<long long>(v, 1, static_cast<long long>(max)));
  } catch (...) {
    return std::min(def, max);
  }
}

// Parses a JSON object body; on failure answers 400 and returns nullopt.
std::optional<json> json_body(const httplib::Request& req, httplib::Response& res) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    send_error(res, 400, "the request body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

std::string string_field(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int ops_http_status(const OpsStatus& s) {
  switch (s.code) {
    case OpsStatus::kOk:
      return 200;
    case OpsStatus::kInvalidArgument:
      return 400;
    case OpsStatus::kNotFound:
      return 404;
    default:
      return 502;
  }
}

}  // namespace

json full_stats(const DashboardState& state, const SseHub& hub, const DashboardParts& parts) {
  json j = state.stats_json();
  j["sse"] = {{"clients", hub.clients()}, {"dropped", hub.dropped()}};
  j["blocks_active_source"] = "audit_trail";
  if (parts.execute) {
    j["execute"] = parts.execute->summary();
    if (auto n = parts.execute->fresh_enforcing_active()) {
      j["blocks_active"] = *n;  // execute's list: merged and extended actions are one entry
      j["blocks_active_source"] = "execute";
    }
  }
  if (parts.incidents) j["incidents"] = parts.incidents->counts();
  return j;
}

DashboardApi::DashboardApi(const DashboardConfig& cfg, DashboardState& state, SseHub& hub,
                           common::Producer& feedback_out, const common::Topics& topics,
                           OperationsClient& ops, const common::Clock& clock, prometheus::Registry& registry,
                           DashboardParts parts)
    : cfg_(cfg),
      state_(state),
      hub_(hub),
      feedback_out_(feedback_out),
      topics_(topics),
      ops_(ops),
      clock_(clock),
      feedback_family_(prometheus::BuildCounter()
                           .Name("immunizer_dashboard_feedback_total")
                           .Help("Feedback messages produced, by verdict")
                           .Register(registry)),
      operations_family_(prometheus::BuildCounter()
                             .Name("immunizer_dashboard_operations_total")
                             .Help("Manual actions sent to execute, by operation and result")
                             .Register(registry)),
      parts_(parts) {
  if (!cfg_.auth_user.empty()) expected_auth_ = "Basic " + base64(cfg_.auth_user + ":" + cfg_.auth_password);
}

bool DashboardApi::authorized(const httplib::Request& req) const {
  if (expected_auth_.empty()) return true;
  if (req.path == "/healthz" || req.path == "/readyz" || req.path == "/metrics") return true;
  return constant_time_equal(req.get_header_value("Authorization"), expected_auth_);
}

std::string DashboardApi::analyst(const httplib::Request& req, const json& body) const {
  if (!cfg_.auth_user.empty()) return cfg_.auth_user;  // the authenticated operator
  std::string a = string_field(body, "analyst");
  return a.empty() ? "dashboard" : a.substr(0, 128);
}

void DashboardApi::install(common::HttpServer& http) {
  // Every SSE client holds a worker thread: size the pool so the API stays responsive.
  auto& limits = http.limits();
  limits.worker_threads = std::max(limits.worker_threads, static_cast<int>(cfg_.sse_max_clients) + 8);
  limits.max_connections = std::max(limits.max_connections, limits.worker_threads + 16);
  httplib::Server& server = http.routes();

  if (!expected_auth_.empty()) {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"immunizer dashboard\", charset=\"UTF-8\"");
      res.set_content(dump(json{{"error", "authentication required"}}), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    });
  }

  auto serve_asset = [](const httplib::Request& req, httplib::Response& res) {
    const WebAsset* a = find_web_asset(req.path);
    if (!a) {
      res.status = 404;
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(a->body), std::string(a->content_type).c_str());
  };
  server.Get("/", serve_asset);
  for (size_t i = 0; i < kWebAssetCount; ++i) server.Get(std::string(kWebAssets[i].path), serve_asset);

  const auto max_alarms = static_cast<size_t>(cfg_.max_alarms);
  const auto max_actions = static_cast<size_t>(cfg_.max_actions);
  server.Get("/api/alarms", [this, max_alarms](const httplib::Request& req, httplib::Response& res) {
    send_json(res, state_.alarms_json(limit_param(req, 100, max_alarms)));
  });
  server.Get(R"(/api/alarms/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto j = state_.alarm_json(req.matches[1]);
    if (!j && parts_.incidents) {
      // Evicted from the ring: the incident history still has it.
      if (auto a = parts_.incidents->find_alarm(req.matches[1])) {
        json h = to_json(*a);
        h["feedback"] = nullptr;
        h["actions"] = json::array();
        h["from_history"] = true;
        return send_json(res, h);
      }
    }
    if (!j)
      return send_error(res, 404, "no alarm '" + std::string(req.matches[1]) + "' in the dashboard's buffer");
    send_json(res, *j);
  });
  server.Get("/api/actions", [this, max_actions](const httplib::Request& req, httplib::Response& res) {
    send_json(res, state_.actions_json(limit_param(req, 100, max_actions)));
  });
  server.Get("/api/actions/active", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, state_.active_actions_json());
  });
  server.Get("/api/models", [this](const httplib::Request& req, httplib::Response& res) {
    send_json(res, state_.models_json(limit_param(req, 50, static_cast<size_t>(cfg_.max_models))));
  });
  server.Get("/api/stats", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, full_stats(state_, hub_, parts_));
  });
  server.Get("/api/execute/active", [this](const httplib::Request&, httplib::Response& res) {
    // execute's authoritative view: enforcing actions with their acks, connected effectors.
    v1::ListActiveResponse resp;
    const auto st = ops_.list_active(&resp);
    if (!st.ok()) return send_error(res, ops_http_status(st), st.message);
    json actions = json::array();
    for (const auto& a : resp.actions())
      actions.push_back({{"action", to_json(a.action())},
                         {"expires_unix_nanos", a.expires_unix_nanos()},
                         {"plan_id", a.plan_id()},
                         {"acks", a.acks()}});
    json effectors = json::array();
    for (const auto& e : resp.effectors())
      effectors.push_back(
          {{"app", e.app()},
           {"instance", e.instance()},
           {"version", e.version()},
           {"capabilities", std::vector<std::string>(e.capabilities().begin(), e.capabilities().end())}});
    send_json(res, {{"actions", std::move(actions)}, {"effectors", std::move(effectors)}});
  });
  server.Get("/api/events",
             [this](const httplib::Request& req, httplib::Response& res) { events(req, res); });
  server.Post("/api/feedback",
              [this](const httplib::Request& req, httplib::Response& res) { feedback(req, res); });
  server.Post("/api/block", [this](const httplib::Request& req, httplib::Response& res) { block(req, res); });
  server.Post("/api/unblock",
              [this](const httplib::Request& req, httplib::Response& res) { unblock(req, res); });
  install_incidents(server);
}

void DashboardApi::events(const httplib::Request&, httplib::Response& res) {
  auto client = hub_.subscribe();
  if (!client) return send_error(res, 503, "too many event-stream clients (dashboard.sse_max_clients)");
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Accel-Buffering", "no");  // proxies must not buffer the stream
  const auto keepalive = std::chrono::milliseconds(cfg_.sse_keepalive_ms);
  auto first = std::make_shared<bool>(true);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, client, keepalive, first](size_t, httplib::DataSink& sink) {
        if (*first) {
          // Greeting: the reconnect delay and the current counters, so the page is live at once.
          *first = false;
          const std::string hello =
              "retry: 2000\n\n" + SseHub::frame("stats", dump(full_stats(state_, hub_, parts_)));
          return sink.write(hello.data(), hello.size());
        }
        std::string frame;
        switch (hub_.next(*client, frame, keepalive)) {
          case SseHub::Next::kFrame:
            return sink.write(frame.data(), frame.size());
          case SseHub::Next::kTimeout: {
            static constexpr std::string_view kPing = ": keepalive\n\n";
            return sink.write(kPing.data(), kPing.size());
          }
          case SseHub::Next::kClosed:
            sink.done();
            return true;
        }
        return false;
      },
      [this, client](bool) { hub_.unsubscribe(client); });
}

void DashboardApi::feedback(const httplib::Request& req, httplib::Response& res) {
  auto body = json_body(req, res);
  if (!body) return;
  const std::string alarm_id = string_field(*body, "alarm_id");
  const std::string verdict = string_field(*body, "verdict");
  const std::string comment = string_field(*body, "comment").substr(0, 2000);
  if (alarm_id.empty()) return send_error(res, 400, "alarm_id is required");
  v1::FeedbackVerdict v;
  if (verdict == "false_positive") {
    v = v1::FEEDBACK_FALSE_POSITIVE;
  } else if (verdict == "confirmed") {
    v = v1::FEEDBACK_CONFIRMED;
  } else {
    return send_error(res, 400, "verdict must be \"false_positive\" or \"confirmed\"");
  }
  auto alarm = any_alarm(alarm_id);
  if (!alarm) return send_error(res, 404, "no alarm '" + alarm_id + "' in the dashboard's buffer or history");

  v1::Feedback fb;
  fb.set_alarm_id(alarm_id);
  fb.set_model_key(alarm->model_key());
  *fb.mutable_record_id() = alarm->record_id();
  fb.set_verdict(v);
  *fb.mutable_values() = alarm->values();  // analyze learns a false positive from it
  fb.set_analyst(analyst(req, *body));
  fb.set_comment(comment);
  fb.set_at_unix_nanos(clock_.now_unix_nanos());
  *fb.mutable_principal() = alarm->principal();
  {
    std::lock_guard lock(feedback_mu_);
    feedback_out_.produce(topics_.feedback, fb.model_key(), fb.SerializeAsString());
    const auto r = feedback_out_.flush(std::chrono::seconds(10));
    if (!r.ok()) {
      feedback_family_.Add({{"verdict", verdict}, {"result", "failed"}}).Increment();
      return send_error(res, 503,
                        "feedback was not acknowledged by Kafka (topic " + topics_.feedback + "); retry");
    }
  }
  feedback_family_.Add({{"verdict", verdict}, {"result", "ok"}}).Increment();
  auto updated = state_.record_feedback(alarm_id, verdict, fb.analyst(), comment);
  if (parts_.incidents)
    parts_.incidents->record_feedback(alarm_id, {{"verdict", verdict},
                                                 {"analyst", fb.analyst()},
                                                 {"comment", comment},
                                                 {"at_unix_nanos", fb.at_unix_nanos()}});
  if (updated) hub_.publish("alarm", dump(*updated));
  send_json(res, {{"ok", true}, {"alarm_id", alarm_id}, {"verdict", verdict}, {"topic", topics_.feedback}});
}

void DashboardApi::block(const httplib::Request& req, httplib::Response& res) {
  auto body = json_body(req, res);
  if (!body) return;
  v1::BlockRequest br;
  std::string field = string_field(*body, "field");
  std::string value = string_field(*body, "value");
  const std::string alarm_id = string_field(*body, "alarm_id");
  if (value.empty() && !alarm_id.empty()) {
    // Block the principal of an alarm: the requested field, else session, then ip, then user.
    auto alarm = any_alarm(alarm_id);
    if (!alarm)
      return send_error(res, 404, "no alarm '" + alarm_id + "' in the dashboard's buffer or history");
    const auto& p = alarm->principal();
    const std::vector<std::pair<std::string, std::string>> order = {
        {"session", p.session()}, {"ip", p.ip()}, {"user", p.user()}};
    for (const auto& [f, v] : order) {
      if ((field.empty() || field == f) && !v.empty()) {
        field = f;
        value = v;
        break;
      }
    }
  }
  const auto pf = principal_field_from(field);
  if (pf == v1::PRINCIPAL_FIELD_UNSPECIFIED)
    return send_error(res, 400, "field must be \"user\", \"session\" or \"ip\"");
  if (value.empty())
    return send_error(res, 400, "value is required (or an alarm_id whose principal has that field)");
  int64_t ttl = cfg_.block_ttl_ms;
  if (auto it = body->find("ttl_ms"); it != body->end()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
      return send_error(res, 400, "ttl_ms must be a positive integer");
    ttl = it->get<int64_t>();
  }
  br.set_field(pf);
  br.set_value(value);
  br.set_ttl_millis(ttl);
  std::string reason = string_field(*body, "reason");
  if (reason.empty())
    reason = "manual block from the dashboard" + (alarm_id.empty() ? "" : " (alarm " + alarm_id + ")");
  br.set_reason(reason.substr(0, 500) + " by " + analyst(req, *body));
  br.set_call(string_field(*body, "call"));
  v1::BlockResponse resp;
  const auto st = ops_.block(br, &resp);
  operations_family_.Add({{"op", "block"}, {"result", st.ok() ? "ok" : "error"}}).Increment();
  if (!st.ok()) return send_error(res, ops_http_status(st), st.message);
  audit_incident(req, *body, "block",
                 field + " " + value + " for " + std::to_string(ttl) + " ms: action " + resp.action_id());
  send_json(res, {{"action_id", resp.action_id()}, {"field", field}, {"value", value}, {"ttl_ms", ttl}});
}

void DashboardApi::unblock(const httplib::Request& req, httplib::Response& res) {
  auto body = json_body(req, res);
  if (!body) return;
  v1::UnblockRequest ur;
  ur.set_action_id(string_field(*body, "action_id"));
  if (ur.action_id().empty()) return send_error(res, 400, "action_id is required");
  v1::UnblockResponse resp;
  const auto st = ops_.unblock(ur, &resp);
  operations_family_.Add({{"op", "unblock"}, {"result", st.ok() ? "ok" : "error"}}).Increment();
  if (!st.ok()) return send_error(res, ops_http_status(st), st.message);
  audit_incident(req, *body, "unblock",
                 "action " + ur.action_id() + (resp.found() ? "" : " (no longer active)"));
  send_json(res, {{"action_id", ur.action_id()}, {"found", resp.found()}});
}

}  // namespace immunizer::dashboard
