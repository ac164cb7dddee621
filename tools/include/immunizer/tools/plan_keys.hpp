// plan signs every plan and execute trusts only the matching public key. For launchers that
// start both (up, the pipeline bench) without given key files: an Ed25519 key pair made for
// this run in a private temporary folder (0700, files 0600), removed when the object goes.
// Not thread-safe; construct before spawning the services.
#pragma once

#include <map>
#include <string>

namespace immunizer::tools {

class RunPlanKeys {
 public:
  // Sets IMMUNIZER_PLAN_SIGNING_KEY_FILE and IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS in `env`
  // unless either is already there. Throws std::runtime_error when the files cannot be made.
  explicit RunPlanKeys(std::map<std::string, std::string>& env);
  ~RunPlanKeys();
  RunPlanKeys(const RunPlanKeys&) = delete;
  RunPlanKeys& operator=(const RunPlanKeys&) = delete;
  const std::string& dir() const { return dir_; }  // empty when the keys were given

 private:
  std::string dir_;
};

}  // namespace immunizer::tools
