// The whole MAPE-K loop on one machine, as `make demo` runs it: `immunizer up --demo` with
// one round of the replayer (CSIC 2010 training traffic, a mix of normal and attack
// requests, then an attacker session next to a bystander session). Checks what a user
// watches: alarms for attack requests in the dashboard's API, the attacker answered 403
// within a bounded time, the bystander answered 200 throughout, and a clean Ctrl-C.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "immunizer/common/grpc_tls.hpp"
#include "immunizer/tools/pki.hpp"
#include "immunizer/tools/supervisor.hpp"
#include "immunizer/v1/control.grpc.pb.h"
#include "ports.hpp"

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
int free_base() { return immunizer::e2e::free_base(7); }  // services, gRPC, dashboard, shop

// user:password from the credentials file `up` generated (HTTP Basic for the dashboard's API).
std::pair<std::string, std::string> credentials(const std::string& state) {
  std::ifstream in(state + "/dashboard.credentials");
  std::string line;
  std::getline(in, line);
  const auto colon = line.find(':');
  if (colon == std::string::npos) return {};
  return {line.substr(0, colon), line.substr(colon + 1)};
}

std::string g_state;  // the state folder of this run

json get_json(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(5);
  if (const auto [u, p] = credentials(g_state); !u.empty()) c.set_basic_auth(u, p);
  auto r = c.Get(path.c_str());
  if (!r || r->status != 200) return json();
  return json::parse(r->body, nullptr, false);
}
}  // namespace

TEST(EndToEnd, AttackRaisesAlarmsAttackerGets403BystanderKeeps200) {
  const std::string bin = IMMUNIZER_BIN_DIR;
  const std::string datasets = IMMUNIZER_DATASETS;
  if (!fs::exists(datasets + "/csic2010/normalTrafficTraining.txt.gz"))
    GTEST_SKIP() << "no CSIC 2010 data at " << datasets;
  const int base = free_base();
  ASSERT_GT(base, 0);
  const int dashboard = base + 6, shop = base + 7;
  const std::string summary =
      (fs::temp_directory_path() / ("immunizer_e2e_" + std::to_string(getpid()) + ".json"))
          .string();
  fs::remove(summary);

  g_state =
      (fs::temp_directory_path() / ("immunizer_e2e_state_" + std::to_string(getpid()))).string();
  fs::remove_all(g_state);

  immunizer::tools::Supervisor sup(true);
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t up = sup.spawn(
      {.name = "up",
       .path = bin + "/immunizer",
       .args = {"up", "--demo", "--datasets", datasets, "--port-base", std::to_string(base),
                "--state-dir", g_state, "--dashboard-port", std::to_string(dashboard),
                "--shop-port", std::to_string(shop), "--replay-arg=--rounds", "--replay-arg=1",
                "--replay-arg=--json", "--replay-arg=" + summary, "--replay-arg=--time-limit",
                "--replay-arg=240"}});

  // The replayer writes its summary when its round is done.
  while (!fs::exists(summary) && std::chrono::steady_clock::now() - t0 < 300s) {
    ASSERT_TRUE(sup.alive("up")) << "immunizer up died";
    std::this_thread::sleep_for(500ms);
  }
  ASSERT_TRUE(fs::exists(summary)) << "the replayer did not finish within 300 s";
  std::this_thread::sleep_for(1s);  // let the file be complete
  json s;
  std::ifstream(summary) >> s;
  std::cout << "replay summary: " << s.dump() << std::endl;

  ASSERT_TRUE(s.contains("attacks"));
  const auto& a = s["attacks"][0];
  EXPECT_TRUE(a["blocked"].get<bool>()) << "the attacking session never got a 403";
  EXPECT_LT(a["seconds_to_block"].get<double>(), 30.0) << "blocking took too long";
  EXPECT_GT(a["attacker"]["forbidden"].get<int>(), 0);
  EXPECT_GT(a["bystander"]["ok"].get<int>(), 0);
  EXPECT_EQ(a["bystander"]["forbidden"].get<int>(), 0) << "the normal session was blocked";
  EXPECT_EQ(s["training"]["ok"].get<int>(), s["training"]["sent"].get<int>())
      << "training requests were refused";

  // Alarms for the attacker's requests are visible, explained, in the dashboard's API.
  const json alarms = get_json(dashboard, "/api/alarms?limit=1000");
  ASSERT_TRUE(alarms.is_array() || alarms.is_object()) << "dashboard API did not answer";
  const json& list = alarms.is_array() ? alarms : alarms["alarms"];
  int attacker_alarms = 0;
  bool explained = false;
  for (const auto& al : list) {
    if (al["principal"]["session"].get<std::string>().rfind("ATTACKER", 0) == 0) {
      ++attacker_alarms;
      explained = explained || (!al["top_features"].empty() &&
                                al["combined_score"].get<double>() > al["threshold"].get<double>());
    }
  }
  EXPECT_GT(attacker_alarms, 0) << "no alarm for the attacker's requests in /api/alarms";
  EXPECT_TRUE(explained) << "alarms carry no explanation";
  const json stats = get_json(dashboard, "/api/stats");
  std::cout << "dashboard stats: " << stats.dump() << std::endl;
  std::cout << "attacker alarms: " << attacker_alarms << ", first 403 after "
            << a["seconds_to_block"] << " s, whole run "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s"
            << std::endl;

  // execute's gRPC is mutual TLS with the certificates `up` made: the operator certificate may
  // list the active actions (the attacker's block, the shop's effector connected); the shop's
  // effector certificate may not, nor may a client without a certificate.
  {
    namespace common = immunizer::common;
    const immunizer::tools::pki::Layout l{g_state};
    const std::string target = "127.0.0.1:" + std::to_string(base + 5);
    auto list = [&](const std::shared_ptr<grpc::ChannelCredentials>& creds,
                    immunizer::v1::ListActiveResponse* r) {
      auto stub = immunizer::v1::Operations::NewStub(grpc::CreateChannel(target, creds));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 10s);
      return stub->ListActive(&ctx, {}, r).error_code();
    };
    immunizer::v1::ListActiveResponse r;
    ASSERT_EQ(list(common::client_credentials(l.tls(common::Role::kOperator, "cli"), "e2e"), &r),
              grpc::StatusCode::OK);
    bool shop_connected = false;
    for (const auto& e : r.effectors()) shop_connected |= e.app() == "shop";
    EXPECT_TRUE(shop_connected) << "the shop's effector is not connected over mutual TLS";
    immunizer::v1::ListActiveResponse denied;
    EXPECT_EQ(
        list(common::client_credentials(l.tls(common::Role::kEffector, "shop"), "e2e"), &denied),
        grpc::StatusCode::PERMISSION_DENIED);
    grpc::SslCredentialsOptions anon;
    std::ifstream ca(l.ca_cert());
    anon.pem_root_certs.assign(std::istreambuf_iterator<char>(ca), {});
    EXPECT_EQ(list(grpc::SslCredentials(anon), &denied), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(list(grpc::InsecureChannelCredentials(), &denied), grpc::StatusCode::UNAVAILABLE);
  }

  // Ctrl-C stops everything cleanly.
  kill(up, SIGINT);
  std::atomic<bool> never{false};  // bounded by the test's CTest timeout
  const auto e = sup.wait_any(never);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->how, "exited with status 0") << "immunizer up did not stop cleanly";
  fs::remove(summary);
  fs::remove_all(g_state);
}
