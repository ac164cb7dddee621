// Settings of the dashboard service (dashboard.* keys), parsed and range-checked once at
// start-up. A plain value type; copy freely.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "immunizer/common/grpc_tls.hpp"

namespace immunizer::common {
class Config;
}

namespace immunizer::dashboard {

struct DashboardConfig {
  // Consumer group. Nothing is ever committed (the dashboard keeps no durable state), so
  // every start replays the retained alarms/actions to rebuild the feed, and replicas with
  // different group ids each see every message. Default: "immunizer-dashboard-<hostname>".
  std::string group;
  // Ring buffer sizes: the newest alarms and action events kept in memory.
  int64_t max_alarms = 1000;
  int64_t max_actions = 1000;
  // Model keys tracked from immunizer.scores (per-model state table); oldest evicted.
  int64_t max_models = 5000;
  // Server-Sent Events: at most this many browsers at once; each has a bounded queue of
  // events, and events for a client whose queue is full are dropped and counted.
  int64_t sse_max_clients = 32;
  int64_t sse_queue = 256;
  int64_t sse_keepalive_ms = 15000;
  // How often a `stats` event is pushed to the browsers.
  int64_t stats_interval_ms = 1000;
  // The overview's charts (GET /api/timeseries): one sample of the figures per interval, the
  // newest `points` kept in memory (default: 5 s over the last hour; not persisted).
  int64_t timeseries_interval_ms = 5000;
  int64_t timeseries_points = 720;
  // The services' /metrics pages (http://host:port/metrics) whose lost records
  // (immunizer_records_lost_total) the page shows, in red when not 0; polled every 5 s.
  std::vector<std::string> pipeline_metrics_urls;
  // execute's gRPC Operations endpoint (manual block/unblock) and the per-call deadline.
  std::string execute_address = "127.0.0.1:7070";
  int64_t execute_timeout_ms = 3000;
  // Authentication (docs/dashboard.md): "on" (default) or "none" (no login at all; a
  // warning at every start). With "on", users come from any of: the credentials file (one
  // line user:password, an operator; `immunizer up` generates it), auth_user/auth_password
  // (an operator), users ("name:role:pbkdf2-sha256$..." entries, role viewer or operator).
  std::string auth = "on";
  std::string credentials_file;
  // Mutual TLS to execute (dashboard.execute_tls: mtls, the default, or none; the files in
  // dashboard.execute_tls_{ca,cert,key}_file; the certificate must name an operator). The files
  // are checked when the client is made (make_grpc_operations_client).
  common::TlsFiles execute_tls;
  std::string auth_user;
  std::string auth_password;
  std::vector<std::string> users;
  // The origin browsers use to reach the dashboard (e.g. "https://immunizer.example.com"
  // behind a TLS ingress). Empty: "http://<Host header>". An https origin marks the session
  // cookie Secure and allows basic auth from non-loopback clients (TLS is in front).
  std::string public_origin;
  int64_t session_ttl_ms = 12LL * 3600 * 1000;
  // Failed logins (or basic-auth checks) per client address per minute.
  int64_t login_attempts_per_minute = 10;
  // Feedback messages per operator per minute.
  int64_t feedback_per_minute = 30;
  // Default TTL of a manual block from the UI when the request gives none.
  int64_t block_ttl_ms = 3600000;

  // Durable history (incidents, alarms, actions, operator actions) in SQLite (WAL) at
  // <data_dir>/dashboard.db; the folder is created owner-only. ":memory:" keeps nothing.
  std::string data_dir = "dashboard-data";
  // Retention: incidents whose last alarm is older, then the oldest beyond the size.
  int64_t retention_days = 30;
  int64_t retention_max_mb = 1024;
  // Incidents: the principal alarms are grouped on (session | ip | prefix | user), the quiet
  // gap after which a principal's next alarm opens a new incident, and the prefix lengths.
  std::string incident_key = "session";
  int64_t incident_window_ms = 600'000;
  int64_t incident_ipv4_prefix = 24;
  int64_t incident_ipv6_prefix = 64;
  // The evidence that gives a principal an incident of its own (else its alarms collapse into
  // pattern rows): one alarm of at least this severity, or this many alarms in the window
  // (an enforcing or escalating action on one of its alarms always does).
  std::string incident_min_severity = "high";
  int64_t incident_min_alarms = 3;
  // How often execute's active list (the authoritative enforcing actions) is read.
  int64_t execute_poll_ms = 2000;
  // Incident notifications (docs/dashboard.md, "Notifications").
  std::vector<std::string> notify_webhook_urls;
  std::string notify_webhook_secret;
  std::string notify_jsonl_path;
  std::vector<std::string> notify_events = {"opened", "escalated", "resolved"};
  int64_t notify_queue = 1000;
  int64_t notify_max_attempts = 5;
  int64_t notify_backoff_ms = 500;
  int64_t notify_max_backoff_ms = 30'000;
  int64_t notify_timeout_ms = 5000;

  static DashboardConfig from_config(const common::Config& c);
  static std::string default_group();
};

}  // namespace immunizer::dashboard
