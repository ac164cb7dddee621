#include "immunizer/common/service.hpp"

#include <pthread.h>
#include <signal.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "immunizer/common/build_info.hpp"

namespace immunizer::common {

void install_stop_signals(std::atomic<bool>& stop, const std::string& name) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, &stop, name]() mutable {
    int sig = 0;
    sigwait(&set, &sig);
    logger(name)->info("received {}, stopping: drain, flush, commit",
                       sig == SIGINT ? "SIGINT" : "SIGTERM");
    stop = true;
    sigwait(&set, &sig);
    logger(name)->warn("second signal, exiting now");
    std::_Exit(130);
  }).detach();
}

void ServiceContext::ready() {
  if (!http) return;
  http->set_status("running");
  http->set_ready(true);
  if (log) log->info("ready");
}

void ServiceContext::starting(const std::string& what) {
  if (!http) return;
  http->set_ready(false);
  http->set_status(what);
}

namespace {

// The flags every service takes.
struct ServiceFlags {
  std::string config_path;
  std::vector<std::string> sets;
  std::string log_level;
  bool check_config = false;
};

// Parses the flags into `f`; an exit code when the process is done (--help, --version, a
// bad flag).
std::optional<int> parse_flags(int argc, char** argv, const std::string& name, ServiceFlags& f) {
  CLI::App app{"immunizer " + name + " service"};
  app.add_option("-c,--config", f.config_path, "YAML configuration file");
  app.add_option("--set", f.sets, "override a key: --set key=value (repeatable)");
  app.add_option("--log-level", f.log_level, "trace, debug, info, warn, error");
  app.set_version_flag("--version", version_line("immunizer-" + name));
  app.add_flag("--check-config", f.check_config,
               "read the configuration as the service would, print every error with its key, exit "
               "(0: valid)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return std::nullopt;
}

// Configuration, logging, Kafka settings, metrics and the HTTP server (not started) into
// `ctx`, then the component's setup, whose body goes to `body`. With --check-config the
// configuration errors are collected in `errors` instead of ending the start-up; otherwise
// an exit code when the service cannot start.
std::optional<int> build_context(ServiceContext& ctx, ServiceFlags& f, int default_http_port,
                                 const ServiceSetup& setup, std::function<void()>& body,
                                 std::vector<std::string>& errors) {
  const std::string& name = ctx.name;
  try {
    if (!f.log_level.empty()) f.sets.push_back("log.level=" + f.log_level);
    ctx.config = Config::load(f.config_path, f.sets);
    if (f.check_config) ctx.config.collect_errors();
    try {
      init_logging(ctx.config.get_string("log.level", "info"));
    } catch (const ConfigError& e) {
      ctx.config.error(e.what());  // a check goes on with the default level
      init_logging("info");
    }
    ctx.log = logger(name);
    ctx.kafka = KafkaSettings::from_config(ctx.config);
    ctx.topics = Topics::with_prefix(ctx.kafka.topic_prefix);
    ctx.registry = std::make_shared<prometheus::Registry>();
    ctx.kafka_metrics = std::make_unique<KafkaMetrics>(*ctx.registry, name);
    // Loopback unless configured: the chart and compose set http.listen=0.0.0.0 explicitly.
    const std::string listen = ctx.config.get_string("http.listen", "127.0.0.1");
    const int port = static_cast<int>(ctx.config.get_int("http.port", default_http_port, 0, 65535));
    ctx.http = std::make_unique<HttpServer>(listen, port, ctx.registry,
                                            HttpLimits::from_config(ctx.config));
    try {
      body = setup(ctx);
    } catch (const ConfigErrorsRecorded&) {
      // Checking mode: the component recorded its errors (Config::stop_if_errors) and built
      // nothing on them.
    } catch (const ConfigError& e) {
      if (!f.check_config) throw;
      errors.push_back(e.what());  // thrown while building: the check stops there
    }
    ctx.config.reject_unknown();
  } catch (const ConfigErrorsRecorded&) {
  } catch (const ConfigError& e) {
    if (!f.check_config) {
      std::cerr << "immunizer-" << name << ": configuration error: " << e.what() << "\n";
      return 2;
    }
    errors.push_back(e.what());
  } catch (const std::exception& e) {
    std::cerr << "immunizer-" << name << ": cannot start: " << e.what() << "\n";
    return 1;
  }
  return std::nullopt;
}

// --check-config: every error with its key, the exit code (0: valid).
int report_config_check(const ServiceContext& ctx, const ServiceFlags& f,
                        std::vector<std::string> errors) {
  const auto& collected = ctx.config.errors();
  errors.insert(errors.begin(), collected.begin(), collected.end());
  const std::string what = f.config_path.empty() ? "configuration" : f.config_path;
  for (const auto& e : errors) std::cout << what << ": " << e << "\n";
  if (errors.empty())
    std::cout << what << ": valid configuration for immunizer-" << ctx.name << "\n";
  else
    std::cout << errors.size() << " error(s)\n";
  return errors.empty() ? 0 : 2;
}

// Starts the HTTP server and the broker watch, runs the body until it returns.
int run_body(ServiceContext& ctx, const std::function<void()>& body) {
  try {
    ctx.http->start();
    ctx.log->info("started; kafka {} (prefix '{}'); metrics and health on http port {}",
                  ctx.kafka.bootstrap, ctx.kafka.topic_prefix, ctx.http->port());
    ctx.starting("starting");
    // Not ready while no broker answers; logged when it changes, in
    // immunizer_kafka_broker_reachable.
    auto& reachable = register_gauge(
        *ctx.registry, "immunizer_kafka_broker_reachable",
        "1 while a Kafka broker answers this service's metadata requests", {{"service", ctx.name}});
    BrokerWatch watch(ctx.kafka, std::chrono::milliseconds(1000),
                      [&ctx, &reachable](bool ok, const std::string& why) {
                        reachable.Set(ok ? 1 : 0);
                        ctx.http->set_broker_reachable(ok, why);
                        if (ok)
                          ctx.log->info("kafka reachable");
                        else
                          ctx.log->error("kafka unreachable ({}); /readyz answers 503", why);
                      });
    body();
    ctx.http->set_ready(false);
    ctx.http->stop();
    ctx.log->info("stopped cleanly");
    return 0;
  } catch (const std::exception& e) {
    ctx.log->critical("failed: {}", e.what());
    return 1;
  }
}

}  // namespace

int run_service(int argc, char** argv, const std::string& name, int default_http_port,
                const ServiceSetup& setup) {
  ServiceFlags flags;
  if (auto rc = parse_flags(argc, argv, name, flags)) return *rc;
  ServiceContext ctx;
  ctx.name = name;
  if (!flags.check_config) install_stop_signals(ctx.stop, name);
  std::function<void()> body;
  std::vector<std::string> errors;
  if (auto rc = build_context(ctx, flags, default_http_port, setup, body, errors)) return *rc;
  if (flags.check_config) return report_config_check(ctx, flags, std::move(errors));
  return run_body(ctx, body);
}

}  // namespace immunizer::common
