#include "immunizer/execute/config.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/v1/names.hpp"

namespace immunizer::execute {

ExecuteConfig ExecuteConfig::from_config(const common::Config& c) {
  ExecuteConfig e;
  e.grpc_listen = c.get_string("execute.grpc_listen", e.grpc_listen);
  if (e.grpc_listen.find(':') == std::string::npos)
    c.error("config key 'execute.grpc_listen': '" + e.grpc_listen + "' is not host:port");
  e.group = c.get_string("execute.group", e.group);
  if (e.group.empty()) c.error("config key 'execute.group' must not be empty");
  e.default_ttl_ms =
      c.get_int("execute.default_ttl_ms", e.default_ttl_ms, 1000, 365LL * 24 * 3600 * 1000);
  e.max_ttl_ms = c.get_int("execute.max_ttl_ms", e.max_ttl_ms, 1000, 365LL * 24 * 3600 * 1000);
  if (e.default_ttl_ms > e.max_ttl_ms)
    c.error("config key 'execute.default_ttl_ms' (" + std::to_string(e.default_ttl_ms) +
            ") exceeds 'execute.max_ttl_ms' (" + std::to_string(e.max_ttl_ms) + ")");
  e.effector_queue_limit =
      static_cast<size_t>(c.get_int("execute.effector_queue_limit",
                                    static_cast<int64_t>(e.effector_queue_limit), 16, 10'000'000));
  e.event_queue_limit = static_cast<size_t>(c.get_int(
      "execute.event_queue_limit", static_cast<int64_t>(e.event_queue_limit), 16, 100'000'000));
  e.restore_timeout_ms = c.get_int("execute.restore_timeout_ms", e.restore_timeout_ms, 0, 600'000);
  e.recall_events = c.get_int("execute.recall_events", e.recall_events, 0, 10'000'000);
  e.tls.enabled = c.get_enum("execute.tls", "mtls", {"mtls", "none"}) == "mtls";
  e.tls.ca_file = c.get_string("execute.tls_ca_file", "");
  e.tls.cert_file = c.get_string("execute.tls_cert_file", "");
  e.tls.key_file = c.get_string("execute.tls_key_file", "");
  if (e.tls.enabled && (e.tls.ca_file.empty() || e.tls.cert_file.empty() || e.tls.key_file.empty()))
    c.error(
        "config keys 'execute.tls_ca_file', 'execute.tls_cert_file' and 'execute.tls_key_file' are "
        "required: the gRPC "
        "server uses mutual TLS ('immunizer pki init' makes the files; execute.tls=none turns TLS "
        "off, for tests only)");
  // The shared HMAC key of earlier releases: anyone holding it could forge directives.
  for (const char* old : {"security.signing_key", "security.signing_key_file", "security.key_id"})
    if (c.has(old))
      c.error(std::string("config key '") + old +
              "' is no longer used: directives are signed with Ed25519; set "
              "'execute.directive_signing_key_file' (keys/execute.key of 'immunizer pki init')");
  const std::string key_file = c.get_string("execute.directive_signing_key_file", "");
  if (key_file.empty()) {
    c.error(
        "config key 'execute.directive_signing_key_file' is empty: execute signs every directive "
        "with its Ed25519 key "
        "and effectors reject unsigned ones ('immunizer pki init' or 'immunizer up' makes "
        "keys/execute.key)");
  } else {
    try {
      e.signing_key =
          std::make_shared<const crypto::SigningKey>(crypto::SigningKey::load(key_file));
    } catch (const std::exception& ex) {
      c.error(std::string("config key 'execute.directive_signing_key_file': ") + ex.what());
    }
  }
  read_plan_guard(c, e);
  return e;
}

void ExecuteConfig::read_plan_guard(const common::Config& c, ExecuteConfig& e) {
  const auto paths = c.get_list("execute.plan_public_keys", {});
  if (paths.empty())
    c.error(
        "config key 'execute.plan_public_keys' is empty: execute enforces only plans signed by a "
        "trusted plan key; "
        "set it (IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS, comma-separated) to the PEM public key "
        "file(s) of plan's "
        "signing key ('immunizer up' generates them in its state folder)");
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in) {
      c.error("config key 'execute.plan_public_keys': cannot read '" + path + "'");
      continue;
    }
    try {
      (void)crypto::VerifyingKey::from_pem(ss.str());
    } catch (const std::exception& ex) {
      c.error("config key 'execute.plan_public_keys': '" + path + "': " + ex.what());
      continue;
    }
    e.plan_public_keys_pem.push_back(ss.str());
  }
  e.guard_automatic_actions =
      c.get_list("execute.guard.automatic_actions", e.guard_automatic_actions);
  for (const auto& k : e.guard_automatic_actions)
    if (const v1::ActionKind kind = v1::action_kind_from_verb(k);
        kind == v1::ACTION_KIND_UNSPECIFIED || kind == v1::ACTION_LOG ||
        kind == v1::ACTION_ESCALATE || kind == v1::ACTION_WATCH_PRINCIPAL)
      c.error("config key 'execute.guard.automatic_actions': '" + k +
              "' is not one of block, throttle, abort, disable");
  e.guard_automatic_max_ttl_ms =
      c.get_int("execute.guard.automatic_max_ttl_ms",
                std::min(e.guard_automatic_max_ttl_ms, e.max_ttl_ms), 1000, e.max_ttl_ms);
  e.guard_max_automatic_blocks_per_minute =
      c.get_int("execute.guard.max_automatic_blocks_per_minute",
                e.guard_max_automatic_blocks_per_minute, 1, 1'000'000);
  e.guard_breaker_cooldown_ms =
      c.get_int("execute.guard.breaker_cooldown_ms", e.guard_breaker_cooldown_ms, 1000, 86'400'000);
}

}  // namespace immunizer::execute
