#include "immunizer/tools/supervisor.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

using namespace immunizer::tools;

TEST(Supervisor, ReportsWhichChildDiedAndHow) {
  Supervisor sup(false);
  sup.spawn({.name = "sleeper", .path = "/bin/sleep", .args = {"30"}});
  sup.spawn({.name = "crasher", .path = "/bin/sh", .args = {"-c", "exit 3"}});
  std::atomic<bool> stop{false};
  auto e = sup.wait_any(stop);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->name, "crasher");
  EXPECT_EQ(e->how, "exited with status 3");
  sup.stop_all(std::chrono::seconds(5));
  EXPECT_FALSE(sup.alive("sleeper"));
}

TEST(Supervisor, AllowedExitIsNotAFailureAndLinesReachCallback) {
  Supervisor sup(false);
  std::string seen;
  std::mutex mu;
  sup.spawn({.name = "replay", .path = "/bin/sh", .args = {"-c", "echo bootstrap=127.0.0.1:1"}, .may_exit = true,
             .on_line = [&](const std::string& l) { std::lock_guard<std::mutex> g(mu); seen = l; }});
  sup.spawn({.name = "victim", .path = "/bin/sh", .args = {"-c", "sleep 0.5; kill -9 $$"}});
  std::atomic<bool> stop{false};
  auto e = sup.wait_any(stop);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->name, "victim");
  EXPECT_NE(e->how.find("SIGKILL"), std::string::npos);
  std::lock_guard<std::mutex> g(mu);
  EXPECT_EQ(seen, "bootstrap=127.0.0.1:1");
}

TEST(Supervisor, MissingProgramIsAClearError) {
  Supervisor sup(false);
  try {
    sup.spawn({.name = "ghost", .path = "/nonexistent/immunizer-ghost"});
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ghost"), std::string::npos);
  }
}

TEST(Supervisor, AliveNoticesAnExitWithoutReapingIt) {
  Supervisor sup(false);
  sup.spawn({.name = "short", .path = "/bin/sh", .args = {"-c", "exit 4"}});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (sup.alive("short") && std::chrono::steady_clock::now() < deadline) usleep(20'000);
  EXPECT_FALSE(sup.alive("short"));
  std::atomic<bool> stop{false};
  auto e = sup.wait_any(stop);  // still reported with its status
  ASSERT_TRUE(e);
  EXPECT_EQ(e->how, "exited with status 4");
}
