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
#include "immunizer/dashboard/sse.hpp"
#include "immunizer/dashboard/state.hpp"

namespace immunizer::dashboard {

// /api/stats: the state's counters plus the SSE fan-out's.
nlohmann::json full_stats(const DashboardState& state, const SseHub& hub);

class DashboardApi {
 public:
  DashboardApi(const DashboardConfig& cfg, DashboardState& state, SseHub& hub, common::Producer& feedback_out,
               const common::Topics& topics, OperationsClient& ops, const common::Clock& clock,
               prometheus::Registry& registry);
  // Adds the routes (and the auth check, when configured) to `server`; before it starts.
  void install(common::HttpServer& http);

 private:
  bool authorized(const httplib::Request& req) const;
  void feedback(const httplib::Request& req, httplib::Response& res);
  void block(const httplib::Request& req, httplib::Response& res);
  void unblock(const httplib::Request& req, httplib::Response& res);
  void events(const httplib::Request& req, httplib::Response& res);
  std::string analyst(const httplib::Request& req, const nlohmann::json& body) const;

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
};

}  // namespace immunizer::dashboard
