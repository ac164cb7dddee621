// The runtime every service's main() hands itself to: flags (--config, --set, --log-level),
// configuration, logging, the metrics/health endpoint, and graceful SIGTERM/SIGINT
// (stop consuming, drain, flush, commit, exit 0). A second signal exits at once.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "immunizer/common/config.hpp"
#include "immunizer/common/http_server.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/logging.hpp"

namespace immunizer::common {

struct ServiceContext {
  std::string name;  // "monitor", "analyze", ...
  Config config;
  KafkaSettings kafka;
  Topics topics;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<KafkaMetrics> kafka_metrics;  // the service's Kafka counters, on `registry`
  SystemClock clock;
  std::unique_ptr<HttpServer> http;  // started after setup, before the body runs
  std::atomic<bool> stop{false};
  std::shared_ptr<spdlog::logger> log;

  // The body calls this once its state is restored and it is about to consume: /readyz
  // answers 503 ("starting"/"restoring ...") until then, 200 "running" after.
  void ready();
  // A progress line for /readyz while not ready (e.g. "restoring snapshots").
  void starting(const std::string& what);
};

// Reads the component's configuration and builds it (throw ConfigError for bad config),
// returning the body to run; the body returns when ctx.stop is set.
using ServiceSetup = std::function<std::function<void()>(ServiceContext& ctx)>;

// Returns the process exit code: 0 after a clean stop, 2 for bad configuration or flags,
// 1 when the service failed.
int run_service(int argc, char** argv, const std::string& name, int default_http_port,
                const ServiceSetup& setup);

// Blocks SIGINT/SIGTERM in the calling thread (call before starting other threads) and
// starts a thread that sets `stop` on the first signal and exits the process on the second.
void install_stop_signals(std::atomic<bool>& stop, const std::string& name);

}  // namespace immunizer::common
