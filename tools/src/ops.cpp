#include "immunizer/tools/ops.hpp"

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>

#include "immunizer/common/grpc_tls.hpp"
#include "immunizer/v1/control.grpc.pb.h"
#include "immunizer/v1/names.hpp"

namespace fs = std::filesystem;

namespace immunizer::tools {

namespace {

std::string env_or(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : def;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<v1::Operations::Stub> operations_stub(const OpsOptions& o) {
  common::TlsFiles tls;
  tls.enabled = !(o.tls_ca_file.empty() && o.tls_cert_file.empty() && o.tls_key_file.empty());
  tls.ca_file = o.tls_ca_file;
  tls.cert_file = o.tls_cert_file;
  tls.key_file = o.tls_key_file;
  return v1::Operations::NewStub(grpc::CreateChannel(
      o.execute, common::client_credentials(tls, "immunizer: --tls-ca/--tls-cert/--tls-key")));
}

// One Operations RPC on a fresh stub, within the command's deadline.
template <typename Request, typename Response>
grpc::Status call(const OpsOptions& o,
                  grpc::Status (v1::Operations::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                            Response*),
                  const Request& req, Response* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.timeout_ms));
  return (*operations_stub(o).*rpc)(&ctx, req, resp);
}

int report(const grpc::Status& s, const OpsOptions& o, std::ostream& err) {
  err << "immunizer: execute at " << o.execute << ": " << s.error_message() << " (gRPC code "
      << s.error_code() << ")\n";
  return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? 2 : 1;
}

std::string field_name(v1::PrincipalField f) {
  const auto n = v1::name_of(f);
  return n.empty() ? "-" : std::string(n);
}

std::string kind_name(v1::ActionKind k) { return std::string(v1::name_of(k)); }

std::string format_time(int64_t unix_nanos) {
  if (unix_nanos <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_nanos / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::ostringstream os;
  os << std::put_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
  return os.str();
}

// A Prometheus text exposition: the sum of every sample of each metric name.
std::map<std::string, double> metric_sums(const std::string& text) {
  std::map<std::string, double> sums;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto name_end = line.find_first_of("{ ");
    if (name_end == std::string::npos) continue;
    const auto value_start = line.rfind(' ');
    if (value_start == std::string::npos || value_start < name_end) continue;
    try {
      sums[line.substr(0, name_end)] += std::stod(line.substr(value_start + 1));
    } catch (const std::exception&) {
      // a malformed sample is skipped: status reports what it can read
    }
  }
  return sums;
}

}  // namespace

int block_command(const OpsOptions& o, std::ostream& out, std::ostream& err) {
  v1::BlockRequest req;
  const int given = !o.user.empty() + !o.session.empty() + !o.ip.empty() + !o.prefix.empty();
  if (given != 1) {
    err << "immunizer block: give exactly one of --user, --session, --ip, --prefix\n";
    return 2;
  }
  if (!o.user.empty()) req.set_field(v1::PRINCIPAL_FIELD_USER), req.set_value(o.user);
  if (!o.session.empty()) req.set_field(v1::PRINCIPAL_FIELD_SESSION), req.set_value(o.session);
  if (!o.ip.empty()) req.set_field(v1::PRINCIPAL_FIELD_IP), req.set_value(o.ip);
  if (!o.prefix.empty()) req.set_field(v1::PRINCIPAL_FIELD_IP_PREFIX), req.set_value(o.prefix);
  req.set_ttl_millis(o.ttl_ms);
  req.set_reason(o.reason);
  req.set_call(o.call);
  v1::BlockResponse resp;
  const auto s = call(o, &v1::Operations::Stub::Block, req, &resp);
  if (!s.ok()) return report(s, o, err);
  out << resp.action_id() << "\n";
  return 0;
}

int unblock_command(const OpsOptions& o, std::ostream& out, std::ostream& err) {
  v1::UnblockRequest req;
  req.set_action_id(o.action_id);
  v1::UnblockResponse resp;
  const auto s = call(o, &v1::Operations::Stub::Unblock, req, &resp);
  if (!s.ok()) return report(s, o, err);
  if (!resp.found()) {
    err << "immunizer unblock: no active action " << o.action_id << "\n";
    return 1;
  }
  out << "lifted " << o.action_id << "\n";
  return 0;
}

int list_command(const OpsOptions& o, std::ostream& out, std::ostream& err) {
  v1::ListActiveResponse resp;
  const auto s = call(o, &v1::Operations::Stub::ListActive, v1::ListActiveRequest{}, &resp);
  if (!s.ok()) return report(s, o, err);
  out << resp.actions_size() << " active action(s)\n";
  for (const auto& a : resp.actions()) {
    out << "  " << a.action().id() << "  " << kind_name(a.action().kind()) << " "
        << field_name(a.action().target_field()) << "=" << a.action().target_value();
    if (!a.action().call().empty()) out << " call=" << a.action().call();
    out << "  expires " << format_time(a.expires_unix_nanos()) << "  acks " << a.acks();
    if (!a.plan_id().empty()) out << "  plan " << a.plan_id();
    out << "\n";
  }
  out << resp.effectors_size() << " effector(s) connected\n";
  for (const auto& e : resp.effectors())
    out << "  " << e.app() << "/" << e.instance() << "  version "
        << (e.version().empty() ? "?" : e.version()) << "\n";
  return 0;
}

int topics_command(const OpsOptions& o, std::ostream& out, std::ostream& err) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", o.bootstrap.c_str(), errstr, sizeof errstr) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    err << "immunizer topics: " << errstr << "\n";
    return 2;
  }
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    err << "immunizer topics: " << errstr << "\n";
    return 1;
  }
  const rd_kafka_metadata_t* md = nullptr;
  const auto rc = rd_kafka_metadata(rk, 1, nullptr, &md, o.timeout_ms);
  if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
    err << "immunizer topics: Kafka at " << o.bootstrap << ": " << rd_kafka_err2str(rc) << "\n";
    rd_kafka_destroy(rk);
    return 1;
  }
  std::map<std::string, const rd_kafka_metadata_topic_t*> topics;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const std::string name = md->topics[i].topic;
    if (name.rfind(o.topic_prefix, 0) == 0) topics[name] = &md->topics[i];
  }
  int status = 0;
  out << std::left << std::setw(32) << "topic" << std::right << std::setw(11) << "partitions"
      << std::setw(14) << "messages" << std::setw(14) << "end offset"
      << "\n";
  for (const auto& [name, t] : topics) {
    int64_t messages = 0, end = 0;
    bool ok = t->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int p = 0; ok && p < t->partition_cnt; ++p) {
      int64_t lo = 0, hi = 0;
      if (rd_kafka_query_watermark_offsets(rk, name.c_str(), t->partitions[p].id, &lo, &hi,
                                           o.timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ok = false;
        break;
      }
      messages += hi - lo;
      end += hi;
    }
    out << std::left << std::setw(32) << name << std::right << std::setw(11) << t->partition_cnt;
    if (ok) {
      out << std::setw(14) << messages << std::setw(14) << end << "\n";
    } else {
      out << std::setw(28) << "unavailable"
          << "\n";
      status = 1;
    }
  }
  if (topics.empty()) {
    err << "immunizer topics: no topic starts with '" << o.topic_prefix << "' on " << o.bootstrap
        << "\n";
    status = 1;
  }
  rd_kafka_metadata_destroy(md);
  rd_kafka_destroy(rk);
  return status;
}

int status_command(const OpsOptions& o, std::ostream& out, std::ostream& err) {
  std::vector<std::pair<std::string, std::string>> services;
  if (o.services.empty()) {
    services = {{"monitor", "http://127.0.0.1:9101"},
                {"analyze", "http://127.0.0.1:9102"},
                {"plan", "http://127.0.0.1:9103"},
                {"execute", "http://127.0.0.1:9104"},
                {"dashboard", "http://127.0.0.1:8080"}};
  } else {
    for (const auto& s : o.services) {
      const auto eq = s.find('=');
      if (eq == std::string::npos || eq == 0) {
        err << "immunizer status: --service '" << s << "': expected NAME=URL\n";
        return 2;
      }
      services.emplace_back(s.substr(0, eq), s.substr(eq + 1));
    }
  }
  int status = 0;
  for (const auto& [name, url] : services) {
    httplib::Client client(url);
    client.set_connection_timeout(std::chrono::milliseconds(o.timeout_ms));
    client.set_read_timeout(std::chrono::milliseconds(o.timeout_ms));
    auto ready = client.Get("/readyz");
    if (!ready) {
      out << std::left << std::setw(10) << name << " unreachable at " << url << " ("
          << httplib::to_string(ready.error()) << ")\n";
      status = 1;
      continue;
    }
    std::string why = ready->body;
    while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
    out << std::left << std::setw(10) << name << " "
        << (ready->status == 200 ? "ready" : "NOT READY") << " (" << why << ")";
    if (ready->status != 200) status = 1;
    auto metrics = client.Get("/metrics");
    if (!metrics || metrics->status != 200) {
      out << "  metrics unavailable\n";
      status = 1;
      continue;
    }
    const auto sums = metric_sums(metrics->body);
    auto value = [&](const std::string& m) {
      auto it = sums.find(m);
      return it == sums.end() ? 0.0 : it->second;
    };
    out << "  lag " << static_cast<int64_t>(value("immunizer_kafka_consumer_lag"));
    // Everything counted as lost or dropped, by metric.
    for (const auto& [m, v] : sums) {
      if (m == "immunizer_deadletters_total" || m.find("dropped") != std::string::npos ||
          m.find("lost") != std::string::npos || m.find("rejected") != std::string::npos)
        out << "  " << m << " " << static_cast<int64_t>(v);
    }
    const auto version = metrics->body.find("immunizer_build_info{");
    if (version != std::string::npos) {
      const auto v = metrics->body.find("version=\"", version);
      if (v != std::string::npos)
        out << "  version " << metrics->body.substr(v + 9, metrics->body.find('"', v + 9) - v - 9);
    }
    out << "\n";
  }
  return status;
}

int config_check_command(const OpsOptions& o, std::ostream& out, std::ostream& err) {
  std::string service = o.service;
  if (service.empty()) {
    // The service is the one whose section the file has.
    std::ifstream in(o.config_file);
    if (!in) {
      err << "immunizer config check: cannot read '" << o.config_file << "'\n";
      return 2;
    }
    std::string line, found;
    while (std::getline(in, line)) {
      for (const char* s : {"monitor", "analyze", "plan", "execute", "dashboard"})
        if (line.rfind(std::string(s) + ":", 0) == 0)
          found = found.empty() || found == s ? s : "ambiguous";
    }
    if (found.empty() || found == "ambiguous") {
      err << "immunizer config check: cannot tell which service '" << o.config_file
          << "' configures; give --service monitor|analyze|plan|execute|dashboard\n";
      return 2;
    }
    service = found;
  }
  const std::string dir =
      o.bin_dir.empty() ? fs::read_symlink("/proc/self/exe").parent_path().string() : o.bin_dir;
  const std::string bin = dir + "/immunizer-" + service;
  if (::access(bin.c_str(), X_OK) != 0) {
    err << "immunizer config check: no service binary " << bin << "\n";
    return 2;
  }
  // The service reads every key with its own code and reports every error; it does not start.
  const std::string cmd = "'" + bin + "' --config '" + o.config_file + "' --check-config 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    err << "immunizer config check: cannot run " << bin << "\n";
    return 1;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.write(buf, static_cast<std::streamsize>(n));
  const int rc = ::pclose(p);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

OpsCommands add_ops_commands(CLI::App& app) {
  OpsCommands c;
  c.options = std::make_shared<OpsOptions>();
  auto& o = *c.options;
  o.execute = env_or("IMMUNIZER_EXECUTE_ADDRESS", o.execute);
  // The operator certificate `immunizer up` / `immunizer pki init` made, when run beside it.
  o.tls_ca_file = env_or(
      "IMMUNIZER_OPS_TLS_CA_FILE",
      std::filesystem::exists(".immunizer/tls/operator-cli.crt") ? ".immunizer/tls/ca.crt" : "");
  o.tls_cert_file = env_or("IMMUNIZER_OPS_TLS_CERT_FILE",
                           std::filesystem::exists(".immunizer/tls/operator-cli.crt")
                               ? ".immunizer/tls/operator-cli.crt"
                               : "");
  o.tls_key_file = env_or("IMMUNIZER_OPS_TLS_KEY_FILE",
                          std::filesystem::exists(".immunizer/tls/operator-cli.key")
                              ? ".immunizer/tls/operator-cli.key"
                              : "");
  o.bootstrap = env_or("IMMUNIZER_KAFKA_BOOTSTRAP", o.bootstrap);
  o.topic_prefix = env_or("IMMUNIZER_KAFKA_TOPIC_PREFIX", o.topic_prefix);
  auto grpc_options = [&o](CLI::App* sub) {
    sub->add_option("--execute", o.execute, "execute's gRPC host:port ($IMMUNIZER_EXECUTE_ADDRESS)")
        ->capture_default_str();
    sub->add_option("--tls-ca", o.tls_ca_file,
                    "CA bundle of execute's certificate ($IMMUNIZER_OPS_TLS_CA_FILE; default "
                    ".immunizer/tls/ca.crt if present)");
    sub->add_option("--tls-cert", o.tls_cert_file,
                    "operator certificate ($IMMUNIZER_OPS_TLS_CERT_FILE; default "
                    ".immunizer/tls/operator-cli.crt)");
    sub->add_option("--tls-key", o.tls_key_file, "its key ($IMMUNIZER_OPS_TLS_KEY_FILE)");
    sub->add_option("--timeout-ms", o.timeout_ms, "deadline of the call")
        ->check(CLI::Range(1, 600000))
        ->capture_default_str();
  };
  c.block = app.add_subcommand(
      "block", "block a principal now (execute's Operations.Block); prints the action id");
  c.block->add_option("--user", o.user, "principal user");
  c.block->add_option("--session", o.session, "principal session");
  c.block->add_option("--ip", o.ip, "principal address");
  c.block->add_option("--prefix", o.prefix, "a network, in canonical CIDR (198.51.100.0/24)");
  c.block->add_option("--call", o.call, "only this call (default: every call)");
  c.block->add_option("--ttl-ms", o.ttl_ms, "how long (0: execute's default)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  c.block->add_option("--reason", o.reason, "recorded in the audit trail")->capture_default_str();
  grpc_options(c.block);
  c.unblock = app.add_subcommand("unblock", "lift an active action (Operations.Unblock)");
  c.unblock->add_option("action_id", o.action_id, "as printed by block or list")->required();
  grpc_options(c.unblock);
  c.list =
      app.add_subcommand("list", "active actions and connected effectors (Operations.ListActive)");
  grpc_options(c.list);
  c.topics = app.add_subcommand("topics", "the pipeline's Kafka topics: partitions and messages");
  c.topics->add_option("--bootstrap", o.bootstrap, "Kafka ($IMMUNIZER_KAFKA_BOOTSTRAP)")
      ->capture_default_str();
  c.topics->add_option("--topic-prefix", o.topic_prefix)->capture_default_str();
  c.topics->add_option("--timeout-ms", o.timeout_ms)
      ->check(CLI::Range(1, 600000))
      ->capture_default_str();
  c.status =
      app.add_subcommand("status", "each service's readiness, consumer lag and loss counters");
  c.status->add_option(
      "--service", o.services,
      "NAME=URL of a service's HTTP port (repeatable; default: the ports of `immunizer up`)");
  c.status->add_option("--timeout-ms", o.timeout_ms)
      ->check(CLI::Range(1, 600000))
      ->capture_default_str();
  c.config = app.add_subcommand("config", "configuration files");
  c.config->require_subcommand(1);
  c.config_check = c.config->add_subcommand(
      "check", "validate a service configuration; prints every error with its key");
  c.config_check->add_option("file", o.config_file, "YAML configuration")->required();
  c.config_check
      ->add_option("--service", o.service,
                   "monitor|analyze|plan|execute|dashboard (default: from the file)")
      ->check(CLI::IsMember({"monitor", "analyze", "plan", "execute", "dashboard"}));
  c.config_check->add_option("--bin-dir", o.bin_dir,
                             "folder of the immunizer-* binaries (default: beside this one)");
  return c;
}

std::optional<int> run_ops_command(const OpsCommands& c, std::ostream& out, std::ostream& err) {
  const auto& o = *c.options;
  try {
    if (c.block->parsed()) return block_command(o, out, err);
    if (c.unblock->parsed()) return unblock_command(o, out, err);
    if (c.list->parsed()) return list_command(o, out, err);
    if (c.topics->parsed()) return topics_command(o, out, err);
    if (c.status->parsed()) return status_command(o, out, err);
    if (c.config_check->parsed()) return config_check_command(o, out, err);
  } catch (const std::exception& e) {
    err << "immunizer: " << e.what() << "\n";
    return 1;
  }
  return std::nullopt;
}

}  // namespace immunizer::tools
