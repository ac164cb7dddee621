// A minimal effector for tests: a real gRPC client on EffectorControl.Connect that records
// the directives it receives and sends acks; plus a deadline-bounded polling helper.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "immunizer/v1/control.grpc.pb.h"
#include "test_util.hpp"

namespace immunizer::execute::testing {

using namespace std::chrono_literals;

// A minimal effector: a real gRPC client on EffectorControl.Connect that records directives.
class FakeEffector {
 public:
  // Connects with the certificate of effector "shop" (any instance) unless `tls` says otherwise.
  FakeEffector(int port, const std::string& app, const std::string& instance, bool hello = true,
               const common::TlsFiles& tls = client_tls(common::Role::kEffector, "shop"))
      : FakeEffector("127.0.0.1:" + std::to_string(port), app, instance, hello, tls) {}
  FakeEffector(const std::string& target, const std::string& app, const std::string& instance,
               bool hello, const common::TlsFiles& tls)
      : name_(app + "/" + instance) {
    channel_ = grpc::CreateChannel(target, common::client_credentials(tls, "fake effector"));
    stub_ = v1::EffectorControl::NewStub(channel_);
    stream_ = stub_->Connect(&ctx_);
    if (hello) {
      v1::EffectorMessage m;
      m.mutable_hello()->set_app(app);
      m.mutable_hello()->set_instance(instance);
      m.mutable_hello()->set_version("test");
      stream_->Write(m);
    }
    reader_ = std::thread([this] {
      v1::ExecuteMessage in;
      while (stream_->Read(&in)) {
        std::lock_guard lk(mu_);
        if (in.has_replay_complete())
          replay_markers_.push_back({got_.size(), in.replay_complete().directives()});
        else
          got_.push_back(in.directive());
        cv_.notify_all();
      }
      std::lock_guard lk(mu_);
      ended_ = true;
      cv_.notify_all();
    });
  }
  ~FakeEffector() {
    if (reader_.joinable()) {
      ctx_.TryCancel();
      reader_.join();
      stream_->Finish();
    }
  }
  bool wait_for(size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return got_.size() >= n; });
  }
  // The end-of-replay markers received: (directives received before it, the count it carries).
  std::vector<std::pair<size_t, uint32_t>> replay_markers() {
    std::lock_guard lk(mu_);
    return replay_markers_;
  }
  bool wait_ended(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return ended_; });
  }
  std::vector<v1::Directive> directives() {
    std::lock_guard lk(mu_);
    return got_;
  }
  void ack(const v1::Directive& d, bool applied, const std::string& reason = "", int64_t at = 0) {
    v1::EffectorMessage m;
    m.mutable_ack()->set_directive_id(d.id());
    m.mutable_ack()->set_applied(applied);
    m.mutable_ack()->set_reason(reason);
    m.mutable_ack()->set_applied_unix_nanos(at);
    stream_->Write(m);
  }
  // Closes our side and returns the server's final status.
  grpc::Status close() {
    stream_->WritesDone();
    reader_.join();
    return stream_->Finish();
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::EffectorControl::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::EffectorMessage, v1::ExecuteMessage>> stream_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::Directive> got_;
  std::vector<std::pair<size_t, uint32_t>>
      replay_markers_;  // (directives received before it, its count)
  bool ended_ = false;
};

}  // namespace immunizer::execute::testing
