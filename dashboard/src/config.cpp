#include "immunizer/dashboard/config.hpp"

#include <unistd.h>

#include "immunizer/common/config.hpp"

namespace immunizer::dashboard {

std::string DashboardConfig::default_group() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "immunizer-dashboard";
  return std::string("immunizer-dashboard-") + host;
}

DashboardConfig DashboardConfig::from_config(const common::Config& c) {
  DashboardConfig d;
  d.group = c.get_string("dashboard.group", default_group());
  d.max_alarms = c.get_int("dashboard.max_alarms", d.max_alarms, 1, 1'000'000);
  d.max_actions = c.get_int("dashboard.max_actions", d.max_actions, 1, 1'000'000);
  d.max_models = c.get_int("dashboard.max_models", d.max_models, 1, 10'000'000);
  d.sse_max_clients = c.get_int("dashboard.sse_max_clients", d.sse_max_clients, 1, 4096);
  d.sse_queue = c.get_int("dashboard.sse_queue", d.sse_queue, 1, 1'000'000);
  d.sse_keepalive_ms = c.get_int("dashboard.sse_keepalive_ms", d.sse_keepalive_ms, 100, 600'000);
  d.stats_interval_ms = c.get_int("dashboard.stats_interval_ms", d.stats_interval_ms, 50, 600'000);
  d.execute_address = c.get_string("dashboard.execute_address", d.execute_address);
  d.execute_timeout_ms = c.get_int("dashboard.execute_timeout_ms", d.execute_timeout_ms, 10, 600'000);
  d.auth_user = c.get_string("dashboard.auth_user", "");
  d.auth_password = c.get_secret("dashboard.auth_password");
  d.block_ttl_ms = c.get_int("dashboard.block_ttl_ms", d.block_ttl_ms, 1000, 30LL * 24 * 3600 * 1000);
  if (d.group.empty()) throw common::ConfigError("dashboard.group: must not be empty");
  if (!d.auth_user.empty() && d.auth_password.empty())
    throw common::ConfigError("dashboard.auth_password: required when dashboard.auth_user is set");
  if (d.auth_user.empty() && !d.auth_password.empty())
    throw common::ConfigError("dashboard.auth_user: required when dashboard.auth_password is set");
  return d;
}

}  // namespace immunizer::dashboard
