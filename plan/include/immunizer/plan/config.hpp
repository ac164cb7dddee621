// Settings of the plan service (plan.* keys): the policy, the consumer group and the key
// every plan is signed with. Read and checked once at start-up; copy freely.
#pragma once

#include <memory>
#include <string>

#include "immunizer/common/config.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/plan/policy.hpp"

namespace immunizer::plan {

struct PlanConfig {
  PolicyConfig policy;
  std::string group = "immunizer-plan";
  // plan's Ed25519 private key (plan.signing_key_file, PKCS#8 PEM): every plan is signed and
  // execute trusts only the public keys it is given. Required.
  std::string signing_key_file;
  std::shared_ptr<const crypto::SigningKey> signing_key;

  // Throws common::ConfigError naming the key on a bad or missing value or an unreadable key
  // (in checking mode: records every error and goes on, common::Config::error).
  static PlanConfig from_config(const common::Config& c);
};

}  // namespace immunizer::plan
