#include "immunizer/dashboard/config.hpp"

#include <unistd.h>

#include "immunizer/common/config.hpp"

namespace immunizer::dashboard {

std::string DashboardConfig::default_group() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "immunizer-dashboard";
  return std::string("immunizer-dashboard-") + host;
}

namespace {

// The consumer group and the bounds of the in-memory views, SSE and time series.
void read_stream(const common::Config& c, DashboardConfig& d) {
  d.group = c.get_string("dashboard.group", DashboardConfig::default_group());
  d.max_alarms = c.get_int("dashboard.max_alarms", d.max_alarms, 1, 1'000'000);
  d.max_actions = c.get_int("dashboard.max_actions", d.max_actions, 1, 1'000'000);
  d.max_models = c.get_int("dashboard.max_models", d.max_models, 1, 10'000'000);
  d.sse_max_clients = c.get_int("dashboard.sse_max_clients", d.sse_max_clients, 1, 4096);
  d.sse_queue = c.get_int("dashboard.sse_queue", d.sse_queue, 1, 1'000'000);
  d.sse_keepalive_ms = c.get_int("dashboard.sse_keepalive_ms", d.sse_keepalive_ms, 100, 600'000);
  d.stats_interval_ms = c.get_int("dashboard.stats_interval_ms", d.stats_interval_ms, 50, 600'000);
  d.timeseries_interval_ms =
      c.get_int("dashboard.timeseries_interval_ms", d.timeseries_interval_ms, 100, 3'600'000);
  d.timeseries_points = c.get_int("dashboard.timeseries_points", d.timeseries_points, 2, 100'000);
}

// Where execute is and how to reach it; who may sign in, from which origin.
void read_execute_and_auth(const common::Config& c, DashboardConfig& d) {
  d.execute_address = c.get_string("dashboard.execute_address", d.execute_address);
  d.execute_timeout_ms =
      c.get_int("dashboard.execute_timeout_ms", d.execute_timeout_ms, 10, 600'000);
  d.auth = c.get_enum("dashboard.auth", d.auth, {"on", "none"});
  d.credentials_file = c.get_string("dashboard.credentials_file", "");
  d.execute_tls.enabled = c.get_enum("dashboard.execute_tls", "mtls", {"mtls", "none"}) == "mtls";
  d.execute_tls.ca_file = c.get_string("dashboard.execute_tls_ca_file", "");
  d.execute_tls.cert_file = c.get_string("dashboard.execute_tls_cert_file", "");
  d.execute_tls.key_file = c.get_string("dashboard.execute_tls_key_file", "");
  d.execute_tls.server_name = c.get_string("dashboard.execute_tls_server_name", "");
  d.auth_user = c.get_string("dashboard.auth_user", "");
  d.auth_password = c.get_secret("dashboard.auth_password");
  d.users = c.get_list("dashboard.users", {});
  d.public_origin = c.get_string("dashboard.public_origin", "");
  while (!d.public_origin.empty() && d.public_origin.back() == '/') d.public_origin.pop_back();
  if (!d.public_origin.empty() && d.public_origin.rfind("http://", 0) != 0 &&
      d.public_origin.rfind("https://", 0) != 0)
    c.error(
        "dashboard.public_origin: must start with http:// or https:// (e.g. "
        "https://immunizer.example.com), not '" +
        d.public_origin + "'");
}

// Sessions, rate limits, history on disk, incident grouping, pipeline metrics.
void read_sessions_and_incidents(const common::Config& c, DashboardConfig& d) {
  d.session_ttl_ms =
      c.get_int("dashboard.session_ttl_ms", d.session_ttl_ms, 60'000, 30LL * 24 * 3600 * 1000);
  d.login_attempts_per_minute =
      c.get_int("dashboard.login_attempts_per_minute", d.login_attempts_per_minute, 1, 100'000);
  d.feedback_per_minute =
      c.get_int("dashboard.feedback_per_minute", d.feedback_per_minute, 1, 100'000);
  d.block_ttl_ms =
      c.get_int("dashboard.block_ttl_ms", d.block_ttl_ms, 1000, 30LL * 24 * 3600 * 1000);
  d.data_dir = c.get_string("dashboard.data_dir", d.data_dir);
  d.retention_days = c.get_int("dashboard.retention_days", d.retention_days, 1, 3650);
  d.retention_max_mb = c.get_int("dashboard.retention_max_mb", d.retention_max_mb, 1, 1'000'000);
  d.incident_key =
      c.get_enum("dashboard.incident_key", d.incident_key, {"session", "ip", "prefix", "user"});
  d.incident_window_ms =
      c.get_int("dashboard.incident_window_ms", d.incident_window_ms, 1000, 7LL * 24 * 3600 * 1000);
  d.incident_ipv4_prefix =
      c.get_int("dashboard.incident_ipv4_prefix", d.incident_ipv4_prefix, 8, 32);
  d.incident_ipv6_prefix =
      c.get_int("dashboard.incident_ipv6_prefix", d.incident_ipv6_prefix, 16, 128);
  d.incident_min_severity = c.get_enum("dashboard.incident_min_severity", d.incident_min_severity,
                                       {"low", "medium", "high", "critical", "never"});
  d.incident_min_alarms =
      c.get_int("dashboard.incident_min_alarms", d.incident_min_alarms, 1, 1'000'000);
  d.execute_poll_ms = c.get_int("dashboard.execute_poll_ms", d.execute_poll_ms, 200, 600'000);
  d.pipeline_metrics_urls = c.get_list("dashboard.pipeline_metrics_urls", {});
  for (const auto& u : d.pipeline_metrics_urls)
    if (u.rfind("http://", 0) != 0 || u.size() <= 7)
      c.error("dashboard.pipeline_metrics_urls: '" + u +
              "' is not an http://host:port/metrics URL");
}

// Incident notifications (webhooks, JSON lines).
void read_notify(const common::Config& c, DashboardConfig& d) {
  d.notify_webhook_urls = c.get_list("dashboard.notify_webhook_urls", {});
  d.notify_webhook_secret = c.get_secret("dashboard.notify_webhook_secret");
  d.notify_jsonl_path = c.get_string("dashboard.notify_jsonl_path", "");
  d.notify_events = c.get_list("dashboard.notify_events", d.notify_events);
  d.notify_queue = c.get_int("dashboard.notify_queue", d.notify_queue, 1, 1'000'000);
  d.notify_max_attempts = c.get_int("dashboard.notify_max_attempts", d.notify_max_attempts, 1, 100);
  d.notify_backoff_ms = c.get_int("dashboard.notify_backoff_ms", d.notify_backoff_ms, 1, 600'000);
  d.notify_max_backoff_ms =
      c.get_int("dashboard.notify_max_backoff_ms", d.notify_max_backoff_ms, 1, 3'600'000);
  d.notify_timeout_ms = c.get_int("dashboard.notify_timeout_ms", d.notify_timeout_ms, 100, 600'000);
}

// The rules across keys, checked once every key is read.
void check(const common::Config& c, DashboardConfig& d) {
  if (d.data_dir.empty())
    c.error(
        "dashboard.data_dir: must not be empty "
        "(\":memory:\" keeps no history)");
  if (!d.notify_webhook_urls.empty() && d.notify_webhook_secret.empty())
    c.error(
        "dashboard.notify_webhook_secret: required when "
        "dashboard.notify_webhook_urls is set");
  else if (!d.notify_webhook_urls.empty() && d.notify_webhook_secret.size() < 32)
    // An HMAC key that short can be guessed offline from one signed delivery (the notifier
    // refuses it too).
    c.error("dashboard.notify_webhook_secret: " + std::to_string(d.notify_webhook_secret.size()) +
            " bytes; at least 32 are required (e.g. head -c 32 /dev/urandom | base64)");
  for (const auto& e : d.notify_events)
    if (e != "opened" && e != "escalated" && e != "resolved")
      c.error("dashboard.notify_events: '" + e + "' is not one of opened, escalated, resolved");
  for (const auto& u : d.notify_webhook_urls)
    if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0)
      c.error("dashboard.notify_webhook_urls: '" + u + "' is not an http:// or https:// URL");
  if (d.group.empty()) c.error("dashboard.group: must not be empty");
  if (!d.auth_user.empty() && d.auth_password.empty())
    c.error("dashboard.auth_password: required when dashboard.auth_user is set");
  if (d.auth_user.empty() && !d.auth_password.empty())
    c.error("dashboard.auth_user: required when dashboard.auth_password is set");
}

}  // namespace

DashboardConfig DashboardConfig::from_config(const common::Config& c) {
  DashboardConfig d;
  read_stream(c, d);
  read_execute_and_auth(c, d);
  read_sessions_and_incidents(c, d);
  read_notify(c, d);
  check(c, d);
  return d;
}

}  // namespace immunizer::dashboard
