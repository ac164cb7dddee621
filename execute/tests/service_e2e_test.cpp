// The immunizer-execute binary against the embedded broker: a Plan on <prefix>plans reaches
// a connected effector as a signed directive; DISPATCHED and APPLIED land on <prefix>actions;
// SIGTERM stops it cleanly; a restarted execute replays the block it had in force.
// Multi-process (label e2e).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "fake_effector.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/mock_broker.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/v1/control.grpc.pb.h"
#include "test_util.hpp"

using namespace immunizer;
using namespace immunizer::execute::testing;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The gRPC port the service reports in its log ("listening on ... (port N)"); 0 on timeout.
int await_port(const std::string& log_path) {
  int port = 0;
  eventually(
      [&] {
        std::smatch m;
        const std::string log = slurp(log_path);
        static const std::regex re(R"(listening on 127\.0\.0\.1:0 \(port (\d+)\))");
        if (std::regex_search(log, m, re)) port = std::stoi(m[1]);
        return port > 0;
      },
      30s);
  return port;
}

class Child {
 public:
  Child(const std::vector<std::string>& args, const std::string& log_path) {
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(log_path.c_str(), "w", stderr);
      (void)f;
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // SIGKILL: a crash, nothing flushed or committed on the way out.
  void kill9() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // SIGTERM, then the exit code (-1 when it did not exit within the deadline).
  int terminate(std::chrono::seconds deadline = 30s) {
    kill(pid_, SIGTERM);
    int status = 0;
    if (!eventually([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, deadline)) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
};

TEST(ExecuteService, PlanFromKafkaToEffectorAndAuditTrailBack) {
  const std::string prefix = "e2e.";
  const auto topics = common::Topics::with_prefix(prefix);
  common::MockBroker broker(1, common::all_topic_specs(prefix));
  common::KafkaSettings kafka;
  kafka.bootstrap = broker.bootstrap();
  kafka.topic_prefix = prefix;

  const std::string log_path =
      ::testing::TempDir() + "/execute_e2e_" + std::to_string(getpid()) + ".log";
  const std::string plan_pub =
      ::testing::TempDir() + "/execute_e2e_plan_" + std::to_string(getpid()) + ".pem";
  std::ofstream(plan_pub) << plan_key_pair().public_pem;
  const std::string key_file =
      ::testing::TempDir() + "/execute_e2e_" + std::to_string(getpid()) + ".key";
  crypto::write_secret_file(key_file, execute_key_pair().private_pem);
  const std::vector<std::string> args{
      std::string(IMMUNIZER_BIN_DIR) + "/immunizer-execute",
      "--set",
      "kafka.bootstrap=" + broker.bootstrap(),
      "--set",
      "kafka.topic_prefix=" + prefix,
      "--set",
      "http.listen=127.0.0.1",
      "--set",
      "http.port=0",
      "--set",
      "execute.grpc_listen=127.0.0.1:0",
      "--set",
      "execute.directive_signing_key_file=" + key_file,
      "--set",
      "execute.tls_ca_file=" + test_pki().ca_cert(),
      "--set",
      "execute.tls_cert_file=" + test_pki().cert(common::Role::kExecute, "execute"),
      "--set",
      "execute.tls_key_file=" + test_pki().key(common::Role::kExecute, "execute"),
      "--set",
      "execute.plan_public_keys=" + plan_pub};
  Child child(args, log_path);
  const int port = await_port(log_path);
  ASSERT_GT(port, 0) << slurp(log_path);

  FakeEffector eff(port, "shop", "e2e");
  auto producer = common::make_kafka_producer(kafka, "test", nullptr);
  const int64_t call_ts = common::now_unix_nanos();
  // An unsigned plan first (anyone with write access to the topic): dead-lettered, not enforced.
  auto forged = block_plan("p0", "act0", "victim", 60'000, call_ts, v1::ACTION_DISABLE_CALL);
  forged.mutable_actions(0)->set_call("http.request");
  producer->produce(topics.plans, "victim", forged.SerializeAsString());
  producer->produce(
      topics.plans, "sess-1",
      signed_plan(block_plan("p1", "act1", "sess-1", 60'000, call_ts)).SerializeAsString());
  ASSERT_TRUE(producer->flush(10s).ok());

  ASSERT_TRUE(eff.wait_for(1, 30s)) << slurp(log_path);
  const auto d = eff.directives()[0];
  EXPECT_EQ(d.action().id(), "act1");
  EXPECT_TRUE(effector::verify(d, trusted_keys()));
  eff.ack(d, true, "applied", common::now_unix_nanos());

  auto consumer = common::make_kafka_consumer(kafka, "e2e-test", {topics.actions}, nullptr);
  bool dispatched = false, applied = false;
  EXPECT_TRUE(eventually(
      [&] {
        for (const auto& m : consumer->poll(100, 100ms)) {
          v1::ActionEvent e;
          if (!e.ParseFromString(m.payload) || e.action_id() != "act1") continue;
          EXPECT_EQ(m.key, "act1");
          dispatched |= e.type() == v1::ACTION_EVENT_DISPATCHED;
          applied |= e.type() == v1::ACTION_EVENT_APPLIED && e.effector() == "shop/e2e";
        }
        return dispatched && applied;
      },
      30s))
      << slurp(log_path);
  consumer->close();
  auto dl = common::make_kafka_consumer(kafka, "e2e-test-dl", {topics.deadletter}, nullptr);
  std::string dl_reason;
  EXPECT_TRUE(eventually(
      [&] {
        for (const auto& m : dl->poll(100, 100ms)) {
          v1::DeadLetter l;
          if (l.ParseFromString(m.payload)) dl_reason = l.reason();
        }
        return !dl_reason.empty();
      },
      30s))
      << slurp(log_path);
  dl->close();
  EXPECT_EQ(dl_reason.rfind("unsigned_plan", 0), 0u) << dl_reason;
  EXPECT_EQ(eff.directives().size(), 1u);  // only the signed plan's block

  EXPECT_EQ(child.terminate(), 0) << slurp(log_path);

  // A restarted execute takes the block back from <prefix>models and replays it.
  const std::string log2 = log_path + ".2";
  Child again(args, log2);
  const int port2 = await_port(log2);
  ASSERT_GT(port2, 0) << slurp(log2);
  FakeEffector eff2(port2, "shop", "e2e");
  ASSERT_TRUE(eff2.wait_for(1, 30s)) << slurp(log2);
  EXPECT_EQ(eff2.directives()[0].id(), d.id());

  // A manual Block is answered only once its state is acknowledged by Kafka: kill -9 right
  // after the answer, and the next execute still has it, with its TTL.
  auto ops = v1::Operations::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port2),
      common::client_credentials(client_tls(common::Role::kOperator, "cli"), "test operator")));
  v1::BlockRequest req;
  req.set_field(v1::PRINCIPAL_FIELD_IP);
  req.set_value("203.0.113.7");
  req.set_ttl_millis(600'000);
  v1::BlockResponse resp;
  grpc::ClientContext bctx;
  bctx.set_deadline(std::chrono::system_clock::now() + 10s);
  const int64_t before = common::now_unix_nanos();
  ASSERT_TRUE(ops->Block(&bctx, req, &resp).ok()) << slurp(log2);
  const int64_t after = common::now_unix_nanos();
  again.kill9();  // at once
  const std::string log3 = log_path + ".3";
  Child third(args, log3);
  const int port3 = await_port(log3);
  ASSERT_GT(port3, 0) << slurp(log3);
  FakeEffector eff3(port3, "shop", "e2e");
  ASSERT_TRUE(eff3.wait_for(2, 30s)) << slurp(log3);
  bool kept = false;
  for (const auto& dir : eff3.directives())
    if (dir.action().id() == resp.action_id()) {
      kept = true;
      EXPECT_GE(dir.expires_unix_nanos(), before + 600'000'000'000LL) << "the TTL is kept";
      EXPECT_LE(dir.expires_unix_nanos(), after + 600'000'000'000LL) << "the TTL is kept";
      EXPECT_TRUE(effector::verify(dir, trusted_keys()));
    }
  EXPECT_TRUE(kept) << "the manual block vanished with the crash\n" << slurp(log3);
  EXPECT_EQ(third.terminate(), 0) << slurp(log3);
  std::remove(log3.c_str());
  std::remove(log_path.c_str());
  std::remove(log2.c_str());
  std::remove(plan_pub.c_str());
  std::remove(key_file.c_str());
}

}  // namespace
