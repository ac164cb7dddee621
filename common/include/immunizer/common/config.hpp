// Configuration for every service: a YAML file, IMMUNIZER_* environment variables and
// --set key=value flags merged into one source (flag > env > file > default). Components
// read typed values with ranges; reject_unknown() then fails on any key nobody read.
// Not thread-safe: build and read it once at start-up.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace immunizer::common {

// Bad configuration: the message names the key and what is wrong with it.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by Config::stop_if_errors() in checking mode: the errors are in Config::errors()
// already, this only stops the component from building anything on them.
class ConfigErrorsRecorded : public ConfigError {
 public:
  ConfigErrorsRecorded() : ConfigError("configuration errors recorded") {}
};

// IMMUNIZER_* variables of the in-app agents that fall in a service namespace (e.g. the
// effector's IMMUNIZER_EXECUTE_ADDRESS); every service accepts them.
const std::set<std::string>& agent_environment_variables();

class Config {
 public:
  // yaml_path may be empty. overrides are "key=value". env_prefix "" disables env lookup.
  static Config load(const std::string& yaml_path, const std::vector<std::string>& overrides,
                     const std::string& env_prefix = "IMMUNIZER_");
  static Config from_map(std::map<std::string, std::string> values,
                         const std::string& env_prefix = "");

  std::string get_string(const std::string& key, const std::string& def) const;
  int64_t get_int(const std::string& key, int64_t def, int64_t min, int64_t max) const;
  double get_double(const std::string& key, double def, double min, double max) const;
  bool get_bool(const std::string& key, bool def) const;
  // One of `allowed`; the error lists them.
  std::string get_enum(const std::string& key, const std::string& def,
                       const std::vector<std::string>& allowed) const;
  // Comma-separated in env/flags, a YAML sequence in the file.
  std::vector<std::string> get_list(const std::string& key,
                                    const std::vector<std::string>& def) const;
  // A secret read from `key`, or from the file named by `key`_file.
  std::string get_secret(const std::string& key) const;

  bool has(const std::string& key) const;
  // Throws ConfigError naming every key given in the file or flags that no getter asked for,
  // and every environment variable in this service's namespaces that names no key it read
  // (with a did-you-mean). A namespace is the first segment of a key read (`monitor.group`
  // -> IMMUNIZER_MONITOR_*); variables outside them belong to other services or to the
  // agents and are left alone, as are agent_environment_variables().
  void reject_unknown() const;
  // The same against a given list of variable names (tests).
  void reject_unknown(const std::vector<std::string>& environment) const;
  static std::vector<std::string> environ_names();

  // The environment variable that overrides `key`: "a.b_c" -> "IMMUNIZER_A_B_C".
  std::string env_name(const std::string& key) const;

  // Checking mode (`--check-config`): a bad value no longer throws; the getter records the
  // error (naming the key) and returns the default, and reject_unknown() records one error
  // per unknown key, so a check can print every error at once.
  void collect_errors() { collect_ = true; }
  const std::vector<std::string>& errors() const { return errors_; }
  // A check a component makes itself (across keys, or of a value no getter can judge):
  // `what` names the key(s). Throws ConfigError, or in checking mode records it and returns,
  // and the component goes on reading its other keys.
  void error(std::string what) const { (void)fail(std::move(what), 0); }
  // In checking mode, once a component has read every key: throws ConfigErrorsRecorded when
  // any error was recorded, so nothing is built on a bad value. A no-op otherwise (outside
  // checking mode the first error has thrown already).
  void stop_if_errors() const {
    if (collect_ && !errors_.empty()) throw ConfigErrorsRecorded();
  }

 private:
  const std::string* lookup(const std::string& key) const;
  std::map<std::string, std::string> values_;  // file + flags, dotted keys
  std::map<std::string, std::string> origin_;  // key -> "file" or "--set"
  std::string env_prefix_;
  mutable std::set<std::string> read_;
  mutable std::map<std::string, std::string> env_cache_;
  bool collect_ = false;
  mutable std::vector<std::string> errors_;
  // Throws ConfigError(what), or in checking mode records it and returns `def`.
  template <class T>
  T fail(std::string what, T def) const {
    if (!collect_) throw ConfigError(what);
    errors_.push_back(std::move(what));
    return def;
  }
};

}  // namespace immunizer::common
