#include "immunizer/tools/plan_keys.hpp"

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "immunizer/crypto/ed25519.hpp"

namespace fs = std::filesystem;

namespace immunizer::tools {

RunPlanKeys::RunPlanKeys(std::map<std::string, std::string>& env) {
  if (env.count("IMMUNIZER_PLAN_SIGNING_KEY_FILE") ||
      env.count("IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS"))
    return;
  std::string tmpl = (fs::temp_directory_path() / "immunizer-plan-keys-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("cannot create a folder for the plan keys: " + tmpl);
  dir_ = tmpl;
  const auto pair = crypto::generate_ed25519();
  crypto::write_secret_file(dir_ + "/plan.key.pem", pair.private_pem);
  crypto::write_secret_file(dir_ + "/plan.pub.pem", pair.public_pem);
  env["IMMUNIZER_PLAN_SIGNING_KEY_FILE"] = dir_ + "/plan.key.pem";
  env["IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS"] = dir_ + "/plan.pub.pem";
}

RunPlanKeys::~RunPlanKeys() {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

}  // namespace immunizer::tools
