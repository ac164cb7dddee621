// The configuration loader as every service runs it (common::run_service): a YAML file,
// IMMUNIZER_* environment variables and --set flags merged by Config::load, then read by each
// component's from_config and checked by reject_unknown; and the in-app agents' environment
// readers. Input messages by tag: 0 YAML text (appended), 1 one --set flag, 2 one environment
// assignment NAME=VALUE (IMMUNIZER_ is prepended to NAME). Bad configuration must be a
// ConfigError (std::invalid_argument for the agents' from_env), never a crash or another
// exception.
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "fuzz_util.hpp"
#include "immunizer/analyze/processor.hpp"
#include "immunizer/common/config.hpp"
#include "immunizer/dashboard/config.hpp"
#include "immunizer/effector/effector.hpp"
#include "immunizer/execute/config.hpp"
#include "immunizer/monitor/processor.hpp"
#include "immunizer/plan/policy.hpp"

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      "/tmp/immunizer_fuzz_config_" + std::to_string(getpid()) + ".yaml";
  std::string yaml;
  std::vector<std::string> sets, envs;
  for (const auto& f : fuzz::split(data, size, 32)) {
    const std::string s(f.bytes);
    switch (f.tag % 3) {
      case 0:
        yaml += s;
        break;
      case 1:
        sets.push_back(s);
        break;
      default:
        if (s.find('\0') == std::string::npos && s.find('=') != std::string::npos &&
            s.find('=') > 0)
          envs.push_back(s);
    }
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << yaml;
  std::vector<std::string> names;
  for (const auto& e : envs) {
    const auto eq = e.find('=');
    names.push_back("IMMUNIZER_" + e.substr(0, eq));
    setenv(names.back().c_str(), e.substr(eq + 1).c_str(), 1);
  }
  try {
    const auto c = common::Config::load(yaml.empty() ? "" : path, sets);
    (void)c.get_string("log.level", "info");
    (void)common::KafkaSettings::from_config(c);
    (void)c.get_string("http.listen", "0.0.0.0");
    (void)c.get_int("http.port", 9100, 0, 65535);
    (void)monitor::MonitorConfig::from_config(c);
    (void)analyze::AnalyzeConfig::from_config(c);
    (void)plan::PolicyConfig::from_config(c);
    (void)execute::ExecuteConfig::from_config(c);
    (void)dashboard::DashboardConfig::from_config(c);
    c.reject_unknown();
  } catch (const common::ConfigError&) {
  }
  try {
    (void)effector::EffectorConfig::from_env();
  } catch (const std::invalid_argument&) {
  }
  for (const auto& n : names) unsetenv(n.c_str());
  return 0;
}
