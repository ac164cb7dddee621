#include "immunizer/dashboard/api.hpp"

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>

#include <algorithm>

#include "http_reply.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/dashboard/json.hpp"
#include "immunizer/dashboard/web_assets.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

namespace {

size_t limit_param(const httplib::Request& req, size_t def, size_t max) {
  if (!req.has_param("limit")) return std::min(def, max);
  try {
    const long long v = std::stoll(req.get_param_value("limit"));
    return static_cast<size_t>(std::clamp<long long>(v, 1, static_cast<long long>(max)));
  } catch (...) {
    return std::min(def, max);
  }
}

bool is_loopback(const std::string& addr) {
  return addr.rfind("127.", 0) == 0 || addr == "::1" || addr.rfind("::ffff:127.", 0) == 0;
}

// The media type of a Content-Type header, lowercased, without parameters.
std::string media_type(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  return t;
}

std::string cookie_value(const httplib::Request& req, std::string_view name) {
  const std::string cookies = req.get_header_value("Cookie");
  size_t at = 0;
  while (at < cookies.size()) {
    size_t end = cookies.find(';', at);
    if (end == std::string::npos) end = cookies.size();
    std::string_view kv(cookies.data() + at, end - at);
    while (!kv.empty() && kv.front() == ' ') kv.remove_prefix(1);
    if (kv.size() > name.size() && kv.substr(0, name.size()) == name && kv[name.size()] == '=')
      return std::string(kv.substr(name.size() + 1));
    at = end + 1;
  }
  return "";
}

std::optional<std::pair<std::string, std::string>> basic_credentials(const httplib::Request& req) {
  const std::string h = req.get_header_value("Authorization");
  static constexpr std::string_view kBasic = "Basic ";
  if (h.size() <= kBasic.size() || h.compare(0, kBasic.size(), kBasic) != 0 || h.size() > 4096)
    return std::nullopt;
  const std::string enc = h.substr(kBasic.size());
  std::string dec(3 * enc.size() / 4 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(dec.data()),
                                reinterpret_cast<const unsigned char*>(enc.data()),
                                static_cast<int>(enc.size()));
  if (n < 0 || enc.size() % 4 != 0) return std::nullopt;
  size_t len = static_cast<size_t>(n);
  for (size_t i = enc.size(); i > 0 && enc[i - 1] == '='; --i) --len;
  dec.resize(len);
  const size_t colon = dec.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(dec.substr(0, colon), dec.substr(colon + 1));
}

bool tokens_equal(const std::string& a, const std::string& b) {
  return !a.empty() && a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

constexpr std::string_view kSessionCookie = "immunizer_session";

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
  if (parts.pipeline) j["pipeline"] = parts.pipeline->summary();
  return j;
}

DashboardApi::DashboardApi(const DashboardConfig& cfg, DashboardState& state, SseHub& hub,
                           common::Producer& feedback_out, const common::Topics& topics,
                           OperationsClient& ops, const common::Clock& clock,
                           prometheus::Registry& registry, DashboardParts parts)
    : cfg_(cfg),
      state_(state),
      hub_(hub),
      feedback_out_(feedback_out),
      topics_(topics),
      ops_(ops),
      clock_(clock),
      feedback_family_(common::counter_family(registry, "immunizer_dashboard_feedback_total",
                                              "Feedback messages produced, by verdict")),
      operations_family_(
          common::counter_family(registry, "immunizer_dashboard_operations_total",
                                 "Manual actions sent to execute, by operation and result")),
      parts_(parts),
      refused_family_(common::counter_family(
          registry, "immunizer_dashboard_requests_refused_total",
          "Requests the dashboard refused, by reason (unauthenticated, forbidden, csrf, "
          "rate_limited, ...)")),
      logins_family_(common::counter_family(registry, "immunizer_dashboard_logins_total",
                                            "Login attempts, by result")),
      auth_(cfg, clock),
      log_(common::logger("dashboard")) {
  for (const char* r : {"unauthenticated", "forbidden", "csrf", "content_type", "cross_origin",
                        "rate_limited", "basic_without_tls"})
    refused_family_.Add({{"reason", r}});
  for (const char* r : {"ok", "failed", "rate_limited"}) logins_family_.Add({{"result", r}});
}

std::string DashboardApi::analyst(const httplib::Request& req) {
  auto caller = authenticate(req, nullptr, false);
  return caller ? caller->user : "unknown";
}

std::string DashboardApi::expected_origin(const httplib::Request& req) const {
  if (!cfg_.public_origin.empty()) return cfg_.public_origin;
  return "http://" + req.get_header_value("Host");
}

bool DashboardApi::over_tls() const { return cfg_.public_origin.rfind("https://", 0) == 0; }

bool DashboardApi::refuse(httplib::Response& res, int status, const char* reason,
                          const std::string& message) const {
  refused_family_.Add({{"reason", reason}}).Increment();
  send_error(res, status, message);
  return false;
}

std::optional<DashboardApi::Caller> DashboardApi::authenticate(const httplib::Request& req,
                                                               httplib::Response* res,
                                                               bool count_failure) {
  if (!auth_.enabled()) return Caller{"anonymous", Role::kOperator, false, ""};
  if (auto s = auth_.find_session(cookie_value(req, kSessionCookie)))
    return Caller{s->user, s->role, true, s->csrf_token};
  if (auto basic = basic_credentials(req)) {
    if (!over_tls() && !is_loopback(req.remote_addr)) {
      if (res)
        refuse(*res, 401, "basic_without_tls",
               "basic auth is accepted only over TLS or from loopback");
      return std::nullopt;
    }
    const int64_t now = clock_.now_unix_nanos();
    if (!auth_.login_failures().would_allow(req.remote_addr, now)) {
      if (res) {
        res->set_header(
            "Retry-After",
            std::to_string(
                auth_.login_failures().retry_after(req.remote_addr, now) / 1'000'000'000 + 1));
        refuse(*res, 429, "rate_limited", "too many failed logins from this address; retry later");
      }
      return std::nullopt;
    }
    if (auto role = auth_.check_password(basic->first, basic->second))
      return Caller{basic->first, *role, false, ""};
    if (count_failure) {
      auth_.login_failures().allow(req.remote_addr, now);
      log_->warn("failed basic auth for user '{}' from {}", basic->first.substr(0, 64),
                 req.remote_addr);
    }
  }
  if (res)
    refuse(*res, 401, "unauthenticated",
           "authentication required: log in at /login.html or use basic auth");
  return std::nullopt;
}

// Every state-changing request: JSON only, and from the dashboard's own origin. A
// cross-site form or fetch cannot send Content-Type: application/json without a CORS
// preflight (which is never answered), and browsers send Origin / Sec-Fetch-Site.
bool DashboardApi::same_origin_json(const httplib::Request& req, httplib::Response& res) const {
  if (media_type(req.get_header_value("Content-Type")) != "application/json")
    return refuse(res, 415, "content_type",
                  "state-changing requests must have Content-Type: application/json");
  if (req.has_header("Sec-Fetch-Site") && req.get_header_value("Sec-Fetch-Site") != "same-origin")
    return refuse(res, 403, "cross_origin", "cross-site request refused (Sec-Fetch-Site)");
  if (req.has_header("Origin") && req.get_header_value("Origin") != expected_origin(req))
    return refuse(res, 403, "cross_origin",
                  "cross-origin request refused (Origin is not " + expected_origin(req) + ")");
  return true;
}

bool DashboardApi::gate(const httplib::Request& req, httplib::Response& res) {
  const bool changes_state = req.method != "GET" && req.method != "HEAD";
  if (changes_state && !same_origin_json(req, res)) return true;
  static const std::vector<std::string> kPublic = {"/healthz",    "/readyz",   "/metrics",
                                                   "/login.html", "/login.js", "/app.css",
                                                   "/theme.js",   "/api/login"};
  if (std::find(kPublic.begin(), kPublic.end(), req.path) != kPublic.end()) return false;
  if (!auth_.enabled()) return false;
  if (!changes_state && (req.path == "/" || req.path == "/index.html") &&
      !req.has_header("Authorization") && !auth_.find_session(cookie_value(req, kSessionCookie))) {
    res.status = 302;
    res.set_header("Location", "/login.html");
    refused_family_.Add({{"reason", "unauthenticated"}}).Increment();
    return true;
  }
  auto caller = authenticate(req, &res, true);
  if (!caller) {
    // A browser's fetch would pop up a password dialog on a Basic challenge: API clients only.
    if (!req.has_header("Sec-Fetch-Mode"))
      res.set_header("WWW-Authenticate", "Basic realm=\"immunizer dashboard\"");
    return true;
  }
  if (!changes_state) return false;
  if (caller->session) {
    // Cookie sessions: the page's own origin must be stated, and the CSRF token match.
    if (!req.has_header("Origin") && !req.has_header("Sec-Fetch-Site")) {
      refuse(res, 403, "cross_origin", "a session request must carry Origin or Sec-Fetch-Site");
      return true;
    }
    if (!tokens_equal(req.get_header_value("X-CSRF-Token"), caller->csrf)) {
      refuse(res, 403, "csrf", "missing or wrong X-CSRF-Token (GET /api/session gives it)");
      return true;
    }
  }
  if (req.path != "/api/logout" && caller->role != Role::kOperator) {
    refuse(res, 403, "forbidden",
           "the operator role is required; '" + caller->user + "' is a " + role_name(caller->role));
    return true;
  }
  return false;
}

void DashboardApi::login(const httplib::Request& req, httplib::Response& res) {
  if (!auth_.enabled()) return send_error(res, 404, "authentication is off (dashboard.auth=none)");
  const int64_t now = clock_.now_unix_nanos();
  if (!auth_.login_failures().would_allow(req.remote_addr, now)) {
    logins_family_.Add({{"result", "rate_limited"}}).Increment();
    res.set_header(
        "Retry-After",
        std::to_string(auth_.login_failures().retry_after(req.remote_addr, now) / 1'000'000'000 +
                       1));
    refuse(res, 429, "rate_limited", "too many failed logins from this address; retry later");
    return;
  }
  auto body = json_body(req, res);
  if (!body) return;
  const std::string user = string_field(*body, "user").substr(0, 256);
  const std::string password = string_field(*body, "password").substr(0, 1024);
  auto role = auth_.check_password(user, password);
  if (!role) {
    auth_.login_failures().allow(req.remote_addr, now);
    logins_family_.Add({{"result", "failed"}}).Increment();
    log_->warn("failed login for user '{}' from {}", user.substr(0, 64), req.remote_addr);
    return send_error(res, 401, "wrong user or password");
  }
  auto [id, session] = auth_.create_session(user, *role);
  logins_family_.Add({{"result", "ok"}}).Increment();
  log_->info("login: '{}' ({}) from {}", user, role_name(*role), req.remote_addr);
  std::string cookie =
      std::string(kSessionCookie) + "=" + id +
      "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(cfg_.session_ttl_ms / 1000);
  if (over_tls()) cookie += "; Secure";
  res.set_header("Set-Cookie", cookie);
  send_json(res, {{"user", user}, {"role", role_name(*role)}, {"csrf_token", session.csrf_token}});
}

void DashboardApi::install(common::HttpServer& http) {
  // Every SSE client holds a worker thread: size the pool so the API stays responsive.
  auto& limits = http.limits();
  limits.worker_threads =
      std::max(limits.worker_threads, static_cast<int>(cfg_.sse_max_clients) + 8);
  limits.max_connections = std::max(limits.max_connections, limits.worker_threads + 16);
  httplib::Server& server = http.routes();

  // On every response, errors included. No inline script anywhere (the pages load /app.js
  // and /login.js); inline style attributes are used for bar widths.
  server.set_default_headers({
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' "
       "data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cross-Origin-Opener-Policy", "same-origin"},
      {"Cross-Origin-Resource-Policy", "same-origin"},
  });
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return gate(req, res) ? httplib::Server::HandlerResponse::Handled
                          : httplib::Server::HandlerResponse::Unhandled;
  });
  install_session_routes(server);
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
  for (size_t i = 0; i < kWebAssetCount; ++i)
    server.Get(std::string(kWebAssets[i].path), serve_asset);

  install_read_routes(server);
  install_execute_view(server);
  server.Get("/api/events",
             [this](const httplib::Request& req, httplib::Response& res) { events(req, res); });
  const std::pair<const char*, OperatorHandler> operator_routes[] = {
      {"/api/feedback", &DashboardApi::feedback},
      {"/api/block", &DashboardApi::block},
      {"/api/unblock", &DashboardApi::unblock}};
  for (const auto& [path, handler] : operator_routes)
    server.Post(path,
                [this, handler = handler](const httplib::Request& req, httplib::Response& res) {
                  if (auto in = operator_request(req, res))
                    (this->*handler)(req, res, in->caller, in->body);
                });
  install_incidents(server);
}

void DashboardApi::install_session_routes(httplib::Server& server) {
  server.Post("/api/login",
              [this](const httplib::Request& req, httplib::Response& res) { login(req, res); });
  server.Post("/api/logout", [this](const httplib::Request& req, httplib::Response& res) {
    auth_.end_session(cookie_value(req, kSessionCookie));
    res.set_header("Set-Cookie", std::string(kSessionCookie) +
                                     "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" +
                                     (over_tls() ? "; Secure" : ""));
    send_json(res, {{"ok", true}});
  });
  server.Get("/api/session", [this](const httplib::Request& req, httplib::Response& res) {
    auto caller = authenticate(req, nullptr, false);
    if (!caller) return send_error(res, 401, "authentication required");
    json j = {{"user", caller->user},
              {"role", role_name(caller->role)},
              {"auth", !auth_.enabled()  ? "none"
                       : caller->session ? "session"
                                         : "basic"}};
    if (caller->session) j["csrf_token"] = caller->csrf;
    send_json(res, j);
  });
}

void DashboardApi::install_read_routes(httplib::Server& server) {
  const auto max_alarms = static_cast<size_t>(cfg_.max_alarms);
  const auto max_actions = static_cast<size_t>(cfg_.max_actions);
  server.Get("/api/alarms",
             [this, max_alarms](const httplib::Request& req, httplib::Response& res) {
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
      return send_error(res, 404,
                        "no alarm '" + std::string(req.matches[1]) + "' in the dashboard's buffer");
    send_json(res, *j);
  });
  server.Get("/api/actions",
             [this, max_actions](const httplib::Request& req, httplib::Response& res) {
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
  server.Get("/api/timeseries", [this](const httplib::Request&, httplib::Response& res) {
    if (!parts_.series) return send_error(res, 404, "no time series in this dashboard");
    send_json(res, parts_.series->to_json());
  });
}

void DashboardApi::install_execute_view(httplib::Server& server) {
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
      effectors.push_back({{"app", e.app()},
                           {"instance", e.instance()},
                           {"version", e.version()},
                           {"capabilities", std::vector<std::string>(e.capabilities().begin(),
                                                                     e.capabilities().end())}});
    send_json(res, {{"actions", std::move(actions)}, {"effectors", std::move(effectors)}});
  });
}

void DashboardApi::events(const httplib::Request&, httplib::Response& res) {
  auto client = hub_.subscribe();
  if (!client)
    return send_error(res, 503, "too many event-stream clients (dashboard.sse_max_clients)");
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

std::optional<DashboardApi::OperatorRequest> DashboardApi::operator_request(
    const httplib::Request& req, httplib::Response& res) {
  auto caller = authenticate(req, nullptr, false);
  if (!caller) {
    send_error(res, 401, "authentication required");
    return std::nullopt;
  }
  auto body = json_body(req, res);
  if (!body) return std::nullopt;
  return OperatorRequest{std::move(*caller), std::move(*body)};
}

void DashboardApi::feedback(const httplib::Request& req, httplib::Response& res,
                            const Caller& caller, const json& body) {
  // The operator is who authenticated (gate() let only operators through), never a body field.
  const std::string alarm_id = string_field(body, "alarm_id");
  const std::string verdict = string_field(body, "verdict");
  const std::string comment = string_field(body, "comment").substr(0, 2000);
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
  if (!alarm)
    return send_error(res, 404, "no alarm '" + alarm_id + "' in the dashboard's buffer or history");
  const int64_t now = clock_.now_unix_nanos();
  if (!auth_.feedback_limit().allow(caller.user, now)) {
    feedback_family_.Add({{"verdict", verdict}, {"result", "rate_limited"}}).Increment();
    res.set_header(
        "Retry-After",
        std::to_string(auth_.feedback_limit().retry_after(caller.user, now) / 1'000'000'000 + 1));
    refuse(res, 429, "rate_limited",
           "feedback limit reached for '" + caller.user + "' (dashboard.feedback_per_minute=" +
               std::to_string(cfg_.feedback_per_minute) + ")");
    return;
  }

  v1::Feedback fb;
  fb.set_alarm_id(alarm_id);
  fb.set_model_key(alarm->model_key());
  *fb.mutable_record_id() = alarm->record_id();
  fb.set_verdict(v);
  *fb.mutable_values() = alarm->values();  // analyze learns a false positive from it
  fb.set_analyst(caller.user);
  fb.set_comment(comment);
  fb.set_at_unix_nanos(clock_.now_unix_nanos());
  *fb.mutable_principal() = alarm->principal();
  {
    std::lock_guard lock(feedback_mu_);
    feedback_out_.produce(topics_.feedback, fb.model_key(), fb.SerializeAsString());
    const auto r = feedback_out_.flush(std::chrono::seconds(10));
    if (!r.ok()) {
      feedback_family_.Add({{"verdict", verdict}, {"result", "failed"}}).Increment();
      return send_error(
          res, 503,
          "feedback was not acknowledged by Kafka (topic " + topics_.feedback + "); retry");
    }
  }
  feedback_family_.Add({{"verdict", verdict}, {"result", "ok"}}).Increment();
  log_->info("feedback {} on alarm {} by '{}'", verdict, alarm_id, caller.user);
  auto updated = state_.record_feedback(alarm_id, verdict, fb.analyst(), comment);
  if (parts_.incidents)
    parts_.incidents->record_feedback(alarm_id, {{"verdict", verdict},
                                                 {"analyst", fb.analyst()},
                                                 {"comment", comment},
                                                 {"at_unix_nanos", fb.at_unix_nanos()}});
  if (updated) hub_.publish("alarm", dump(*updated));
  send_json(
      res,
      {{"ok", true}, {"alarm_id", alarm_id}, {"verdict", verdict}, {"topic", topics_.feedback}});
}

void DashboardApi::block(const httplib::Request& req, httplib::Response& res, const Caller& caller,
                         const json& body) {
  v1::BlockRequest br;
  std::string field = string_field(body, "field");
  std::string value = string_field(body, "value");
  const std::string alarm_id = string_field(body, "alarm_id");
  if (value.empty() && !alarm_id.empty()) {
    // Block the principal of an alarm: the requested field, else session, then ip, then user.
    auto alarm = any_alarm(alarm_id);
    if (!alarm)
      return send_error(res, 404,
                        "no alarm '" + alarm_id + "' in the dashboard's buffer or history");
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
    return send_error(res, 400,
                      "value is required (or an alarm_id whose principal has that field)");
  int64_t ttl = cfg_.block_ttl_ms;
  if (auto it = body.find("ttl_ms"); it != body.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
      return send_error(res, 400, "ttl_ms must be a positive integer");
    ttl = it->get<int64_t>();
  }
  br.set_field(pf);
  br.set_value(value);
  br.set_ttl_millis(ttl);
  std::string reason = string_field(body, "reason");
  if (reason.empty())
    reason =
        "manual block from the dashboard" + (alarm_id.empty() ? "" : " (alarm " + alarm_id + ")");
  br.set_reason(reason.substr(0, 500) + " by " + caller.user);
  br.set_call(string_field(body, "call"));
  v1::BlockResponse resp;
  const auto st = ops_.block(br, &resp);
  operations_family_.Add({{"op", "block"}, {"result", st.ok() ? "ok" : "error"}}).Increment();
  log_->info("block {}={} for {} ms by '{}': {}", field, value, ttl, caller.user,
             st.ok() ? "ok" : st.message);
  if (!st.ok()) return send_error(res, ops_http_status(st), st.message);
  audit_incident(
      req, body, "block",
      field + " " + value + " for " + std::to_string(ttl) + " ms: action " + resp.action_id());
  send_json(res,
            {{"action_id", resp.action_id()}, {"field", field}, {"value", value}, {"ttl_ms", ttl}});
}

void DashboardApi::unblock(const httplib::Request& req, httplib::Response& res,
                           const Caller& caller, const json& body) {
  v1::UnblockRequest ur;
  ur.set_action_id(string_field(body, "action_id"));
  if (ur.action_id().empty()) return send_error(res, 400, "action_id is required");
  v1::UnblockResponse resp;
  const auto st = ops_.unblock(ur, &resp);
  operations_family_.Add({{"op", "unblock"}, {"result", st.ok() ? "ok" : "error"}}).Increment();
  log_->info("unblock {} by '{}': {}", ur.action_id(), caller.user, st.ok() ? "ok" : st.message);
  if (!st.ok()) return send_error(res, ops_http_status(st), st.message);
  audit_incident(req, body, "unblock",
                 "action " + ur.action_id() + (resp.found() ? "" : " (no longer active)"));
  send_json(res, {{"action_id", ur.action_id()}, {"found", resp.found()}});
}

}  // namespace immunizer::dashboard
