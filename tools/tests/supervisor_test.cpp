#include "immunizer/tools/supervisor.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <thread>

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
  std::string seen;  // declared before `sup`: the reader threads may use it until sup is gone
  std::mutex mu;
  Supervisor sup(false);
  sup.spawn({.name = "replay",
             .path = "/bin/sh",
             .args = {"-c", "echo bootstrap=127.0.0.1:1"},
             .may_exit = true,
             .on_line = [&](const std::string& l) {
               std::lock_guard<std::mutex> g(mu);
               seen = l;
             }});
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

namespace {
// A child that answers SIGTERM by printing "<name> term", taking `linger` seconds, then
// printing "<name> exit".
ChildSpec stopper(const std::string& name, int order, const char* linger,
                  std::shared_ptr<std::pair<std::mutex, std::vector<std::string>>> log) {
  return {
      .name = name,
      .path = "/bin/sh",
      .args = {"-c", "trap 'echo " + name + " term; sleep " + linger + "; echo " + name +
                         " exit; exit 0' TERM; echo " + name + " up; while :; do sleep 0.02; done"},
      .on_line =
          [log](const std::string& l) {
            std::lock_guard<std::mutex> g(log->first);
            log->second.push_back(l);
          },
      .stop_order = order};
}
}  // namespace

// `up` must stop the app first, then the services (which flush and commit to the broker
// while they stop), then the broker: each stage gets SIGTERM only once the one before exited.
TEST(Supervisor, StopsInStagesHighestStopOrderFirst) {
  auto log = std::make_shared<std::pair<std::mutex, std::vector<std::string>>>();
  Supervisor sup(false);
  sup.spawn_until(stopper("broker", 0, "0", log), "broker up", std::chrono::seconds(10));
  sup.spawn_until(stopper("svc1", 1, "0.3", log), "svc1 up", std::chrono::seconds(10));
  sup.spawn_until(stopper("svc2", 1, "0.1", log), "svc2 up", std::chrono::seconds(10));
  sup.spawn_until(stopper("app", 2, "0.2", log), "app up", std::chrono::seconds(10));
  sup.stop_all(std::chrono::seconds(10));
  std::vector<std::string> lines;
  {
    std::lock_guard<std::mutex> g(log->first);
    for (const auto& l : log->second)
      if (l.find(" up") == std::string::npos) lines.push_back(l);
  }
  auto at = [&](const std::string& l) {
    return static_cast<size_t>(std::find(lines.begin(), lines.end(), l) - lines.begin());
  };
  ASSERT_EQ(lines.size(), 8u) << ::testing::PrintToString(lines);
  EXPECT_LT(at("app exit"), at("svc1 term"));
  EXPECT_LT(at("app exit"), at("svc2 term"));
  // The services stop together: both got SIGTERM before the slower one finished.
  EXPECT_LT(at("svc1 term"), at("svc2 exit"));
  EXPECT_LT(at("svc2 term"), at("svc1 exit"));
  EXPECT_LT(at("svc1 exit"), at("broker term"));
  EXPECT_LT(at("svc2 exit"), at("broker term"));
  EXPECT_EQ(lines.back(), "broker exit");
  EXPECT_FALSE(sup.alive("broker"));
}

TEST(Supervisor, StageThatIgnoresSigtermIsKilledAfterTheGraceThenTheNextStageStops) {
  auto log = std::make_shared<std::pair<std::mutex, std::vector<std::string>>>();
  Supervisor sup(false);
  sup.spawn_until(stopper("broker", 0, "0", log), "broker up", std::chrono::seconds(10));
  sup.spawn_until({.name = "stubborn",
                   .path = "/bin/sh",
                   .args = {"-c", "trap '' TERM; echo stubborn up; while :; do sleep 0.02; done"},
                   .stop_order = 1},
                  "stubborn up", std::chrono::seconds(10));
  const auto t0 = std::chrono::steady_clock::now();
  sup.stop_all(std::chrono::milliseconds(300));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
  EXPECT_FALSE(sup.alive("stubborn"));
  std::lock_guard<std::mutex> g(log->first);
  EXPECT_EQ(log->second.back(), "broker exit");
}

// The waiting state belongs to the reader thread too: lines printed after spawn_until()
// returned (and after the caller's frame is gone) are handled safely (ASan checks this in
// the asan preset: the pattern it replaces was a stack-use-after-scope).
TEST(Supervisor, SpawnUntilReturnsTheCaptureAndOutlivesTheCaller) {
  Supervisor sup(false);
  auto count = std::make_shared<std::atomic<int>>(0);
  auto start = [&] {
    return sup.spawn_until({.name = "talker",
                            .path = "/bin/sh",
                            .args = {"-c",
                                     "echo noise; echo port=4711 ready; for i in 1 2 3 4 5 6 7 8 9 "
                                     "10; do echo port=1 again; sleep 0.02; done"},
                            .on_line = [count](const std::string&) { ++*count; }},
                           "port=([0-9]+)", std::chrono::seconds(10));
  };
  EXPECT_EQ(start(), "4711");
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // the child keeps talking
  sup.stop_all(std::chrono::seconds(5));
  EXPECT_EQ(count->load(), 12);
}

TEST(Supervisor, SpawnUntilFailsClearlyWhenTheLineNeverComes) {
  Supervisor sup(false);
  try {
    sup.spawn_until({.name = "mute", .path = "/bin/sh", .args = {"-c", "echo nothing useful"}},
                    "bootstrap=(.+)", std::chrono::seconds(10));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("mute closed its output"), std::string::npos) << e.what();
  }
  try {
    sup.spawn_until({.name = "slow", .path = "/bin/sh", .args = {"-c", "exec sleep 5"}},
                    "bootstrap=(.+)", std::chrono::milliseconds(200));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("slow did not print"), std::string::npos) << e.what();
  }
}
