#include "immunizer/execute/control_server.hpp"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "fake_effector.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/execute/processor.hpp"
#include "immunizer/testing/manual_clock.hpp"
#include "immunizer/v1/control.grpc.pb.h"
#include "test_util.hpp"

using namespace immunizer;
using namespace immunizer::execute;
using namespace immunizer::execute::testing;
using namespace std::chrono_literals;

namespace {

class ControlServerTest : public ::testing::Test {
 protected:
  ControlServerTest()
      : topics(common::Topics::with_prefix("t.")),
        dispatcher(test_config(), topics, clock, registry),
        server(dispatcher, test_config(), &registry),
        proc(dispatcher) {
    server.start();
    ops = v1::Operations::NewStub(grpc::CreateChannel(
        target(),
        common::client_credentials(client_tls(common::Role::kOperator, "cli"), "test operator")));
  }
  ~ControlServerTest() override { server.stop(); }

  std::string target() const { return "127.0.0.1:" + std::to_string(server.port()); }
  std::unique_ptr<v1::Operations::Stub> ops_as(
      const std::shared_ptr<grpc::ChannelCredentials>& creds) {
    return v1::Operations::NewStub(grpc::CreateChannel(target(), creds));
  }
  std::unique_ptr<v1::Operations::Stub> ops_as(common::Role role, const std::string& name) {
    return ops_as(common::client_credentials(client_tls(role, name), "test client"));
  }
  grpc::StatusCode list_active(v1::Operations::Stub& stub) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::ListActiveResponse r;
    return stub.ListActive(&ctx, {}, &r).error_code();
  }
  std::string manual_block(const std::string& ip) {
    grpc::ClientContext ctx;
    v1::BlockRequest req;
    req.set_field(v1::PRINCIPAL_FIELD_IP);
    req.set_value(ip);
    req.set_ttl_millis(60000);
    v1::BlockResponse resp;
    EXPECT_TRUE(ops->Block(&ctx, req, &resp).ok());
    return resp.action_id();
  }

  std::unique_ptr<FakeEffector> effector(const std::string& instance) {
    const size_t before = dispatcher.effectors_connected();
    auto e = std::make_unique<FakeEffector>(server.port(), "shop", instance);
    EXPECT_TRUE(eventually([&] { return dispatcher.effectors_connected() == before + 1; }));
    return e;
  }
  // Runs the stream loop's timer hook until an event of `type` for `action_id` is on the producer.
  std::optional<v1::ActionEvent> await_event(v1::ActionEventType type,
                                             const std::string& action_id) {
    std::optional<v1::ActionEvent> found;
    eventually([&] {
      proc.tick(out);
      out.flush(0ms);
      for (const auto& e : events(out, topics.actions))
        if (e.type() == type && e.action_id() == action_id) found = e;
      return found.has_value();
    });
    return found;
  }

  common::ManualClock clock;
  prometheus::Registry registry;
  common::Topics topics;
  Dispatcher dispatcher;
  ControlServer server;
  ExecuteProcessor proc;
  common::FakeProducer out;
  std::unique_ptr<v1::Operations::Stub> ops;
};

TEST_F(ControlServerTest, PlanIsPushedSignedAndTheAckBecomesAppliedWithLatency) {
  auto eff = effector("i1");
  EXPECT_EQ(metric(registry, "immunizer_execute_effectors_connected"), 1);
  const int64_t call_ts = clock.now_unix_nanos() - 200'000'000;
  dispatcher.on_plan(block_plan("p1", "act1", "sess-1", 60'000, call_ts));

  ASSERT_TRUE(eff->wait_for(1));
  const v1::Directive d = eff->directives()[0];
  EXPECT_EQ(d.action().id(), "act1");
  EXPECT_EQ(d.action().target_value(), "sess-1");
  EXPECT_TRUE(effector::verify(d, trusted_keys()));

  eff->ack(d, true, "", clock.now_unix_nanos());
  const auto applied = await_event(v1::ACTION_EVENT_APPLIED, "act1");
  ASSERT_TRUE(applied.has_value());
  EXPECT_EQ(applied->effector(), "shop/i1");
  EXPECT_EQ(applied->plan_id(), "p1");
  EXPECT_EQ(applied->call_timestamp_unix_nanos(), call_ts);
  EXPECT_EQ(metric(registry, "immunizer_mitigation_latency_seconds"), 1);

  grpc::ClientContext ctx;
  v1::ListActiveResponse list;
  ASSERT_TRUE(ops->ListActive(&ctx, {}, &list).ok());
  ASSERT_EQ(list.actions_size(), 1);
  EXPECT_EQ(list.actions(0).action().id(), "act1");
  EXPECT_EQ(list.actions(0).acks(), 1);
  EXPECT_EQ(list.actions(0).plan_id(), "p1");
  ASSERT_EQ(list.effectors_size(), 1);
  EXPECT_EQ(list.effectors(0).instance(), "i1");

  // A rejection comes back as REJECTED with the effector's reason.
  dispatcher.on_plan(block_plan("p2", "act2", "sess-2", 60'000, call_ts));
  ASSERT_TRUE(eff->wait_for(2));
  eff->ack(eff->directives()[1], false, "bad signature");
  const auto rejected = await_event(v1::ACTION_EVENT_REJECTED, "act2");
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->reason(), "bad signature");
}

TEST_F(ControlServerTest, ReconnectReplaysEveryActiveDirectiveThenNewOnes) {
  dispatcher.on_plan(block_plan("p1", "act1", "sess-1", 60'000));
  auto first = effector("i1");
  ASSERT_TRUE(first->wait_for(1));
  EXPECT_TRUE(first->close().ok());
  ASSERT_TRUE(eventually([&] { return dispatcher.effectors_connected() == 0; }));
  EXPECT_EQ(metric(registry, "immunizer_execute_effectors_connected"), 0);

  dispatcher.on_plan(block_plan("p2", "act2", "sess-2", 60'000));  // while nobody is connected
  auto again = effector("i1");
  ASSERT_TRUE(again->wait_for(2));
  dispatcher.on_plan(block_plan("p3", "act3", "sess-3", 60'000));
  ASSERT_TRUE(again->wait_for(3));
  const auto dirs = again->directives();
  EXPECT_EQ(dirs[0].id(), first->directives()[0].id());  // the same signed directive
  std::vector<std::string> replayed{dirs[0].action().id(), dirs[1].action().id()};
  std::sort(replayed.begin(), replayed.end());
  EXPECT_EQ(replayed, (std::vector<std::string>{"act1", "act2"}));
  EXPECT_EQ(dirs[2].action().id(), "act3");
}

TEST_F(ControlServerTest, ExpiredDirectiveIsDroppedAndNotReplayed) {
  auto eff = effector("i1");
  dispatcher.on_plan(block_plan("p1", "act1", "sess-1", 5'000));
  ASSERT_TRUE(eff->wait_for(1));
  clock.advance(5s);
  const auto expired = await_event(v1::ACTION_EVENT_EXPIRED, "act1");
  ASSERT_TRUE(expired.has_value());
  grpc::ClientContext ctx;
  v1::ListActiveResponse list;
  ASSERT_TRUE(ops->ListActive(&ctx, {}, &list).ok());
  EXPECT_EQ(list.actions_size(), 0);

  auto late = effector("i2");
  dispatcher.on_plan(block_plan("p2", "act2", "sess-2", 5'000));
  ASSERT_TRUE(late->wait_for(1));
  EXPECT_EQ(late->directives()[0].action().id(), "act2");  // act1 was not replayed
}

TEST_F(ControlServerTest, ManualBlockAndUnblockThroughOperations) {
  auto eff = effector("i1");
  v1::BlockResponse blocked;
  {
    grpc::ClientContext ctx;
    v1::BlockRequest req;
    req.set_field(v1::PRINCIPAL_FIELD_USER);
    req.set_value("mallory");
    req.set_ttl_millis(120'000);
    req.set_reason("known attacker");
    ASSERT_TRUE(ops->Block(&ctx, req, &blocked).ok());
  }
  ASSERT_FALSE(blocked.action_id().empty());
  ASSERT_TRUE(eff->wait_for(1));
  EXPECT_EQ(eff->directives()[0].action().id(), blocked.action_id());
  EXPECT_EQ(eff->directives()[0].action().target_value(), "mallory");
  EXPECT_EQ(eff->directives()[0].expires_unix_nanos(), clock.now_unix_nanos() + 120'000'000'000LL);
  ASSERT_TRUE(await_event(v1::ACTION_EVENT_DISPATCHED, blocked.action_id()).has_value());

  {
    grpc::ClientContext ctx;
    v1::UnblockRequest req;
    req.set_action_id(blocked.action_id());
    v1::UnblockResponse resp;
    ASSERT_TRUE(ops->Unblock(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.found());
  }
  ASSERT_TRUE(eff->wait_for(2));
  const auto revoke = eff->directives()[1];
  EXPECT_TRUE(revoke.revoke());
  EXPECT_EQ(revoke.action().id(), blocked.action_id());
  EXPECT_TRUE(effector::verify(revoke, trusted_keys()));
  ASSERT_TRUE(await_event(v1::ACTION_EVENT_REVOKED, blocked.action_id()).has_value());

  {
    grpc::ClientContext ctx;
    v1::UnblockRequest req;
    req.set_action_id(blocked.action_id());
    v1::UnblockResponse resp;
    ASSERT_TRUE(ops->Unblock(&ctx, req, &resp).ok());
    EXPECT_FALSE(resp.found());
  }
  {
    grpc::ClientContext ctx;
    v1::BlockResponse resp;
    const auto st = ops->Block(&ctx, v1::BlockRequest{}, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(ControlServerTest, ShadowPlansNeverReachEffectors) {
  auto eff = effector("i1");
  auto shadow = block_plan("p1", "act1", "sess-1", 60'000);
  shadow.set_shadow(true);
  dispatcher.on_plan(shadow);
  dispatcher.on_plan(block_plan("p2", "act2", "sess-2", 60'000));
  ASSERT_TRUE(eff->wait_for(1));
  EXPECT_EQ(eff->directives()[0].action().id(), "act2");
  EXPECT_EQ(dispatcher.active_count(), 1u);
}

TEST_F(ControlServerTest, StreamWithoutHelloIsRefusedAndServerStopEndsStreams) {
  FakeEffector rude(server.port(), "shop", "x", /*hello=*/false);
  rude.ack(v1::Directive{}, true);
  EXPECT_TRUE(rude.wait_ended());
  EXPECT_EQ(rude.close().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(dispatcher.effectors_connected(), 0u);

  auto eff = effector("i1");
  server.stop();
  EXPECT_TRUE(eff->wait_ended());
  EXPECT_TRUE(eventually([&] { return dispatcher.effectors_connected() == 0; }));
}

TEST(ControlServer, BindsPortZeroAndRefusesAPortInUse) {
  common::ManualClock clock;
  prometheus::Registry registry;
  Dispatcher d(test_config(), common::Topics::with_prefix("t."), clock, registry);
  ControlServer server(d, test_config(), &registry);
  server.start();
  EXPECT_GT(server.port(), 0);
  auto cfg = test_config();
  cfg.grpc_listen = "127.0.0.1:" + std::to_string(server.port());
  ControlServer clash(d, cfg);
  EXPECT_THROW(clash.start(), std::runtime_error);
}

// ---- authentication and authorisation ----

// TLS without a client certificate (the server's CA is trusted): the call reaches execute,
// which refuses it and counts it.
std::shared_ptr<grpc::ChannelCredentials> no_client_certificate() {
  grpc::SslCredentialsOptions o;
  std::ifstream in(test_pki().ca_cert());
  o.pem_root_certs.assign(std::istreambuf_iterator<char>(in), {});
  return grpc::SslCredentials(o);
}

TEST_F(ControlServerTest, CallsWithoutAClientCertificateAreUnauthenticated) {
  manual_block("10.0.0.1");
  auto anon = ops_as(no_client_certificate());
  EXPECT_EQ(list_active(*anon), grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext ctx;
    v1::BlockRequest req;
    req.set_field(v1::PRINCIPAL_FIELD_IP);
    req.set_value("10.9.9.9");
    v1::BlockResponse resp;
    EXPECT_EQ(anon->Block(&ctx, req, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // A stream without a certificate is closed before execute reads anything: no replay.
  auto stub = v1::EffectorControl::NewStub(grpc::CreateChannel(target(), no_client_certificate()));
  grpc::ClientContext ctx;
  auto stream = stub->Connect(&ctx);
  v1::EffectorMessage hello;
  hello.mutable_hello()->set_app("shop");
  hello.mutable_hello()->set_instance("i1");
  stream->Write(hello);
  v1::ExecuteMessage in;
  EXPECT_FALSE(stream->Read(&in));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(server.refused("unauthenticated"), 3u);
  EXPECT_EQ(metric(registry, "immunizer_execute_grpc_refused_total", "reason", "unauthenticated"),
            3.0);
  EXPECT_EQ(dispatcher.active_count(), 1u);  // the anonymous Block did nothing
  EXPECT_EQ(dispatcher.effectors_connected(), 0u);

  // Plaintext, or a certificate from another CA: the handshake itself fails.
  EXPECT_EQ(list_active(*ops_as(grpc::InsecureChannelCredentials())),
            grpc::StatusCode::UNAVAILABLE);
  tools::pki::Layout rogue{test_pki().dir + "-rogue"};
  tools::pki::init(rogue, {.effectors = {}, .operators = {"cli"}});
  auto forged = rogue.tls(common::Role::kOperator, "cli");
  forged.ca_file =
      test_pki().ca_cert();  // trusts the real server; its own cert is from the rogue CA
  EXPECT_EQ(list_active(*ops_as(common::client_credentials(forged, "rogue"))),
            grpc::StatusCode::UNAVAILABLE);
  std::filesystem::remove_all(rogue.dir);
  EXPECT_EQ(dispatcher.active_count(), 1u);
}

TEST_F(ControlServerTest, WrongRolesArePermissionDenied) {
  manual_block("10.0.0.1");
  // An effector (or plan) certificate cannot call Operations ...
  for (auto [role, name] :
       {std::pair{common::Role::kEffector, "shop"}, std::pair{common::Role::kPlan, "plan"}}) {
    auto stub = ops_as(role, name);
    EXPECT_EQ(list_active(*stub), grpc::StatusCode::PERMISSION_DENIED) << name;
    grpc::ClientContext ctx;
    v1::UnblockRequest req;
    req.set_action_id(dispatcher.list_active().actions(0).action().id());
    v1::UnblockResponse resp;
    EXPECT_EQ(stub->Unblock(&ctx, req, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << name;
  }
  EXPECT_EQ(dispatcher.active_count(), 1u);  // still blocked
  // ... and an operator certificate cannot pose as an effector: it gets no directive.
  FakeEffector op(server.port(), "shop", "i1", true,
                  client_tls(common::Role::kOperator, "dashboard"));
  EXPECT_TRUE(op.wait_ended());
  EXPECT_EQ(op.close().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(op.directives().empty());
  EXPECT_EQ(server.refused("wrong_role"), 5u);
  EXPECT_EQ(metric(registry, "immunizer_execute_grpc_refused_total", "reason", "wrong_role"), 5.0);
  EXPECT_EQ(dispatcher.effectors_connected(), 0u);
}

TEST_F(ControlServerTest, ForgedEffectorHelloGetsNothing) {
  manual_block("10.0.0.1");
  // The shop's certificate saying hello as another app; billing/b1's as another instance.
  FakeEffector other_app(server.port(), "billing", "b1");
  FakeEffector other_instance(server.port(), "billing", "b2", true,
                              client_tls(common::Role::kEffector, "billing/b1"));
  for (FakeEffector* f : {&other_app, &other_instance}) {
    EXPECT_TRUE(f->wait_ended()) << f->name();
    EXPECT_EQ(f->close().error_code(), grpc::StatusCode::PERMISSION_DENIED) << f->name();
    EXPECT_TRUE(f->directives().empty()) << f->name();
  }
  EXPECT_EQ(server.refused("identity_mismatch"), 2u);
  EXPECT_EQ(dispatcher.effectors_connected(), 0u);
  EXPECT_TRUE(dispatcher.list_active().effectors().empty());
  // As themselves they are served: any shop instance, and exactly billing/b1.
  FakeEffector shop(server.port(), "shop", "any-instance");
  FakeEffector billing(server.port(), "billing", "b1", true,
                       client_tls(common::Role::kEffector, "billing/b1"));
  EXPECT_TRUE(shop.wait_for(1));
  EXPECT_TRUE(billing.wait_for(1));
  EXPECT_EQ(dispatcher.effectors_connected(), 2u);
}

// Certificate rotation with a new CA: while the bundle holds the old and the new CA, peers
// with either certificate are accepted; after `rotate --finish` only the new ones.
TEST(ControlServer, CertificateRotationOverlapAcceptsOldAndNewCertificates) {
  tools::pki::Layout l{test_pki().dir + "-rotation"};
  tools::pki::init(l, {.effectors = {"shop"}, .operators = {"cli"}});
  const std::string old_dir = l.dir + "-old";
  std::filesystem::create_directories(old_dir);
  for (const auto* f : {"operator-cli.crt", "operator-cli.key"})
    std::filesystem::copy_file(l.dir + "/tls/" + f, old_dir + "/" + f);
  common::TlsFiles old_cli{true, l.ca_cert(), old_dir + "/operator-cli.crt",
                           old_dir + "/operator-cli.key", ""};
  const auto new_cli = l.tls(common::Role::kOperator, "cli");

  tools::pki::rotate(l, {.ca = true});
  auto serve_and_call = [&](const common::TlsFiles& client) {
    common::ManualClock clock;
    prometheus::Registry registry;
    auto cfg = test_config();
    cfg.tls = l.tls(common::Role::kExecute, "execute");
    Dispatcher d(cfg, common::Topics::with_prefix("t."), clock, registry);
    ControlServer server(d, cfg, &registry);
    server.start();
    auto stub =
        v1::Operations::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(server.port()),
                                                    common::client_credentials(client, "client")));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::ListActiveResponse r;
    return stub->ListActive(&ctx, {}, &r).error_code();
  };
  EXPECT_EQ(serve_and_call(old_cli), grpc::StatusCode::OK);  // overlap: old certificate
  EXPECT_EQ(serve_and_call(new_cli), grpc::StatusCode::OK);  // overlap: new certificate
  tools::pki::rotate(l, {.finish = true});
  EXPECT_EQ(serve_and_call(old_cli), grpc::StatusCode::UNAVAILABLE);  // old CA no longer trusted
  EXPECT_EQ(serve_and_call(new_cli), grpc::StatusCode::OK);
  std::filesystem::remove_all(l.dir);
  std::filesystem::remove_all(old_dir);
}

}  // namespace
