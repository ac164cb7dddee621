// The execute configuration of fuzz_plan and of the plan seeds fuzz_seeds writes for it: gRPC
// on a loopback port of the system's choice, a fixed directive signing key (the key the seeds'
// directive target effector holds, so seeds and target agree on every signature), trusting
// plans signed by the key of `plan_public_pem`. Header-only.
#pragma once

#include <memory>
#include <string>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/execute/config.hpp"

namespace immunizer::fuzz {

inline execute::ExecuteConfig execute_config(const std::string& plan_public_pem) {
  execute::ExecuteConfig cfg;
  cfg.grpc_listen = "127.0.0.1:0";
  cfg.signing_key = std::make_shared<const crypto::SigningKey>(
      crypto::SigningKey::from_pem(R"PEM(-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHDn9OnDLQ25vTNUPskjs1vKX2Q3+gCn9Rz8xqcZ8LVh
-----END PRIVATE KEY-----
)PEM"));
  cfg.plan_public_keys_pem = {plan_public_pem};
  return cfg;
}

}  // namespace immunizer::fuzz
