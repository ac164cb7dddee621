#include "immunizer/common/config.hpp"

#include "immunizer/agent/env.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

namespace immunizer::common {
namespace {

void flatten(const YAML::Node& node, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      const std::string k = kv.first.as<std::string>();
      flatten(kv.second, prefix.empty() ? k : prefix + "." + k, out);
    }
  } else if (node.IsSequence()) {
    std::string joined;
    for (const auto& item : node) {
      if (!joined.empty()) joined += ",";
      joined += item.as<std::string>();
    }
    out[prefix] = joined;
  } else if (node.IsScalar()) {
    out[prefix] = node.as<std::string>();
  } else if (node.IsNull()) {
    out[prefix] = "";
  }
}

std::string trim(std::string s) {
  auto ws = [](unsigned char c) { return std::isspace(c) != 0; };
  s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), ws));
  s.erase(std::find_if_not(s.rbegin(), s.rend(), ws).base(), s.end());
  return s;
}

// Expands ${VAR} from the environment; an unset variable is an error.
std::string expand_env(const std::string& key, const std::string& v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    if (v.compare(i, 2, "${") == 0) {
      const size_t end = v.find('}', i);
      if (end == std::string::npos)
        throw ConfigError("config key '" + key + "': unterminated ${ in '" + v + "'");
      const std::string name = v.substr(i + 2, end - i - 2);
      const char* e = std::getenv(name.c_str());
      if (e == nullptr)
        throw ConfigError("config key '" + key + "': environment variable " + name + " is not set");
      out += e;
      i = end + 1;
    } else {
      out += v[i++];
    }
  }
  return out;
}

// " (did you mean 'x'?)" for the closest candidate within a third of the name's length.
std::string did_you_mean(const std::string& name, const std::set<std::string>& candidates) {
  const std::string* best =
      agent::closest_match(name, candidates, std::max<size_t>(2, name.size() / 3));
  return best ? " (did you mean '" + *best + "'?)" : "";
}

}  // namespace

// Variables of the in-app agents (sensor, effector) that fall in a service's namespace:
// `immunizer up` gives every child the same environment, so a service accepts these too.
const std::set<std::string>& agent_environment_variables() {
  static const std::set<std::string> kNames{
      "IMMUNIZER_EXECUTE_ADDRESS", "IMMUNIZER_SECURITY_SIGNING_KEY",
      "IMMUNIZER_SECURITY_SIGNING_KEY_FILE", "IMMUNIZER_SECURITY_KEY_ID"};
  return kNames;
}

Config Config::load(const std::string& yaml_path, const std::vector<std::string>& overrides,
                    const std::string& env_prefix) {
  Config c;
  c.env_prefix_ = env_prefix;
  if (!yaml_path.empty()) {
    std::ifstream in(yaml_path);
    if (!in) throw ConfigError("cannot read config file '" + yaml_path + "'");
    YAML::Node root;
    try {
      root = YAML::LoadFile(yaml_path);
    } catch (const YAML::Exception& e) {
      throw ConfigError("config file '" + yaml_path + "': " + e.what());
    }
    if (!root.IsNull() && !root.IsMap())
      throw ConfigError("config file '" + yaml_path + "': top level must be a mapping");
    std::map<std::string, std::string> flat;
    try {
      if (root.IsMap()) flatten(root, "", flat);
    } catch (const YAML::Exception& e) {
      // A key that is itself a mapping or sequence ("? [a]: 1"), a sequence of sequences...
      // (found by fuzz_config: it escaped as a YAML exception, not a configuration error).
      throw ConfigError("config file '" + yaml_path + "': " + e.what() +
                        " (keys must be plain words, list items plain values)");
    }
    for (auto& [k, v] : flat) {
      c.values_[k] = expand_env(k, v);
      c.origin_[k] = yaml_path;
    }
  }
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError("--set '" + o + "': expected key=value");
    const std::string k = trim(o.substr(0, eq));
    c.values_[k] = o.substr(eq + 1);
    c.origin_[k] = "--set";
  }
  return c;
}

Config Config::from_map(std::map<std::string, std::string> values, const std::string& env_prefix) {
  Config c;
  c.env_prefix_ = env_prefix;
  for (auto& [k, v] : values) c.origin_[k] = "map";
  c.values_ = std::move(values);
  return c;
}

std::string Config::env_name(const std::string& key) const {
  std::string n = env_prefix_;
  for (char ch : key)
    n += (ch == '.' || ch == '-') ? '_'
                                  : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return n;
}

const std::string* Config::lookup(const std::string& key) const {
  read_.insert(key);
  // Flags win over environment, which wins over the file.
  auto it = values_.find(key);
  if (it != values_.end() && origin_.at(key) == "--set") return &it->second;
  if (!env_prefix_.empty()) {
    if (const char* e = std::getenv(env_name(key).c_str())) {
      env_cache_[key] = e;
      return &env_cache_[key];
    }
  }
  return it == values_.end() ? nullptr : &it->second;
}

bool Config::has(const std::string& key) const { return lookup(key) != nullptr; }

std::string Config::get_string(const std::string& key, const std::string& def) const {
  const auto* v = lookup(key);
  return v ? *v : def;
}

int64_t Config::get_int(const std::string& key, int64_t def, int64_t min, int64_t max) const {
  const auto* v = lookup(key);
  if (!v) return def;
  long long x = 0;
  if (!agent::parse_strict_int(*v, &x))
    return fail("config key '" + key + "': '" + *v + "' is not a decimal integer", def);
  if (x < min || x > max)
    return fail("config key '" + key + "': " + *v + " is out of range [" + std::to_string(min) +
                    ", " + std::to_string(max) + "]",
                def);
  return x;
}

double Config::get_double(const std::string& key, double def, double min, double max) const {
  const auto* v = lookup(key);
  if (!v) return def;
  double x = 0;
  if (!agent::parse_strict_double(*v, &x))
    return fail("config key '" + key + "': '" + *v + "' is not a decimal number", def);
  if (!(x >= min && x <= max)) {
    std::ostringstream os;
    os << "config key '" << key << "': " << *v << " is out of range [" << min << ", " << max << "]";
    return fail(os.str(), def);
  }
  return x;
}

bool Config::get_bool(const std::string& key, bool def) const {
  const auto* v = lookup(key);
  if (!v) return def;
  std::string s = *v;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return fail("config key '" + key + "': '" + *v + "' is not a boolean (true/false)", def);
}

std::string Config::get_enum(const std::string& key, const std::string& def,
                             const std::vector<std::string>& allowed) const {
  std::string v = get_string(key, def);
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return v;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  return fail("config key '" + key + "': '" + v + "' is not one of: " + list, def);
}

std::vector<std::string> Config::get_list(const std::string& key,
                                          const std::vector<std::string>& def) const {
  const auto* v = lookup(key);
  if (!v) return def;
  std::vector<std::string> out;
  std::stringstream ss(*v);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string Config::get_secret(const std::string& key) const {
  std::string direct = get_string(key, "");
  const std::string file = get_string(key + "_file", "");
  if (!direct.empty() && !file.empty())
    return fail("config keys '" + key + "' and '" + key + "_file' are both set; choose one",
                direct);
  if (file.empty()) return direct;
  std::ifstream in(file);
  if (!in) return fail("config key '" + key + "_file': cannot read '" + file + "'", std::string());
  std::stringstream ss;
  ss << in.rdbuf();
  return trim(ss.str());
}

void Config::reject_unknown() const { reject_unknown(environ_names()); }

std::vector<std::string> Config::environ_names() {
  std::vector<std::string> names;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    names.emplace_back(*e, eq ? static_cast<size_t>(eq - *e) : std::strlen(*e));
  }
  return names;
}

void Config::reject_unknown(const std::vector<std::string>& environment) const {
  std::string unknown;
  auto add = [&](const std::string& what) { unknown += (unknown.empty() ? "" : ", ") + what; };
  for (const auto& [k, v] : values_) {
    if (read_.count(k)) continue;
    const std::string hint = did_you_mean(k, read_);
    add("'" + k + "' (from " + origin_.at(k) + ")" + hint);
    if (collect_)
      errors_.push_back("config key '" + k + "' (from " + origin_.at(k) + "): unknown key" + hint);
  }
  // Environment: only this service's namespaces (the first segment of every key it read,
  // e.g. IMMUNIZER_MONITOR_*, IMMUNIZER_KAFKA_*) are checked, since one environment is shared
  // with the other services and the agents (IMMUNIZER_SENSOR_*, IMMUNIZER_APP, ...).
  if (!env_prefix_.empty()) {
    std::set<std::string> namespaces, known = agent_environment_variables();
    for (const auto& k : read_) {
      known.insert(env_name(k));
      namespaces.insert(env_name(k.substr(0, k.find('.'))) + "_");
    }
    for (const auto& name : environment) {
      if (name.rfind(env_prefix_, 0) != 0 || known.count(name)) continue;
      const bool ours = std::any_of(namespaces.begin(), namespaces.end(),
                                    [&](const std::string& ns) { return name.rfind(ns, 0) == 0; });
      if (!ours) continue;
      const std::string hint = did_you_mean(name, known);
      add("'" + name + "' (from the environment)" + hint);
      if (collect_) errors_.push_back("environment variable '" + name + "': unknown" + hint);
    }
  }
  if (collect_) return;
  if (!unknown.empty()) throw ConfigError("unknown config key(s): " + unknown);
}

}  // namespace immunizer::common
