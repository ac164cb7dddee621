// `immunizer up` (no demo) stops in order on Ctrl-C: the services first, each draining,
// flushing and committing to the broker while it is still there, then the broker. Checked on
// the real binaries with a manual block in execute's state (written to Kafka while stopping).
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "immunizer/tools/supervisor.hpp"
#include "ports.hpp"

using namespace std::chrono_literals;

namespace {
int free_base() { return immunizer::e2e::free_base(6); }  // services, gRPC, dashboard

struct Log {
  std::mutex mu;
  std::vector<std::string> lines;
  // Index of the first line containing both parts, or npos.
  size_t find(const std::string& a, const std::string& b) {
    std::lock_guard<std::mutex> g(mu);
    for (size_t i = 0; i < lines.size(); ++i)
      if (lines[i].find(a) != std::string::npos && lines[i].find(b) != std::string::npos) return i;
    return std::string::npos;
  }
};
}  // namespace

TEST(UpStop, ServicesStopCleanlyBeforeTheBrokerGetsSigterm) {
  const int base = free_base();
  ASSERT_GT(base, 0);
  const int dashboard = base + 6;
  auto log = std::make_shared<Log>();
  const std::string state =
      (std::filesystem::temp_directory_path() / ("immunizer_up_stop_" + std::to_string(getpid())))
          .string();
  immunizer::tools::Supervisor sup(true);
  const pid_t up =
      sup.spawn({.name = "up",
                 .path = std::string(IMMUNIZER_BIN_DIR) + "/immunizer",
                 .args = {"up", "--port-base", std::to_string(base), "--dashboard-port",
                          std::to_string(dashboard), "--state-dir", state},
                 .on_line = [log](const std::string& l) {
                   std::lock_guard<std::mutex> g(log->mu);
                   log->lines.push_back(l);
                 }});
  const auto t0 = std::chrono::steady_clock::now();
  while (log->find("Immunizer is up", "") == std::string::npos &&
         std::chrono::steady_clock::now() - t0 < 120s) {
    ASSERT_TRUE(sup.alive("up")) << "immunizer up died";
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_NE(log->find("Immunizer is up", ""), std::string::npos)
      << "immunizer up was not ready within 120 s";

  // A manual block through the dashboard: execute holds an active action and writes it to Kafka.
  // The dashboard calls execute over mutual TLS with the operator certificate `up` made.
  httplib::Client c("127.0.0.1", dashboard);
  c.set_read_timeout(10);
  {
    std::ifstream in(state + "/dashboard.credentials");
    std::string line;
    std::getline(in, line);
    const auto colon = line.find(':');
    ASSERT_NE(colon, std::string::npos)
        << "no user:password in " << state << "/dashboard.credentials";
    c.set_basic_auth(line.substr(0, colon), line.substr(colon + 1));
  }
  auto r = c.Post("/api/block", R"({"field":"ip","value":"203.0.113.9","ttl_ms":600000})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;

  kill(up, SIGINT);
  std::atomic<bool> never{false};  // bounded by the test's CTest timeout
  const auto e = sup.wait_any(never);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->how, "exited with status 0");
  const size_t broker_term = log->find("[broker]", "received SIGTERM");
  ASSERT_NE(broker_term, std::string::npos) << "the broker was not stopped by SIGTERM";
  for (const char* s : {"monitor", "analyze", "plan", "execute", "dashboard"}) {
    const size_t stopped = log->find(std::string("[") + s + "]", "stopped cleanly");
    ASSERT_NE(stopped, std::string::npos) << s << " did not stop cleanly";
    EXPECT_LT(stopped, broker_term) << s << " was still stopping when the broker got SIGTERM";
  }
  EXPECT_EQ(log->find("did not stop within", ""), std::string::npos) << "a child had to be killed";
  EXPECT_NE(log->find("all stopped", ""), std::string::npos);
  std::filesystem::remove_all(state);
}
