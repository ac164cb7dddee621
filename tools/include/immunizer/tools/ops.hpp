// The ops subcommands of the `immunizer` CLI: block, unblock, list (execute's Operations
// gRPC service), topics (Kafka), status (each service's /readyz and /metrics) and
// config check (a service validates a configuration file without starting).
// add_ops_commands() declares them on the CLI; run_ops_command() runs the one parsed.
// Output goes to the given streams so tests can read it. Not thread-safe (CLI use).
#pragma once

#include <CLI/CLI.hpp>

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace immunizer::tools {

struct OpsOptions {
  // Operations
  std::string execute = "127.0.0.1:7070";  // IMMUNIZER_EXECUTE_ADDRESS when set
  int timeout_ms = 5000;
  std::string tls_ca_file;    // mutual TLS to execute: CA bundle, and an operator
  std::string tls_cert_file;  // certificate (spiffe://immunizer/operator/<name>)
  std::string tls_key_file;   // and its key; all empty: plaintext (execute refuses it
                              // unless it runs with execute.tls=none)
  std::string user, session, ip, prefix, call, reason = "manual block (immunizer block)";
  int64_t ttl_ms = 0;  // 0: execute's default
  std::string action_id;
  // Kafka
  std::string bootstrap = "127.0.0.1:9092";  // IMMUNIZER_KAFKA_BOOTSTRAP when set
  std::string topic_prefix = "immunizer.";
  // status: name=url pairs; empty: the local defaults of `immunizer up`
  std::vector<std::string> services;
  // config check
  std::string config_file, service, bin_dir;
};

struct OpsCommands {
  std::shared_ptr<OpsOptions> options;
  CLI::App *block = nullptr, *unblock = nullptr, *list = nullptr, *topics = nullptr,
           *status = nullptr, *config = nullptr, *config_check = nullptr;
};

OpsCommands add_ops_commands(CLI::App& app);
// The exit code of the ops subcommand that was parsed, or nullopt when none was.
std::optional<int> run_ops_command(const OpsCommands& c, std::ostream& out, std::ostream& err);

// Each command alone (exit code: 0 ok, 1 failed, 2 bad usage or invalid configuration).
int block_command(const OpsOptions& o, std::ostream& out, std::ostream& err);
int unblock_command(const OpsOptions& o, std::ostream& out, std::ostream& err);
int list_command(const OpsOptions& o, std::ostream& out, std::ostream& err);
int topics_command(const OpsOptions& o, std::ostream& out, std::ostream& err);
int status_command(const OpsOptions& o, std::ostream& out, std::ostream& err);
int config_check_command(const OpsOptions& o, std::ostream& out, std::ostream& err);

}  // namespace immunizer::tools
