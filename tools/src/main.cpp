// immunizer: the one-machine launcher (embedded broker, `up [--demo]`), evaluation driver and
// ops CLI (block, unblock, list, topics, status, config check: tools/ops.hpp).
#include <CLI/CLI.hpp>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "immunizer/common/build_info.hpp"
#include "immunizer/tools/commands.hpp"
#include "immunizer/tools/eval.hpp"
#include "immunizer/tools/ops.hpp"
#include "immunizer/tools/pki.hpp"

using namespace immunizer::tools;

namespace {

// --env KEY=VALUE options into `out`; false (after saying which one) on a malformed one.
bool env_assignments(const char* command, const std::vector<std::string>& list,
                     std::map<std::string, std::string>* out) {
  for (const auto& e : list) {
    const auto eq = e.find('=');
    if (eq == std::string::npos) {
      std::cerr << command << ": --env '" << e << "': expected KEY=VALUE\n";
      return false;
    }
    (*out)[e.substr(0, eq)] = e.substr(eq + 1);
  }
  return true;
}

CLI::App* add_broker_command(CLI::App& app, BrokerOptions& b) {
  auto* broker =
      app.add_subcommand("broker", "run the embedded Kafka-protocol broker and print its address");
  broker->add_option("--brokers", b.brokers, "number of brokers")->check(CLI::Range(1, 5));
  broker->add_option("--partitions", b.partitions, "partitions of calls, features, scores")
      ->check(CLI::Range(1, 64));
  broker->add_option("--control-partitions", b.control_partitions, "partitions of the other topics")
      ->check(CLI::Range(1, 64));
  broker->add_option("--topic-prefix", b.topic_prefix, "topic name prefix");
  return broker;
}

CLI::App* add_up_command(CLI::App& app, UpOptions& u, std::vector<std::string>& envs) {
  auto* up = app.add_subcommand(
      "up", "start the broker and all services (and with --demo the shop and replayer)");
  up->add_flag("--demo", u.demo, "also start the demo shop under replayed CSIC 2010 traffic");
  up->add_option("--bin-dir", u.bin_dir,
                 "folder of the immunizer-* binaries (default: beside this one)");
  up->add_option("--datasets", u.datasets, "folder holding csic2010/")->capture_default_str();
  up->add_option("--dashboard-port", u.dashboard_port)->capture_default_str();
  up->add_option("--shop-port", u.shop_port)->capture_default_str();
  up->add_option("--port-base", u.port_base,
                 "monitor +1, analyze +2, plan +3, execute +4, execute gRPC +5")
      ->capture_default_str();
  up->add_option("--partitions", u.partitions)->capture_default_str();
  up->add_option("--bootstrap", u.bootstrap,
                 "use this Kafka cluster instead of the embedded broker");
  up->add_option("--env", envs,
                 "KEY=VALUE for every child, e.g. IMMUNIZER_ANALYZE_GRACE_RECORDS=300");
  up->add_option("--replay-arg", u.replay_args,
                 "extra argument for the demo replayer (repeatable)");
  up->add_option("--state-dir", u.state_dir,
                 "CA, certificates, keys and dashboard credentials (made on first start)")
      ->capture_default_str();
  up->add_option("--listen", u.listen, "address every listener binds (0.0.0.0: all interfaces)")
      ->capture_default_str();
  return up;
}

struct PkiCommands {
  CLI::App *pki, *init, *issue;
};

PkiCommands add_pki_command(CLI::App& app, pki::PkiOptions& pk) {
  auto* pki_cmd = app.add_subcommand(
      "pki", "local PKI: CA, service certificates, signing keys, dashboard credentials");
  pki_cmd->require_subcommand(1);
  pki_cmd
      ->add_option("--state-dir", pk.state_dir, "folder holding tls/, keys/, dashboard.credentials")
      ->capture_default_str();
  auto* pki_init = pki_cmd->add_subcommand("init", "make whatever is missing (kept when present)");
  pki_init->add_option("--effector", pk.effectors, "effector identities (app or app/instance)")
      ->capture_default_str();
  pki_init->add_option("--dns", pk.dns, "extra DNS name of execute's certificate (repeatable)");
  pki_init->add_option("--ip", pk.ips, "extra IP address of execute's certificate (repeatable)");
  auto* pki_issue =
      pki_cmd->add_subcommand("issue", "issue (or re-issue) a certificate from the CA");
  pki_issue->add_option("role", pk.role, "effector, operator, execute or plan")->required();
  pki_issue->add_option("name", pk.name, "e.g. shop, shop/pod-1, dashboard, alice")->required();
  pki_issue->add_option("--dns", pk.dns, "DNS name (repeatable)");
  pki_issue->add_option("--ip", pk.ips, "IP address (repeatable)");
  auto* pki_rotate = pki_cmd->add_subcommand(
      "rotate", "new signing keys and certificates; the previous stay trusted");
  pki_rotate->add_flag("--ca", pk.ca, "also a new CA (the bundle trusts the old and the new)");
  pki_rotate->add_flag("--finish", pk.finish, "end the overlap: drop the previous keys and CA");
  return {pki_cmd, pki_init, pki_issue};
}

CLI::App* add_eval_csic_command(CLI::App& app, EvalOptions& ev,
                                std::vector<std::string>& eval_envs) {
  auto* eval = app.add_subcommand("eval", "evaluate detection through the live pipeline");
  eval->require_subcommand(1);
  auto* eval_csic = eval->add_subcommand(
      "csic", "CSIC 2010: train on one file, score normal + anomalous test requests");
  eval_csic
      ->add_option("--training", ev.training,
                   "training requests (CSIC 2010 format, .txt or .txt.gz)")
      ->required()
      ->check(CLI::ExistingFile);
  eval_csic->add_option("--normal", ev.normal, "normal test requests")
      ->required()
      ->check(CLI::ExistingFile);
  eval_csic->add_option("--anomalous", ev.anomalous, "anomalous test requests")
      ->required()
      ->check(CLI::ExistingFile);
  eval_csic->add_option("--json", ev.json_out, "write the figures and every request's score here");
  eval_csic->add_option("--bootstrap", ev.bootstrap,
                        "use this Kafka cluster instead of an embedded broker");
  eval_csic->add_flag("--keep-running", ev.keep_running,
                      "keep the stack up after the report until Ctrl-C");
  eval_csic->add_option("--bin-dir", ev.bin_dir,
                        "folder of the immunizer-* binaries (default: beside this one)");
  eval_csic->add_option("--training-count", ev.training_count, "first N training requests (0: all)")
      ->capture_default_str();
  eval_csic
      ->add_option("--test-count", ev.test_count, "first N requests of each test file (0: all)")
      ->capture_default_str();
  eval_csic->add_option("--concurrency", ev.concurrency, "replay connections")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  eval_csic->add_option("--rate", ev.rate, "requests per second (0: as fast as the shop answers)")
      ->capture_default_str();
  eval_csic
      ->add_option("--time-limit", ev.time_limit_seconds, "seconds before the run stops itself")
      ->check(CLI::Range(10, 86400))
      ->capture_default_str();
  eval_csic
      ->add_option("--stall", ev.stall_seconds,
                   "seconds without a new score before giving up waiting")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  eval_csic
      ->add_option("--max-lag", ev.max_lag,
                   "replay waits while more records than this are not yet scored")
      ->check(CLI::Range(100, 10000000))
      ->capture_default_str();
  eval_csic->add_option("--env", eval_envs,
                        "KEY=VALUE for every service, e.g. IMMUNIZER_ANALYZE_RISK=0.001");
  return eval_csic;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Immunizer: self-protecting applications. Runs the MAPE-K loop on one machine."};
  app.set_version_flag("--version", immunizer::common::version_line("immunizer"));
  app.require_subcommand(1);
  BrokerOptions b;
  auto* broker = add_broker_command(app, b);
  UpOptions u;
  u.datasets = default_datasets();
  std::vector<std::string> envs;
  auto* up = add_up_command(app, u, envs);
  pki::PkiOptions pk;
  const PkiCommands pki = add_pki_command(app, pk);
  EvalOptions ev;
  std::vector<std::string> eval_envs;
  auto* eval_csic = add_eval_csic_command(app, ev, eval_envs);
  const OpsCommands ops = add_ops_commands(app);

  CLI11_PARSE(app, argc, argv);
  if (const auto rc = run_ops_command(ops, std::cout, std::cerr)) return *rc;
  if (eval_csic->parsed()) {
    if (!env_assignments("immunizer eval csic", eval_envs, &ev.env)) return 2;
    return eval_csic_command(ev);
  }
  if (broker->parsed()) return broker_command(b);
  if (pki.pki->parsed()) {
    pk.action = pki.init->parsed() ? "init" : pki.issue->parsed() ? "issue" : "rotate";
    return pki::pki_command(pk);
  }
  if (up->parsed()) {
    if (!env_assignments("immunizer up", envs, &u.env)) return 2;
    return up_command(u);
  }
  return 2;
}
