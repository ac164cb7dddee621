// Configuration of the execute service (execute.* and security.* keys), with defaults,
// ranges and one reader. Plain value type; read once at start-up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "immunizer/common/config.hpp"
#include "immunizer/common/grpc_tls.hpp"
#include "immunizer/crypto/ed25519.hpp"

namespace immunizer::execute {

struct ExecuteConfig {
  // Address of the gRPC server (EffectorControl + Operations); port 0 picks a free port.
  // Loopback unless configured: deployments set their interface explicitly.
  std::string grpc_listen = "127.0.0.1:7070";
  // Consumer group on <prefix>plans.
  std::string group = "immunizer-execute";
  // Execute's Ed25519 private key, which signs every directive (read from
  // execute.directive_signing_key_file). Required: effectors reject unsigned directives and
  // hold only the public key; the key id goes into every directive.
  std::shared_ptr<const crypto::SigningKey> signing_key;
  // TTL for actions (plans or manual blocks) that carry none, and the longest one allowed.
  int64_t default_ttl_ms = 300'000;
  int64_t max_ttl_ms = 30LL * 24 * 3600 * 1000;
  // Directives queued for one effector that does not read them; beyond it the stream is
  // closed (the effector reconnects and gets a fresh replay).
  size_t effector_queue_limit = 10'000;
  // Action events waiting for the Kafka producer; beyond it new events are dropped and counted.
  size_t event_queue_limit = 100'000;
  // At start-up, how long to wait reading back the active directives a previous run
  // persisted on <prefix>models (0: start empty, which lifts every block after a restart).
  int64_t restore_timeout_ms = 15'000;
  // At start-up (within restore_timeout_ms as well), the last recall_events messages of each
  // partition of <prefix>actions are read back, so that plans the previous run handled but did
  // not commit are not dispatched twice; it must cover the events of one batch of plans
  // (0: not read back).
  int64_t recall_events = 20'000;
  // Mutual TLS of the gRPC server (execute.tls: mtls, the default, or none; execute.tls_ca_file,
  // execute.tls_cert_file, execute.tls_key_file): clients must present a certificate from the
  // CA with an Immunizer identity; effectors may only Connect, operators only call Operations.
  common::TlsFiles tls;

  // Plans are enforced only when signed by one of these Ed25519 public keys (PEM contents,
  // read from the files listed in execute.plan_public_keys; several during a rotation).
  // Required: an unsigned or forged plan is dead-lettered.
  std::vector<std::string> plan_public_keys_pem;
  // Guard policy over automatic plans (Operations requests from an operator are not limited
  // by it): the enforcing kinds they may ask for (block, throttle, abort, disable; disable is
  // off unless listed), the longest TTL they get (longer ones are clamped), and a circuit
  // breaker: more than guard_max_automatic_blocks_per_minute new automatic blocks within a
  // minute stop automatic enforcement for guard_breaker_cooldown_ms (plans are still logged).
  std::vector<std::string> guard_automatic_actions = {"block", "throttle", "abort"};
  int64_t guard_automatic_max_ttl_ms = 3'600'000;
  int64_t guard_max_automatic_blocks_per_minute = 300;
  int64_t guard_breaker_cooldown_ms = 300'000;

  // Throws common::ConfigError naming the key on a bad or missing value (in checking mode:
  // records every error and goes on, common::Config::error).
  static ExecuteConfig from_config(const common::Config& c);
  // The execute.plan_public_keys and execute.guard.* part of from_config.
  static void read_plan_guard(const common::Config& c, ExecuteConfig& e);
};

}  // namespace immunizer::execute
