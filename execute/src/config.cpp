#include "immunizer/execute/config.hpp"

namespace immunizer::execute {

ExecuteConfig ExecuteConfig::from_config(const common::Config& c) {
  ExecuteConfig e;
  e.grpc_listen = c.get_string("execute.grpc_listen", e.grpc_listen);
  if (e.grpc_listen.find(':') == std::string::npos)
    throw common::ConfigError("config key 'execute.grpc_listen': '" + e.grpc_listen + "' is not host:port");
  e.group = c.get_string("execute.group", e.group);
  if (e.group.empty()) throw common::ConfigError("config key 'execute.group' must not be empty");
  e.default_ttl_ms = c.get_int("execute.default_ttl_ms", e.default_ttl_ms, 1000, 365LL * 24 * 3600 * 1000);
  e.max_ttl_ms = c.get_int("execute.max_ttl_ms", e.max_ttl_ms, 1000, 365LL * 24 * 3600 * 1000);
  if (e.default_ttl_ms > e.max_ttl_ms)
    throw common::ConfigError("config key 'execute.default_ttl_ms' (" + std::to_string(e.default_ttl_ms) +
                              ") exceeds 'execute.max_ttl_ms' (" + std::to_string(e.max_ttl_ms) + ")");
  e.effector_queue_limit = static_cast<size_t>(
      c.get_int("execute.effector_queue_limit", static_cast<int64_t>(e.effector_queue_limit), 16, 10'000'000));
  e.event_queue_limit = static_cast<size_t>(
      c.get_int("execute.event_queue_limit", static_cast<int64_t>(e.event_queue_limit), 16, 100'000'000));
  e.restore_timeout_ms = c.get_int("execute.restore_timeout_ms", e.restore_timeout_ms, 0, 600'000);
  e.tls_cert_file = c.get_string("execute.tls_cert_file", "");
  e.tls_key_file = c.get_string("execute.tls_key_file", "");
  if (e.tls_cert_file.empty() != e.tls_key_file.empty())
    throw common::ConfigError("config keys 'execute.tls_cert_file' and 'execute.tls_key_file' go together: set both or neither");
  e.key_id = c.get_string("security.key_id", e.key_id);
  e.signing_key = c.get_secret("security.signing_key");
  if (e.signing_key.empty())
    throw common::ConfigError(
        "config key 'security.signing_key' is empty: execute signs every directive and effectors reject "
        "unsigned ones; set security.signing_key (IMMUNIZER_SECURITY_SIGNING_KEY) or security.signing_key_file "
        "(the 'immunizer up' launcher generates one per run)");
  return e;
}

}  // namespace immunizer::execute
