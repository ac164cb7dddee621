// execute and the real effector library in one process: what a plan does to an app's
// allows() answer, end to end over gRPC with signed directives.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <thread>

#include "immunizer/effector/effector.hpp"
#include "immunizer/execute/control_server.hpp"
#include "immunizer/execute/processor.hpp"
#include "test_util.hpp"

using namespace immunizer;
using namespace immunizer::execute;
using namespace immunizer::execute::testing;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = 15s;  // deadline of every eventually() below

class ExecuteEffectorTest : public ::testing::Test {
 protected:
  ExecuteEffectorTest()
      : topics(common::Topics::with_prefix("t.")),
        dispatcher(test_config(), topics, clock, registry),
        server(dispatcher, test_config(), &registry),
        proc(dispatcher) {
    server.start();
  }
  ~ExecuteEffectorTest() override {
    for (auto& e : effectors) e->stop();
    server.stop();
  }
  // An effector of app "shop" with its certificate, trusting `trusted_pem` (default: execute's
  // key).
  std::shared_ptr<effector::Effector> effector(const std::string& instance,
                                               const std::string& trusted_pem = "") {
    effector::EffectorConfig c;
    c.app = "shop";
    c.instance = instance;
    c.execute_address = "127.0.0.1:" + std::to_string(server.port());
    c.directive_public_keys = {trusted_pem.empty() ? execute_key_pair().public_pem : trusted_pem};
    const auto tls = client_tls(common::Role::kEffector, "shop");
    c.tls_ca_file = tls.ca_file;
    c.tls_cert_file = tls.cert_file;
    c.tls_key_file = tls.key_file;
    c.backoff_initial = 10ms;
    auto e = effector::Effector::create(c);
    e->start();
    effectors.push_back(e);
    return e;
  }
  std::optional<v1::ActionEvent> await_event(v1::ActionEventType type, const std::string& action_id,
                                             const std::string& effector_name = "") {
    std::optional<v1::ActionEvent> found;
    eventually(
        [&] {
          proc.tick(out);
          out.flush(0ms);
          for (const auto& e : events(out, topics.actions))
            if (e.type() == type && e.action_id() == action_id &&
                (effector_name.empty() || e.effector() == effector_name))
              found = e;
          return found.has_value();
        },
        kWait);
    return found;
  }

  common::SystemClock clock;  // the effector checks expiry against the real clock
  prometheus::Registry registry;
  common::Topics topics;
  Dispatcher dispatcher;
  ControlServer server;
  ExecuteProcessor proc;
  common::FakeProducer out;
  std::vector<std::shared_ptr<effector::Effector>> effectors;
};

TEST_F(ExecuteEffectorTest, PlanBlocksThePrincipalInTheAppAndUnblockLiftsIt) {
  auto eff = effector("e2e");
  ASSERT_TRUE(
      eventually([&] { return eff->connected() && dispatcher.effectors_connected() == 1; }, kWait));
  const auto listed = dispatcher.list_active();
  ASSERT_EQ(listed.effectors_size(), 1);
  EXPECT_EQ(listed.effectors(0).version(),
            IMMUNIZER_PROJECT_VERSION);  // the hello carries the project version
  const effector::PrincipalView mallory("", "sess-1", "");
  const effector::PrincipalView alice("", "sess-2", "");
  EXPECT_TRUE(eff->allows(mallory, "http GET /tienda1/index.jsp"));

  const int64_t call_ts = clock.now_unix_nanos() - 100'000'000;
  dispatcher.on_plan(block_plan("p1", "act1", "sess-1", 60'000, call_ts));
  ASSERT_TRUE(
      eventually([&] { return !eff->allows(mallory, "http GET /tienda1/index.jsp"); }, kWait));
  EXPECT_TRUE(eff->allows(alice, "http GET /tienda1/index.jsp"));

  const auto applied = await_event(v1::ACTION_EVENT_APPLIED, "act1");
  ASSERT_TRUE(applied.has_value());
  EXPECT_EQ(applied->effector(), "shop/e2e");
  EXPECT_EQ(applied->call_timestamp_unix_nanos(), call_ts);
  EXPECT_EQ(metric(registry, "immunizer_mitigation_latency_seconds"), 1);

  // A second plan for the same principal extends the block in place: still one rule.
  dispatcher.on_plan(block_plan("p2", "act2", "sess-1", 120'000, call_ts));
  ASSERT_TRUE(await_event(v1::ACTION_EVENT_APPLIED, "act2").has_value());
  EXPECT_EQ(eff->stats().active_actions, 1u);
  EXPECT_FALSE(eff->allows(mallory, "x"));

  // A late-joining instance of the app gets the block replayed.
  auto second = effector("e2e-2");
  ASSERT_TRUE(eventually([&] { return !second->allows(mallory, "x"); }, kWait));

  EXPECT_TRUE(dispatcher.unblock("act2"));
  ASSERT_TRUE(
      eventually([&] { return eff->allows(mallory, "x") && second->allows(mallory, "x"); }, kWait));
}

// An effector that trusts another public key than execute's rejects execute's directives (as it
// would reject directives signed by anyone but the execute it trusts), and execute records it.
TEST_F(ExecuteEffectorTest, EffectorWithAnotherKeyRejectsAndExecuteRecordsIt) {
  auto eff = effector("wrong-key", crypto::generate_ed25519().public_pem);
  ASSERT_TRUE(eventually([&] { return dispatcher.effectors_connected() == 1; }, kWait));
  dispatcher.on_plan(block_plan("p1", "act1", "sess-1", 60'000));
  const auto rejected = await_event(v1::ACTION_EVENT_REJECTED, "act1", "shop/wrong-key");
  ASSERT_TRUE(rejected.has_value());
  EXPECT_NE(rejected->reason().find("signature"), std::string::npos) << rejected->reason();
  EXPECT_TRUE(eff->allows(effector::PrincipalView("", "sess-1", ""), "x"));
}

}  // namespace
