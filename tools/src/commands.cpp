#include "immunizer/tools/commands.hpp"

#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include "immunizer/common/kafka.hpp"
#include "immunizer/common/mock_broker.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/tools/plan_keys.hpp"
#include "immunizer/tools/supervisor.hpp"

namespace fs = std::filesystem;

namespace immunizer::tools {

std::string default_datasets() {
  if (const char* e = std::getenv("IMMUNIZER_DATASETS")) return e;
  for (const fs::path& p : {fs::current_path() / "../shared/datasets", fs::path(IMMUNIZER_SOURCE_DIR) / "../shared/datasets"})
    if (fs::exists(p / "csic2010")) return fs::weakly_canonical(p).string();
  return (fs::path(IMMUNIZER_SOURCE_DIR) / "../shared/datasets").string();
}

int broker_command(const BrokerOptions& o) {
  std::atomic<bool> stop{false};
  common::install_stop_signals(stop, "broker");
  const auto topics = common::Topics::with_prefix(o.topic_prefix);
  std::vector<common::TopicSpec> specs;
  for (const auto& t : {topics.calls, topics.features, topics.scores})
    specs.push_back({t, o.partitions});
  for (const auto& t : {topics.alarms, topics.plans, topics.actions, topics.feedback, topics.models, topics.deadletter})
    specs.push_back({t, o.control_partitions});
  try {
    common::MockBroker broker(o.brokers, specs);
    std::cout << "bootstrap=" << broker.bootstrap() << std::endl;
    std::cout << "embedded Kafka-protocol broker (in memory) with " << specs.size() << " topics under '"
              << o.topic_prefix << "'; Ctrl-C stops it" << std::endl;
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } catch (const std::exception& e) {
    std::cerr << "immunizer broker: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

namespace {

std::string self_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path().string();
}

std::string random_key() {
  std::random_device rd;
  std::string s;
  static const char* hex = "0123456789abcdef";
  for (int i = 0; i < 64; ++i) s += hex[rd() & 0xf];
  return s;
}

// The dashboard's operator credentials (one line user:password, 0600) in the state folder,
// made on the first start and reused later, unless the caller gave a file or turned auth off.
// Returns the file, or "" when not ours to make.
std::string dashboard_credentials(std::map<std::string, std::string>& env) {
  static constexpr const char* kVar = "IMMUNIZER_DASHBOARD_CREDENTIALS_FILE";
  if (env.count(kVar) || std::getenv(kVar) || env.count("IMMUNIZER_DASHBOARD_AUTH") ||
      std::getenv("IMMUNIZER_DASHBOARD_AUTH"))
    return "";
  namespace fs = std::filesystem;
  const fs::path dir = fs::absolute(".immunizer");
  const fs::path file = dir / "dashboard.credentials";
  if (!fs::exists(file)) {
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
    const std::string tmp = (dir / "dashboard.credentials.tmp").string();
    {
      std::ofstream out(tmp, std::ios::trunc);
      fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
      out << "operator:" << random_key().substr(0, 32) << "\n";
      if (!out) throw std::runtime_error("cannot write " + tmp);
    }
    fs::rename(tmp, file);
  }
  env[kVar] = file.string();
  return file.string();
}

bool wait_http_ok(int port, const char* path, std::chrono::seconds limit, const std::atomic<bool>& stop) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline && !stop) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(0, 200'000);
    if (auto r = c.Get(path); r && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace

int up_command(const UpOptions& o) {
  std::atomic<bool> stop{false};
  common::install_stop_signals(stop, "immunizer");
  const std::string bin = o.bin_dir.empty() ? self_dir() : o.bin_dir;
  Supervisor sup;
  std::map<std::string, std::string> env = o.env;
  const std::string key = random_key();
  std::unique_ptr<RunPlanKeys> plan_keys;  // before the services start; removed after they stop
  try {
    plan_keys = std::make_unique<RunPlanKeys>(env);
    const std::string credentials = dashboard_credentials(env);
    std::string bootstrap = o.bootstrap;
    if (bootstrap.empty()) {
      // Stopped last (stop_order 0): the services flush and commit to it while they stop.
      bootstrap = sup.spawn_until({.name = "broker",
                                   .path = bin + "/immunizer",
                                   .args = {"broker", "--partitions", std::to_string(o.partitions)},
                                   .stop_order = 0},
                                  "^bootstrap=(.+)$", std::chrono::seconds(15));
    }
    env["IMMUNIZER_KAFKA_BOOTSTRAP"] = bootstrap;
    env["IMMUNIZER_SECURITY_SIGNING_KEY"] = key;  // generated per run; never written to disk
    // CSIC 2010 has one request per session: the demo's learned normal has no returning
    // users, so per-principal behaviour features would flag every returning session.
    if (o.demo && !env.count("IMMUNIZER_MONITOR_PRINCIPAL_FEATURES")) env["IMMUNIZER_MONITOR_PRINCIPAL_FEATURES"] = "false";
    const std::string grpc = "127.0.0.1:" + std::to_string(o.port_base + 5);
    auto with = [&](std::map<std::string, std::string> extra) {
      auto e = env;
      e.insert(extra.begin(), extra.end());
      return e;
    };
    struct Svc {
      const char* name;
      int port;
    };
    const std::vector<Svc> services{{"monitor", o.port_base + 1}, {"analyze", o.port_base + 2},
                                    {"plan", o.port_base + 3}, {"execute", o.port_base + 4},
                                    {"dashboard", o.dashboard_port}};
    for (const auto& s : services) {
      std::map<std::string, std::string> extra{{"IMMUNIZER_HTTP_PORT", std::to_string(s.port)}};
      if (std::string(s.name) == "execute") extra["IMMUNIZER_EXECUTE_GRPC_LISTEN"] = grpc;
      if (std::string(s.name) == "dashboard") extra["IMMUNIZER_DASHBOARD_EXECUTE_ADDRESS"] = grpc;
      sup.spawn({.name = s.name, .path = bin + "/immunizer-" + s.name, .env = with(extra), .stop_order = 1});
    }
    // Ready: state restored from the models topic and consuming (/readyz answers 503 before).
    for (const auto& s : services)
      if (!wait_http_ok(s.port, "/readyz", std::chrono::seconds(90), stop) && !stop)
        throw std::runtime_error(std::string(s.name) + " was not ready (/readyz on port " + std::to_string(s.port) +
                                 ") within 90 s");
    std::cout << "\n  Immunizer is up.  Kafka: " << bootstrap << "\n"
              << "  Dashboard: http://127.0.0.1:" << o.dashboard_port << "/"
              << (credentials.empty() ? std::string()
                                      : "  (sign in with the user:password in " + credentials + ")")
              << "\n";
    if (o.demo) {
      sup.spawn({.name = "shop", .path = bin + "/immunizer-shop",
                 .args = {"--port", std::to_string(o.shop_port)},
                 // The demo shop does almost no work of its own, so the sensor's share of its CPU
                 // is large by construction; record every call rather than sample.
                 .env = with({{"IMMUNIZER_EXECUTE_ADDRESS", grpc}, {"IMMUNIZER_APP", "shop"},
                              {"IMMUNIZER_SENSOR_CPU_BUDGET", "1"}}),
                 .stop_order = 2});
      if (!wait_http_ok(o.shop_port, "/healthz", std::chrono::seconds(30), stop) && !stop)
        throw std::runtime_error("the demo shop did not answer on port " + std::to_string(o.shop_port));
      std::vector<std::string> args{"--target", "http://127.0.0.1:" + std::to_string(o.shop_port),
                                    "--dataset", o.datasets + "/csic2010", "--scenario", "demo",
                                    "--settle-url", "http://127.0.0.1:" + std::to_string(o.port_base + 1) + "/metrics",
                                    "--settle-url", "http://127.0.0.1:" + std::to_string(o.port_base + 2) + "/metrics"};
      args.insert(args.end(), o.replay_args.begin(), o.replay_args.end());
      sup.spawn({.name = "replay", .path = bin + "/immunizer-replay", .args = args, .may_exit = true,
                 .stop_order = 2});
      std::cout << "  Demo shop: http://127.0.0.1:" << o.shop_port << "/tienda1/index.jsp (replaying CSIC 2010 from "
                << o.datasets << "/csic2010)\n";
    }
    std::cout << "  Ctrl-C stops everything.\n" << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "immunizer up: " << e.what() << "\n";
    sup.stop_all(std::chrono::seconds(10));
    return 1;
  }
  auto dead = sup.wait_any(stop);
  int rc = 0;
  if (dead) {
    std::cerr << "\nimmunizer up: " << dead->name << " (pid " << dead->pid << ") " << dead->how
              << "; stopping everything\n";
    rc = 1;
  } else {
    std::cout << "\nstopping: shop, services, broker\n";
  }
  sup.stop_all(std::chrono::seconds(15));
  std::cout << "all stopped" << std::endl;
  return rc;
}

}  // namespace immunizer::tools
