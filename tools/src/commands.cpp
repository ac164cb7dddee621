#include "immunizer/tools/commands.hpp"

#include <httplib.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include "immunizer/common/kafka.hpp"
#include "immunizer/common/mock_broker.hpp"
#include "immunizer/common/service.hpp"
#include "immunizer/tools/pki.hpp"
#include "immunizer/tools/supervisor.hpp"

namespace fs = std::filesystem;

namespace immunizer::tools {

std::string default_datasets() {
  if (const char* e = std::getenv("IMMUNIZER_DATASETS")) return e;
  for (const fs::path& p : {fs::current_path() / "../shared/datasets",
                            fs::path(IMMUNIZER_SOURCE_DIR) / "../shared/datasets"})
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
  for (const auto& t : {topics.alarms, topics.plans, topics.actions, topics.feedback, topics.models,
                        topics.deadletter})
    specs.push_back({t, o.control_partitions});
  try {
    common::MockBroker broker(o.brokers, specs);
    std::cout << "bootstrap=" << broker.bootstrap() << std::endl;
    std::cout << "embedded Kafka-protocol broker (in memory) with " << specs.size()
              << " topics under '" << o.topic_prefix << "'; Ctrl-C stops it" << std::endl;
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } catch (const std::exception& e) {
    std::cerr << "immunizer broker: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

namespace {

std::string self_dir() { return fs::read_symlink("/proc/self/exe").parent_path().string(); }

bool wait_http_ok(const std::string& host, int port, const char* path, std::chrono::seconds limit,
                  const std::atomic<bool>& stop) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline && !stop) {
    httplib::Client c(host, port);
    c.set_connection_timeout(0, 200'000);
    if (auto r = c.Get(path); r && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : ",") + x;
  return out;
}

}  // namespace

std::map<std::string, std::string> security_env(const std::string& child,
                                                const std::string& state_dir) {
  const pki::Layout l{state_dir};
  std::map<std::string, std::string> e;
  auto tls = [&](const std::string& prefix, common::Role role, const std::string& name) {
    const auto t = l.tls(role, name);
    e[prefix + "CA_FILE"] = t.ca_file;
    e[prefix + "CERT_FILE"] = t.cert_file;
    e[prefix + "KEY_FILE"] = t.key_file;
  };
  if (child == "execute") {
    tls("IMMUNIZER_EXECUTE_TLS_", common::Role::kExecute, "execute");
    e["IMMUNIZER_EXECUTE_DIRECTIVE_SIGNING_KEY_FILE"] = l.signing_key("execute");
    e["IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS"] = join(l.trusted_keys("plan"));
  } else if (child == "plan") {
    e["IMMUNIZER_PLAN_SIGNING_KEY_FILE"] = l.signing_key("plan");
  } else if (child == "dashboard") {
    tls("IMMUNIZER_DASHBOARD_EXECUTE_TLS_", common::Role::kOperator, "dashboard");
    // execute's certificate names localhost and 127.0.0.1, whatever --listen says.
    e["IMMUNIZER_DASHBOARD_EXECUTE_TLS_SERVER_NAME"] = "localhost";
    e["IMMUNIZER_DASHBOARD_CREDENTIALS_FILE"] = l.dashboard_credentials();
  } else if (child == "shop") {
    tls("IMMUNIZER_EFFECTOR_TLS_", common::Role::kEffector, "shop");
    e["IMMUNIZER_EFFECTOR_TLS_SERVER_NAME"] = "localhost";
    e["IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS"] = join(l.trusted_keys("execute"));
  }
  return e;
}

namespace {

using Env = std::map<std::string, std::string>;

// A host for a URL or host:port: an IPv6 address in brackets.
std::string bracket(const std::string& h) {
  return h.find(':') != std::string::npos ? "[" + h + "]" : h;
}

// The demo's children: the shop and the replayer that drives it. `with` gives a child's
// environment (the common one, `extra`, and the child's security settings).
void add_demo_children(UpChildren& c, const UpOptions& o, const std::string& bin,
                       const std::function<Env(Env extra, const std::string& child)>& with) {
  const std::string& host = c.host;
  c.shop = {.name = "shop",
            .path = bin + "/immunizer-shop",
            // The replayer plays many clients from loopback, naming each in X-Forwarded-For.
            .args = {"--listen", o.listen, "--port", std::to_string(o.shop_port), "--trusted-proxy",
                     "127.0.0.1/32"},
            // The demo shop does almost no work of its own, so the sensor's share of its CPU
            // is large by construction; record every call rather than sample.
            .env = with({{"IMMUNIZER_EXECUTE_ADDRESS", c.execute_grpc},
                         {"IMMUNIZER_APP", "shop"},
                         {"IMMUNIZER_SENSOR_CPU_BUDGET", "1"}},
                        "shop"),
            .stop_order = 2};
  const std::string base = "http://" + bracket(host) + ":";
  // Without the CSIC 2010 folder the replayer generates its traffic (README, "Datasets").
  c.csic = fs::exists(fs::path(o.datasets) / "csic2010");
  // It paces itself on monitor's and analyze's consumer lag, and after each round prints the
  // records sent, scored and lost from the shop's and every service's counters.
  std::vector<std::string> args{"--target",     base + std::to_string(o.shop_port),
                                "--scenario",   "demo",
                                "--settle-url", base + std::to_string(o.port_base + 1) + "/metrics",
                                "--settle-url", base + std::to_string(o.port_base + 2) + "/metrics",
                                "--count-url",  base + std::to_string(o.shop_port) + "/metrics"};
  for (size_t i = 2; i < c.service_ports.size(); ++i)
    args.insert(args.end(),
                {"--count-url", base + std::to_string(c.service_ports[i]) + "/metrics"});
  if (c.csic)
    args.insert(args.end(), {"--dataset", o.datasets + "/csic2010"});
  else
    args.push_back("--generate");
  args.insert(args.end(), o.replay_args.begin(), o.replay_args.end());
  c.replay = {.name = "replay",
              .path = bin + "/immunizer-replay",
              .args = args,
              .may_exit = true,
              .stop_order = 2};
}

}  // namespace

UpChildren up_children(const UpOptions& o, const std::string& bootstrap, const std::string& bin) {
  UpChildren c;
  Env env = o.env;
  // Clients (readiness probes, the shop, the replayer) reach the listeners here.
  c.host = (o.listen == "0.0.0.0" || o.listen == "::" || o.listen.empty()) ? "127.0.0.1" : o.listen;
  const std::string& host = c.host;
  env["IMMUNIZER_KAFKA_BOOTSTRAP"] = bootstrap;
  env["IMMUNIZER_HTTP_LISTEN"] = o.listen;
  // CSIC 2010 has one request per session: the demo's learned normal has no returning
  // users, so per-principal behaviour features would flag every returning session.
  if (o.demo && !env.count("IMMUNIZER_MONITOR_PRINCIPAL_FEATURES"))
    env["IMMUNIZER_MONITOR_PRINCIPAL_FEATURES"] = "false";
  const std::string grpc_port = std::to_string(o.port_base + 5);
  c.execute_grpc = bracket(host) + ":" + grpc_port;
  auto with = [&](Env extra, const std::string& child) {
    auto e = env;
    e.insert(extra.begin(), extra.end());
    // --env, or the variable in up's own environment, overrides the state folder's file.
    for (auto& [k, v] : security_env(child, o.state_dir))
      if (!std::getenv(k.c_str())) e.emplace(k, v);
    return e;
  };
  struct Svc {
    const char* name;
    int port;
  };
  const std::vector<Svc> services{{"monitor", o.port_base + 1},
                                  {"analyze", o.port_base + 2},
                                  {"plan", o.port_base + 3},
                                  {"execute", o.port_base + 4},
                                  {"dashboard", o.dashboard_port}};
  for (const auto& s : services) {
    std::map<std::string, std::string> extra{{"IMMUNIZER_HTTP_PORT", std::to_string(s.port)}};
    if (std::string(s.name) == "execute")
      extra["IMMUNIZER_EXECUTE_GRPC_LISTEN"] = bracket(o.listen) + ":" + grpc_port;
    if (std::string(s.name) == "dashboard") {
      extra["IMMUNIZER_DASHBOARD_EXECUTE_ADDRESS"] = c.execute_grpc;
      // The page shows the records the pipeline lost, from every service's counters.
      std::string urls;
      for (const auto& t : services)
        urls += (urls.empty() ? "" : ",") +
                ("http://" + bracket(host) + ":" + std::to_string(t.port) + "/metrics");
      extra["IMMUNIZER_DASHBOARD_PIPELINE_METRICS_URLS"] = urls;
      // The incident history belongs to this stack's state, not to whatever folder `up`
      // was started from (--env or the caller's environment still choose another).
      if (!std::getenv("IMMUNIZER_DASHBOARD_DATA_DIR"))
        extra["IMMUNIZER_DASHBOARD_DATA_DIR"] = o.state_dir + "/dashboard-data";
    }
    c.services.push_back({.name = s.name,
                          .path = bin + "/immunizer-" + s.name,
                          .env = with(extra, s.name),
                          .stop_order = 1});
    c.service_ports.push_back(s.port);
  }
  if (o.demo) add_demo_children(c, o, bin, with);
  return c;
}

int up_command(const UpOptions& o) {
  std::atomic<bool> stop{false};
  common::install_stop_signals(stop, "immunizer");
  const std::string bin = o.bin_dir.empty() ? self_dir() : o.bin_dir;
  Supervisor sup;
  try {
    // The state folder: made on the first start, reused after (nothing is regenerated).
    const pki::Layout layout{o.state_dir};
    const auto created = pki::init(layout);
    if (!created.empty())
      std::cout << "immunizer up: created the local PKI in " << o.state_dir
                << " (CA, certificates, signing keys, "
                << "dashboard credentials)" << std::endl;
    std::string bootstrap = o.bootstrap;
    if (bootstrap.empty()) {
      // Stopped last (stop_order 0): the services flush and commit to it while they stop.
      bootstrap = sup.spawn_until({.name = "broker",
                                   .path = bin + "/immunizer",
                                   .args = {"broker", "--partitions", std::to_string(o.partitions)},
                                   .stop_order = 0},
                                  "^bootstrap=(.+)$", std::chrono::seconds(15));
    }
    const UpChildren children = up_children(o, bootstrap, bin);
    const std::string& host = children.host;
    for (const auto& s : children.services) sup.spawn(s);
    // Ready: state restored from the models topic and consuming (/readyz answers 503 before).
    for (size_t i = 0; i < children.services.size(); ++i)
      if (!wait_http_ok(host, children.service_ports[i], "/readyz", std::chrono::seconds(90),
                        stop) &&
          !stop)
        throw std::runtime_error(children.services[i].name + " was not ready (/readyz on port " +
                                 std::to_string(children.service_ports[i]) + ") within 90 s");
    std::cout << "\n  Immunizer is up.  Kafka: " << bootstrap << "\n"
              << "  Dashboard: http://" << host << ":" << o.dashboard_port << "/\n"
              << "  Dashboard credentials: " << layout.dashboard_credentials()
              << "  (curl -u \"$(cat " << layout.dashboard_credentials() << ")\" ...)\n"
              << "  Certificates and keys: " << o.state_dir << "/tls, " << o.state_dir
              << "/keys (mutual TLS on execute's gRPC at " << children.execute_grpc << ")\n";
    if (o.demo) {
      sup.spawn(children.shop);
      if (!wait_http_ok(host, o.shop_port, "/healthz", std::chrono::seconds(30), stop) && !stop)
        throw std::runtime_error("the demo shop did not answer on port " +
                                 std::to_string(o.shop_port));
      sup.spawn(children.replay);
      std::cout << "  Demo shop: http://" << host << ":" << o.shop_port << "/tienda1/index.jsp ("
                << (children.csic
                        ? "replaying CSIC 2010 from " + o.datasets + "/csic2010"
                        : std::string("generated traffic: no ") + o.datasets + "/csic2010")
                << ")\n";
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
