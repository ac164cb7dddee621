// The dashboard's HTTP surface on the service's HTTP server: the embedded ops page, the
// JSON API (/api/*), Server-Sent Events (/api/events), feedback to Kafka and manual
// actions through execute, behind login sessions / basic auth, roles and CSRF checks
// (auth.hpp). Handlers run on the HTTP server's worker
// threads; everything they touch is thread-safe. Referenced objects must outlive it.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>

#include "immunizer/common/http_server.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/dashboard/auth.hpp"
#include "immunizer/dashboard/config.hpp"
#include "immunizer/dashboard/operations.hpp"
#include "immunizer/dashboard/processor.hpp"
#include "immunizer/dashboard/sse.hpp"
#include "immunizer/dashboard/state.hpp"

namespace httplib {
struct Request;
struct Response;
class Server;
}  // namespace httplib

namespace immunizer::dashboard {

// /api/stats: the state's counters plus the SSE fan-out's; with the parts present, enforcing
// actions from execute's authoritative list and incident counts from the database.
nlohmann::json full_stats(const DashboardState& state, const SseHub& hub,
                          const DashboardParts& parts = {});

class DashboardApi {
 public:
  DashboardApi(const DashboardConfig& cfg, DashboardState& state, SseHub& hub,
               common::Producer& feedback_out, const common::Topics& topics, OperationsClient& ops,
               const common::Clock& clock, prometheus::Registry& registry,
               DashboardParts parts = {});
  // Throws common::ConfigError when the users cannot be read (dashboard.auth=on).
  // Adds the routes, the security headers and the authentication gate; before it starts.
  void install(common::HttpServer& http);
  size_t user_count() const { return auth_.user_count(); }
  std::string user_sources() const { return auth_.sources(); }

 private:
  struct Caller {
    std::string user;
    Role role = Role::kViewer;
    bool session = false;  // cookie session (CSRF token required), else basic auth or auth=none
    std::string csrf;
  };
  // Who sent the request: a session cookie, or basic auth over TLS/loopback; with `res`,
  // answers 401/429 when nobody. `count_failure` counts a wrong basic password against the
  // address's login limit (once per request).
  std::optional<Caller> authenticate(const httplib::Request& req, httplib::Response* res,
                                     bool count_failure);
  // The operator and the JSON object body of a state-changing request (feedback, block,
  // unblock); nullopt after answering 401 or 400.
  struct OperatorRequest {
    Caller caller;
    nlohmann::json body;
  };
  std::optional<OperatorRequest> operator_request(const httplib::Request& req,
                                                  httplib::Response& res);
  // The pre-routing check of every request (see docs/dashboard.md "Authentication").
  // The pre-routing gate: true when it answered the request itself (refused, redirected).
  bool gate(const httplib::Request& req, httplib::Response& res);
  bool same_origin_json(const httplib::Request& req, httplib::Response& res) const;
  std::string expected_origin(const httplib::Request& req) const;
  bool over_tls() const;
  bool refuse(httplib::Response& res, int status, const char* reason,
              const std::string& message) const;
  void login(const httplib::Request& req, httplib::Response& res);
  // The state-changing routes, called with operator_request()'s caller and body.
  using OperatorHandler = void (DashboardApi::*)(const httplib::Request&, httplib::Response&,
                                                 const Caller&, const nlohmann::json&);
  void feedback(const httplib::Request& req, httplib::Response& res, const Caller& caller,
                const nlohmann::json& body);
  void block(const httplib::Request& req, httplib::Response& res, const Caller& caller,
             const nlohmann::json& body);
  void unblock(const httplib::Request& req, httplib::Response& res, const Caller& caller,
               const nlohmann::json& body);
  void events(const httplib::Request& req, httplib::Response& res);
  // The authenticated user's name (for audit records), "anonymous" with dashboard.auth=none.
  std::string analyst(const httplib::Request& req);
  // The routes of install(), by kind: sign-in, static pages, read-only views, the execute
  // view, and the incident routes (api_incidents.cpp).
  void install_session_routes(httplib::Server& server);
  void install_read_routes(httplib::Server& server);
  void install_execute_view(httplib::Server& server);
  void install_incidents(httplib::Server& server);
  void incidents_list(const httplib::Request& req, httplib::Response& res);
  void incidents_export(const httplib::Request& req, httplib::Response& res);
  void incident_detail(const httplib::Request& req, httplib::Response& res);
  void incident_state(const httplib::Request& req, httplib::Response& res);
  // The alarm from the ring buffer, else from the incident history.
  std::optional<v1::Alarm> any_alarm(const std::string& id) const;
  // Audits a manual action taken from an incident (the body's incident_id), if any.
  void audit_incident(const httplib::Request& req, const nlohmann::json& body,
                      const std::string& what, const std::string& detail);

  DashboardConfig cfg_;
  DashboardState& state_;
  SseHub& hub_;
  common::Producer& feedback_out_;
  common::Topics topics_;
  OperationsClient& ops_;
  const common::Clock& clock_;
  std::mutex feedback_mu_;  // one produce+flush at a time, so a flush reports our message
  prometheus::Family<prometheus::Counter>& feedback_family_;
  prometheus::Family<prometheus::Counter>& operations_family_;
  DashboardParts parts_;
  prometheus::Family<prometheus::Counter>& refused_family_;
  prometheus::Family<prometheus::Counter>& logins_family_;
  Authenticator auth_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace immunizer::dashboard
