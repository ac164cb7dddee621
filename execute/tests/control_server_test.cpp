#include "immunizer/execute/control_server.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

using namespace immunizer;
using namespace immunizer::execute;
using namespace immunizer::execute::testing;

TEST(ControlServer, BindsPortZeroAndReportsThePort) {
  common::ManualClock clock;
  prometheus::Registry registry;
  Dispatcher d(test_config(), common::Topics::with_prefix("t."), clock, registry);
  ControlServer server(d, test_config());
  server.start();
  EXPECT_GT(server.port(), 0);
  auto cfg = test_config();
  cfg.grpc_listen = "127.0.0.1:" + std::to_string(server.port());
  ControlServer clash(d, cfg);
  EXPECT_THROW(clash.start(), std::runtime_error);
  server.stop();
}
