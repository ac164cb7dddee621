// The `immunizer` CLI's subcommands as functions, so tests drive them like users do.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "immunizer/tools/supervisor.hpp"

namespace immunizer::tools {

struct BrokerOptions {
  int brokers = 1;
  // Partitions of calls, features, scores. The embedded broker keeps at most 5 MiB (of
  // compressed batches) per partition and drops older data, so capacity grows with them: 12
  // hold ~60 MiB per topic, enough that the demo's consumers never fall behind past it.
  int partitions = 12;
  int control_partitions = 1;  // alarms, plans, actions, feedback, models, deadletter
  std::string topic_prefix = "immunizer.";
};
// Runs the embedded broker until SIGINT/SIGTERM; prints "bootstrap=<host:port>" first.
int broker_command(const BrokerOptions& o);

struct UpOptions {
  bool demo = false;
  std::string bin_dir;   // where the service binaries are; default: beside `immunizer`
  std::string datasets;  // csic2010's parent folder, for --demo
  int dashboard_port = 8080;
  int shop_port = 8088;
  int port_base = 9100;   // monitor +1, analyze +2, plan +3, execute +4 (http), +5 (grpc)
  int partitions = 12;    // of the embedded broker (see BrokerOptions)
  std::string bootstrap;  // use this Kafka instead of starting the embedded broker
  std::vector<std::string> replay_args;    // extra arguments for the demo replayer
  std::map<std::string, std::string> env;  // IMMUNIZER_* passed to every child
  // CA, certificates, signing keys and dashboard credentials: made on the first start, reused
  // after.
  std::string state_dir = ".immunizer";
  // Address every listener started by `up` binds (HTTP of each service, execute's gRPC, the shop).
  std::string listen = "127.0.0.1";
};
int up_command(const UpOptions& o);

// What `up` starts once the broker answers at `bootstrap`, each child with the arguments and
// environment `up` gives it: the five services (stop_order 1) and, for --demo, the shop and
// the replayer (stop_order 2). Tests that kill a child restart it from the same spec.
struct UpChildren {
  std::string host;                 // where clients reach the listeners
  std::vector<ChildSpec> services;  // monitor, analyze, plan, execute, dashboard
  std::vector<int> service_ports;   // their HTTP ports (/metrics, /readyz), in that order
  std::string execute_grpc;         // host:port of execute's gRPC (mutual TLS)
  ChildSpec shop, replay;           // --demo only
  bool csic = false;                // the replayer replays CSIC 2010 (else generated traffic)
};
// `bin`: folder of the binaries. The state folder's PKI must exist (pki::init).
UpChildren up_children(const UpOptions& o, const std::string& bootstrap, const std::string& bin);

// The environment `up` gives each child so that it finds its identity and keys in the state
// folder `l` (mutual TLS files, signing keys, trusted public keys, dashboard credentials).
// `child` is "monitor", "analyze", "plan", "execute", "dashboard" or "shop".
std::map<std::string, std::string> security_env(const std::string& child,
                                                const std::string& state_dir);

// Default datasets folder: $IMMUNIZER_DATASETS, else ../shared/datasets from the cwd or
// from the source tree the binary was built from.
std::string default_datasets();

}  // namespace immunizer::tools
