// immunizer-shop: the instrumented CSIC 2010 demo shop. Wiring only; see shop.hpp.
// Sensor and effector are configured from IMMUNIZER_* environment variables.
#include <prometheus/registry.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>

#include "immunizer/common/build_info.hpp"
#include "immunizer/common/http_server.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/shop/shop.hpp"

using namespace immunizer;

int main(int argc, char** argv) {
  CLI::App app{"Immunizer demo shop: the CSIC 2010 'tienda1' endpoints, instrumented"};
  std::string listen = "127.0.0.1";
  int port = 8088;
  bool no_sensor = false, no_effector = false;
  std::vector<std::string> trusted_proxies;
  app.set_version_flag("--version", common::version_line("immunizer-shop"));
  app.add_option("--listen", listen, "address to listen on")->capture_default_str();
  app.add_option("--port", port, "port (0: any)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_flag("--no-sensor", no_sensor, "do not record calls (baseline)");
  app.add_flag("--no-effector", no_effector, "do not enforce directives (baseline)");
  app.add_option("--trusted-proxy", trusted_proxies,
                 "CIDR of a proxy whose X-Forwarded-For is honoured (repeatable; adds to "
                 "IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES; "
                 "default: none, the socket peer is the client)");
  CLI11_PARSE(app, argc, argv);

  std::atomic<bool> stop{false};
  common::install_stop_signals(stop, "shop");
  common::init_logging(std::getenv("IMMUNIZER_LOG_LEVEL") ? std::getenv("IMMUNIZER_LOG_LEVEL")
                                                          : "info");
  auto log = common::logger("shop");
  try {
    auto registry = std::make_shared<prometheus::Registry>();
    std::shared_ptr<sensor::Sensor> sensor;
    std::shared_ptr<effector::Effector> effector;
    if (!no_sensor) {
      auto cfg = sensor::SensorConfig::from_env();
      if (!std::getenv("IMMUNIZER_APP")) cfg.app = "shop";
      sensor = sensor::Sensor::create(cfg);
      sensor->bind_metrics(*registry);
    }
    if (!no_effector) {
      auto cfg = effector::EffectorConfig::from_env();
      if (!std::getenv("IMMUNIZER_APP")) cfg.app = "shop";
      effector = effector::Effector::create(cfg);
      effector->bind_metrics(*registry);
      effector->start();
    }
    // Watched principals (after a first alarm) have every call recorded, whatever the sampling.
    if (sensor && effector) sensor->set_watch(&effector::Effector::watch_hook, effector.get());
    shop::ShopOptions opt{.principal = integrations::PrincipalOptions::from_env()};
    auto& proxies = opt.principal.proxies.trusted_proxies;
    proxies.insert(proxies.end(), trusted_proxies.begin(), trusted_proxies.end());
    shop::Shop shop(sensor, effector, opt);
    common::HttpServer http(listen, port, registry);
    shop.install(http.routes());
    http.start();
    http.set_ready(true);
    log->info(
        "shop on http://{}:{}/tienda1/index.jsp (sensor {}, effector {}; trusted proxies: {})",
        listen, http.port(), sensor ? "on" : "off",
        effector ? "on, execute at " + effector->config().execute_address : "off",
        proxies.empty() ? std::string("none") : [&] {
          std::string j;
          for (const auto& c : proxies) j += (j.empty() ? "" : ", ") + c;
          return j;
        }());
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    http.stop();
    if (effector) effector->stop();
    if (sensor) {
      const bool flushed = sensor->flush(std::chrono::seconds(5));
      const auto st = sensor->stats();
      log->info("stopped: {} requests, {} blocked; sensor sent {} records, dropped {}{}",
                shop.counters().requests.load() + shop.blocked(), shop.blocked(), st.sent,
                st.dropped_total(), flushed ? "" : " (flush timed out)");
    }
  } catch (const std::exception& e) {
    std::cerr << "immunizer-shop: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
