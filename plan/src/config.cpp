#include "immunizer/plan/config.hpp"

namespace immunizer::plan {

PlanConfig PlanConfig::from_config(const common::Config& c) {
  PlanConfig p;
  p.policy = PolicyConfig::from_config(c);
  p.group = c.get_string("plan.group", p.group);
  p.signing_key_file = c.get_string("plan.signing_key_file", "");
  if (p.signing_key_file.empty()) {
    c.error(
        "config key 'plan.signing_key_file' is empty: plan signs every plan with an Ed25519 key "
        "and execute "
        "refuses unsigned plans; set plan.signing_key_file (IMMUNIZER_PLAN_SIGNING_KEY_FILE) to "
        "a PKCS#8 PEM "
        "private key ('immunizer up' generates one in its state folder)");
    return p;
  }
  try {
    p.signing_key =
        std::make_shared<const crypto::SigningKey>(crypto::SigningKey::load(p.signing_key_file));
  } catch (const std::exception& e) {
    c.error(std::string("config key 'plan.signing_key_file': ") + e.what());
  }
  return p;
}

}  // namespace immunizer::plan
