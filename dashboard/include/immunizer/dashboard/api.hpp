// The dashboard's HTTP surface on the service's HTTP server: the embedded ops page, the
// JSON API (/api/*), Server-Sent Events (/api/events), feedback to Kafka and manual
// actions through execute, and optional basic auth. Handlers run on httplib's worker
// threads; everything they touch is thread-safe. Referenced objects must outlive it.
#pragma once

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "immunizer/common/http_server.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/dashboard/config.hpp"
#include "immunizer/dashboard/operations.hpp"
#include "immunizer/dashboard/processor.hpp"
#include "immunizer/dashboard/sse.hpp"
#include "immunizer/dashboard/state.hpp"

namespace immunizer::dashboard {

// /api/stats: the state's counters plus the SSE fan-out's; with the parts present, enforcing
// actions from execute's authoritative list and incident counts from the database.
nlohmann::json full_stats(const DashboardState& state, const SseHub& hub, const DashboardParts& parts = {});

class DashboardApi {
 public:
  DashboardApi(const DashboardConfig& cfg, DashboardState& state, SseHub& hub, common::Producer& feedback_out,
               const common::Topics& topics, OperationsClient& ops, const common::Clock& clock,
               prometheus::Registry& registry, DashboardParts parts = {});
  // Adds the routes (and the auth check, when configured) to `server`; before it starts.
  void install(common::HttpServer& http);

 private:
  bool authorized(const httplib::Request& req) const;
  void feedback(const httplib::Request& req, httplib::Response& res);
  void block(const httplib::Request& req, httplib::Response& res);
  void unblock(const httplib::Request& req, httplib::Response& res);
  void events(const httplib::Request& req, httplib::Response& res);
  std::string analyst(const httplib::Request& req, const nlohmann::json& body) const;
  // Incident routes (api_incidents.cpp).
  void install_incidents(httplib::Server& server);
  void incidents_list(const httplib::Request& req, httplib::Response& res);
  void incidents_export(const httplib::Request& req, httplib::Response& res);
  void incident_detail(const httplib::Request& req, httplib::Response& res);
  void incident_state(const httplib::Request& req, httplib::Response& res);
  // The alarm from the ring buffer, else from the incident history.
  std::optional<v1::Alarm> any_alarm(const std::string& id) const;
  // Audits a manual action taken from an incident (the body's incident_id), if any.
  void audit_incident(const httplib::Request& req, const nlohmann::json& body, const std::string& what,
                      const std::string& detail);

  DashboardConfig cfg_;
  DashboardState& state_;
  SseHub& hub_;
  common::Producer& feedback_out_;
  common::Topics topics_;
  OperationsClient& ops_;
  const common::Clock& clock_;
  std::string expected_auth_;  // "Basic base64(user:password)", empty without auth
  std::mutex feedback_mu_;     // one produce+flush at a time, so a flush reports our message
  prometheus::Family<prometheus::Counter>& feedback_family_;
  prometheus::Family<prometheus::Counter>& operations_family_;
  DashboardParts parts_;
};

}  // namespace immunizer::dashboard
