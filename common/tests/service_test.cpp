// The service runtime's readiness (issue 11): /readyz answers 503 while no Kafka broker
// answers the service, and 200 again once one does, without a restart.
#include "immunizer/common/service.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "immunizer/common/mock_broker.hpp"

using namespace immunizer::common;
using namespace std::chrono_literals;

namespace {
// Polls /readyz until it answers `status` (or the limit); returns the last answer's body.
bool wait_readyz(int port, int status, std::chrono::seconds limit, std::string* body) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(1);
    if (auto r = c.Get("/readyz"); r && r->status == status) {
      if (body) *body = r->body;
      return true;
    }
    std::this_thread::sleep_for(100ms);
  }
  return false;
}
}  // namespace

TEST(Readiness, NotReadyWhileTheBrokerIsDownReadyAgainWhenItIsBack) {
  MockBroker broker(1, {{"t.calls", 1}});
  const std::string bootstrap = "kafka.bootstrap=" + broker.bootstrap();
  std::vector<std::string> args{
      "svc", "--set", bootstrap, "--set", "http.port=0", "--set", "kafka.topic_prefix=t."};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  bool ready_before = false, unready_during = false, ready_after = false;
  std::string during;
  const int rc =
      run_service(static_cast<int>(argv.size()), argv.data(), "svc", 0, [&](ServiceContext& ctx) {
        return [&] {
          ctx.ready();
          const int port = ctx.http->port();
          ready_before = wait_readyz(port, 200, 20s, nullptr);
          broker.set_broker_down(1);
          unready_during = wait_readyz(port, 503, 20s, &during);
          broker.set_broker_up(1);
          ready_after = wait_readyz(port, 200, 30s, nullptr);
        };
      });
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(ready_before) << "not ready with the broker up";
  EXPECT_TRUE(unready_during) << "/readyz stayed 200 with the broker down";
  EXPECT_NE(during.find("kafka unreachable"), std::string::npos) << during;
  EXPECT_TRUE(ready_after) << "not ready again after the broker came back";
}
