// Test bed for the browser test (tests/browser): an embedded broker, a fake execute
// Operations gRPC server, and canned records produced on demand. Line protocol on stdin:
//   alarm <id> [low|medium|high|critical]        an Alarm (session sess-<id>)
//   attack <session> <n>                          n high alarms of one session (ids <session>-<i>)
//   alarms <session> <n> [low|medium|high|...]    n alarms of one session (ids <session>-<sev><i>)
//   action <action_id> <alarm_id> <dispatched|applied|expired>
//   scores <n>                                    n Score records
//   wait-feedback <seconds>                       print the next Feedback as JSON
//   wait-block <seconds>                          print the next Block request received
//   quit
// It prints "BOOTSTRAP <addr>", "EXECUTE <addr>", "READY" on start and one line per command.
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/mock_broker.hpp"
#include "immunizer/dashboard/json.hpp"
#include "immunizer/v1/control.grpc.pb.h"
#include "test_records.hpp"

using namespace immunizer;
using namespace std::chrono_literals;

namespace {

class FakeExecute final : public v1::Operations::Service {
 public:
  grpc::Status Block(grpc::ServerContext*, const v1::BlockRequest* req,
                     v1::BlockResponse* resp) override {
    std::lock_guard l(mu_);
    blocks_.push_back(*req);
    resp->set_action_id("manual-" + std::to_string(blocks_.size()));
    cv_.notify_all();
    return grpc::Status::OK;
  }
  grpc::Status Unblock(grpc::ServerContext*, const v1::UnblockRequest* req,
                       v1::UnblockResponse* resp) override {
    resp->set_found(true);
    return grpc::Status::OK;
  }
  grpc::Status ListActive(grpc::ServerContext*, const v1::ListActiveRequest*,
                          v1::ListActiveResponse* resp) override {
    {
      std::lock_guard l(mu_);
      for (const auto& [id, a] : active_) {
        auto* x = resp->add_actions();
        *x->mutable_action() = a;
        x->set_acks(1);
      }
    }
    auto* e = resp->add_effectors();
    e->set_app("shop");
    e->set_instance("shop-1");
    e->set_version("testbed");
    return grpc::Status::OK;
  }
  // Like execute: an action is in its active list from dispatch until it expires or is revoked.
  void track(const v1::ActionEvent& e) {
    std::lock_guard l(mu_);
    if (e.type() == v1::ACTION_EVENT_EXPIRED || e.type() == v1::ACTION_EVENT_REVOKED) {
      active_.erase(e.action_id());
    } else if (e.type() == v1::ACTION_EVENT_DISPATCHED || e.type() == v1::ACTION_EVENT_APPLIED) {
      active_[e.action_id()] = e.action();
    }
  }
  std::optional<v1::BlockRequest> wait(std::chrono::seconds limit) {
    std::unique_lock l(mu_);
    if (!cv_.wait_for(l, limit, [&] { return taken_ < blocks_.size(); })) return std::nullopt;
    return blocks_[taken_++];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::BlockRequest> blocks_;
  std::map<std::string, v1::Action> active_;
  size_t taken_ = 0;
};

v1::Severity severity_from(const std::string& s) {
  if (s == "low") return v1::SEVERITY_LOW;
  if (s == "medium") return v1::SEVERITY_MEDIUM;
  if (s == "critical") return v1::SEVERITY_CRITICAL;
  return v1::SEVERITY_HIGH;
}

v1::ActionEventType event_from(const std::string& s) {
  if (s == "applied") return v1::ACTION_EVENT_APPLIED;
  if (s == "expired") return v1::ACTION_EVENT_EXPIRED;
  if (s == "rejected") return v1::ACTION_EVENT_REJECTED;
  return v1::ACTION_EVENT_DISPATCHED;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string prefix = argc > 1 ? argv[1] : "immunizer.";
  const auto topics = common::Topics::with_prefix(prefix);
  common::MockBroker broker(1, common::all_topic_specs(prefix));
  common::KafkaSettings ks;
  ks.bootstrap = broker.bootstrap();
  ks.topic_prefix = prefix;
  auto producer = common::make_kafka_producer(ks, "testbed", nullptr);
  auto feedback = common::make_kafka_consumer(ks, "testbed-feedback", {topics.feedback}, nullptr);

  FakeExecute execute;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&execute);
  auto server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "testbed: cannot start the fake execute\n";
    return 1;
  }
  std::cout << "BOOTSTRAP " << broker.bootstrap() << "\nEXECUTE 127.0.0.1:" << port << "\nREADY"
            << std::endl;

  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    const int64_t now = common::now_unix_nanos();
    if (cmd == "alarm") {
      std::string id, sev;
      in >> id >> sev;
      producer->produce(
          topics.alarms, "sess-" + id,
          dashboard::testing::make_alarm(id, now, severity_from(sev)).SerializeAsString());
      std::cout << (producer->flush(10s).ok() ? "OK alarm " + id : "ERROR alarm not acknowledged")
                << std::endl;
    } else if (cmd == "attack") {
      std::string session;
      int n = 0;
      in >> session >> n;
      for (int i = 0; i < n; ++i) {
        auto a = dashboard::testing::make_alarm(session + "-" + std::to_string(i), now + i,
                                                v1::SEVERITY_HIGH);
        a.mutable_principal()->set_session(session);
        producer->produce(topics.alarms, session, a.SerializeAsString());
      }
      std::cout << (producer->flush(10s).ok() ? "OK attack " + session
                                              : "ERROR attack not acknowledged")
                << std::endl;
    } else if (cmd == "alarms") {
      std::string session, sev;
      int n = 0;
      in >> session >> n >> sev;
      for (int i = 0; i < n; ++i) {
        auto a = dashboard::testing::make_alarm(session + "-" + sev + std::to_string(i), now + i,
                                                severity_from(sev));
        a.mutable_principal()->set_session(session);
        producer->produce(topics.alarms, session, a.SerializeAsString());
      }
      std::cout << (producer->flush(10s).ok() ? "OK alarms " + session
                                              : "ERROR alarms not acknowledged")
                << std::endl;
    } else if (cmd == "action") {
      std::string id, alarm, type;
      in >> id >> alarm >> type;
      const auto event = dashboard::testing::make_action_event(id, alarm, event_from(type), now,
                                                               now - 120'000'000);
      execute.track(event);
      producer->produce(topics.actions, id, event.SerializeAsString());
      std::cout << (producer->flush(10s).ok() ? "OK action " + id : "ERROR action not acknowledged")
                << std::endl;
    } else if (cmd == "scores") {
      int n = 0;
      in >> n;
      for (int i = 0; i < n; ++i) {
        const double score = 0.2 + 3.0 * static_cast<double>((i * 7919) % 100) / 100.0;
        const std::string key = "shop|http GET /tienda1/publico/" +
                                std::string(i % 3 ? "anadir.jsp" : "entrar.jsp") + "|";
        producer->produce(topics.scores, key,
                          dashboard::testing::make_score(key, score, i % 10 ? 2.0 : 0.0,
                                                         i % 10 ? "ACTIVE" : "LEARNING")
                              .SerializeAsString());
      }
      std::cout << (producer->flush(10s).ok() ? "OK scores" : "ERROR scores not acknowledged")
                << std::endl;
    } else if (cmd == "wait-feedback") {
      int secs = 10;
      in >> secs;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(secs);
      bool found = false;
      while (!found && std::chrono::steady_clock::now() < deadline) {
        for (const auto& m : feedback->poll(1, 200ms)) {
          v1::Feedback fb;
          if (!fb.ParseFromString(m.payload)) continue;
          nlohmann::json j = {
              {"alarm_id", fb.alarm_id()},
              {"model_key", fb.model_key()},
              {"key", m.key},
              {"verdict",
               fb.verdict() == v1::FEEDBACK_FALSE_POSITIVE ? "false_positive" : "confirmed"},
              {"session", fb.principal().session()},
              {"analyst", fb.analyst()}};
          std::cout << "FEEDBACK " << j.dump() << std::endl;
          found = true;
          break;
        }
      }
      if (!found) std::cout << "TIMEOUT feedback" << std::endl;
    } else if (cmd == "wait-block") {
      int secs = 10;
      in >> secs;
      if (auto b = execute.wait(std::chrono::seconds(secs))) {
        nlohmann::json j = {{"field", dashboard::principal_field_name(b->field())},
                            {"value", b->value()},
                            {"ttl_ms", b->ttl_millis()},
                            {"reason", b->reason()}};
        std::cout << "BLOCK " << j.dump() << std::endl;
      } else {
        std::cout << "TIMEOUT block" << std::endl;
      }
    } else if (cmd == "quit") {
      break;
    } else if (!cmd.empty()) {
      std::cout << "ERROR unknown command " << cmd << std::endl;
    }
  }
  server->Shutdown();
  feedback->close();
  return 0;
}
