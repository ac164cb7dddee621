#include "immunizer/execute/control_server.hpp"

#include <grpcpp/grpcpp.h>

#include <deque>
#include <fstream>
#include <sstream>

#include "immunizer/common/logging.hpp"
#include "immunizer/v1/control.grpc.pb.h"

namespace immunizer::execute {
namespace {

std::shared_ptr<spdlog::logger> log() { return common::logger("execute"); }

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ConnectReactor;

// The dispatcher's handle on one stream. Outlives the reactor: after the stream is done,
// send() returns false and close() does nothing.
class StreamLink final : public EffectorLink {
 public:
  explicit StreamLink(ConnectReactor* r) : reactor_(r) {}
  bool send(const v1::Directive& d) override;
  bool end_replay(uint32_t directives) override;
  void close(const std::string& reason) override;
  void detach() {
    std::lock_guard lk(mu_);
    reactor_ = nullptr;
  }

 private:
  std::mutex mu_;  // held while the reactor is used, so it cannot be deleted meanwhile
  ConnectReactor* reactor_;
};

// One effector stream. Reads hello then acks; writes directives from a bounded queue, one
// write in flight at a time. Deletes itself in OnDone.
class ConnectReactor final : public grpc::ServerBidiReactor<v1::EffectorMessage, v1::ExecuteMessage> {
 public:
  ConnectReactor(Dispatcher& d, grpc::CallbackServerContext* ctx, size_t queue_limit)
      : dispatcher_(d), ctx_(ctx), queue_limit_(queue_limit), link_(std::make_shared<StreamLink>(this)) {
    peer_ = ctx->peer();
    StartRead(&in_);
  }

  // Queues a message; false when finishing or the queue is full.
  template <class Fill>
  bool enqueue(Fill&& fill) {
    const v1::ExecuteMessage* next = nullptr;
    {
      std::lock_guard lk(mu_);
      if (finishing_ || queue_.size() >= queue_limit_) return false;
      queue_.emplace_back();
      fill(queue_.back());
      if (!writing_) {
        writing_ = true;
        next = &queue_.front();  // deque: stays valid while others are appended
      }
    }
    if (next) StartWrite(next);
    return true;
  }

  // Ends the stream from outside (slow effector, shutdown).
  void cancel(const std::string& reason) {
    log()->warn("closing effector stream {} ({}): {}", name_or_peer(), peer_, reason);
    finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, reason));
    ctx_->TryCancel();  // a write blocked by flow control completes (failed) now
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the effector closed its side, or the stream broke
      finish(grpc::Status::OK);
      return;
    }
    try {
      if (in_.has_hello()) {
        if (session_ != 0) {
          log()->debug("effector {}: second hello ignored", name_or_peer());
        } else {
          if (in_.hello().app().empty()) {
            finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello needs an app name"));
            return;
          }
          {
            std::lock_guard lk(mu_);
            name_ = in_.hello().app() + "/" + in_.hello().instance();
          }
          session_ = dispatcher_.connect(in_.hello(), link_);
        }
      } else if (in_.has_ack()) {
        if (session_ == 0) {
          finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "send hello first"));
          return;
        }
        dispatcher_.on_ack(session_, in_.ack());
      }
    } catch (const std::exception& e) {
      log()->error("effector stream {}: {}", name_or_peer(), e.what());
      finish(grpc::Status(grpc::StatusCode::INTERNAL, "execute failed to handle the message"));
      return;
    }
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    const v1::ExecuteMessage* next = nullptr;
    bool finish_now = false;
    grpc::Status status;
    {
      std::lock_guard lk(mu_);
      queue_.pop_front();
      if (!ok) {
        finishing_ = true;
        if (!status_set_) {
          status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
          status_set_ = true;
        }
      }
      if (ok && !finishing_ && !queue_.empty()) {
        next = &queue_.front();
      } else {
        writing_ = false;
        if (finishing_ && !finished_) {
          finished_ = true;
          finish_now = true;
          status = status_;
        }
      }
    }
    if (next) StartWrite(next);
    if (finish_now) Finish(status);
  }

  void OnCancel() override { finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }

  void OnDone() override {
    try {
      link_->detach();
      if (session_ != 0) dispatcher_.disconnect(session_);
    } catch (const std::exception& e) {
      log()->error("effector stream {} cleanup: {}", name_or_peer(), e.what());
    }
    delete this;
  }

 private:
  // Finishes once, after the write in flight (if any) completes.
  void finish(grpc::Status s) {
    {
      std::lock_guard lk(mu_);
      if (!status_set_) {
        status_ = std::move(s);
        status_set_ = true;
      }
      finishing_ = true;
      if (finished_ || writing_) return;
      finished_ = true;
    }
    Finish(status_);
  }
  std::string name_or_peer() {
    std::lock_guard lk(mu_);
    return name_.empty() ? peer_ : name_;
  }

  Dispatcher& dispatcher_;
  grpc::CallbackServerContext* ctx_;
  const size_t queue_limit_;
  std::shared_ptr<StreamLink> link_;
  std::string peer_;
  v1::EffectorMessage in_;  // read side: one read in flight
  uint64_t session_ = 0;    // touched only by the read chain and OnDone

  std::mutex mu_;
  std::string name_;
  std::deque<v1::ExecuteMessage> queue_;  // front is being written while writing_
  bool writing_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  bool status_set_ = false;
  grpc::Status status_;
};

bool StreamLink::send(const v1::Directive& d) {
  std::lock_guard lk(mu_);
  return reactor_ != nullptr && reactor_->enqueue([&](v1::ExecuteMessage& m) { *m.mutable_directive() = d; });
}

bool StreamLink::end_replay(uint32_t directives) {
  std::lock_guard lk(mu_);
  return reactor_ != nullptr &&
         reactor_->enqueue([&](v1::ExecuteMessage& m) { m.mutable_replay_complete()->set_directives(directives); });
}

void StreamLink::close(const std::string& reason) {
  std::lock_guard lk(mu_);
  if (reactor_) reactor_->cancel(reason);
}

class EffectorControlImpl final : public v1::EffectorControl::CallbackService {
 public:
  EffectorControlImpl(Dispatcher& d, size_t limit) : dispatcher_(d), limit_(limit) {}
  grpc::ServerBidiReactor<v1::EffectorMessage, v1::ExecuteMessage>* Connect(
      grpc::CallbackServerContext* ctx) override {
    return new ConnectReactor(dispatcher_, ctx, limit_);
  }

 private:
  Dispatcher& dispatcher_;
  size_t limit_;
};

class OperationsImpl final : public v1::Operations::CallbackService {
 public:
  explicit OperationsImpl(Dispatcher& d) : dispatcher_(d) {}

  grpc::ServerUnaryReactor* Block(grpc::CallbackServerContext* ctx, const v1::BlockRequest* req,
                                  v1::BlockResponse* resp) override {
    return run(ctx, "Block", [&] { resp->set_action_id(dispatcher_.block(*req)); });
  }
  grpc::ServerUnaryReactor* Unblock(grpc::CallbackServerContext* ctx, const v1::UnblockRequest* req,
                                    v1::UnblockResponse* resp) override {
    return run(ctx, "Unblock", [&] {
      if (req->action_id().empty()) throw InvalidRequest("action_id is required");
      resp->set_found(dispatcher_.unblock(req->action_id()));
    });
  }
  grpc::ServerUnaryReactor* ListActive(grpc::CallbackServerContext* ctx, const v1::ListActiveRequest*,
                                       v1::ListActiveResponse* resp) override {
    return run(ctx, "ListActive", [&] { *resp = dispatcher_.list_active(); });
  }

 private:
  template <class F>
  grpc::ServerUnaryReactor* run(grpc::CallbackServerContext* ctx, const char* what, F&& f) {
    auto* r = ctx->DefaultReactor();
    grpc::Status st = grpc::Status::OK;
    try {
      f();
    } catch (const InvalidRequest& e) {
      st = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e.what());
    } catch (const std::exception& e) {
      log()->error("Operations.{} from {}: {}", what, ctx->peer(), e.what());
      st = grpc::Status(grpc::StatusCode::INTERNAL, e.what());
    }
    r->Finish(st);
    return r;
  }
  Dispatcher& dispatcher_;
};

}  // namespace

struct ControlServer::Services {
  Services(Dispatcher& d, size_t limit) : control(d, limit), operations(d) {}
  EffectorControlImpl control;
  OperationsImpl operations;
};

ControlServer::ControlServer(Dispatcher& dispatcher, ExecuteConfig cfg)
    : dispatcher_(dispatcher), cfg_(std::move(cfg)) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::start() {
  services_ = std::make_unique<Services>(dispatcher_, cfg_.effector_queue_limit);
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!cfg_.tls_cert_file.empty()) {
    grpc::SslServerCredentialsOptions opt;
    opt.pem_key_cert_pairs.push_back({read_file(cfg_.tls_key_file), read_file(cfg_.tls_cert_file)});
    creds = grpc::SslServerCredentials(opt);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  grpc::ServerBuilder b;
  b.AddListeningPort(cfg_.grpc_listen, creds, &port_);
  b.RegisterService(&services_->control);
  b.RegisterService(&services_->operations);
  // A second execute on the same port must fail, not silently share the port.
  b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Effectors keep their stream open for days: detect dead peers.
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  server_ = b.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    throw std::runtime_error("execute: cannot listen for gRPC on '" + cfg_.grpc_listen +
                             "' (execute.grpc_listen): address in use or invalid");
  }
  log()->info("gRPC (EffectorControl, Operations{}) listening on {} (port {})",
              cfg_.tls_cert_file.empty() ? "" : ", TLS", cfg_.grpc_listen, port_);
}

void ControlServer::stop() {
  if (!server_) return;
  // Streams never end by themselves: cancel them (and any unary call) after a short grace.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(250));
  server_->Wait();
  server_.reset();
  port_ = 0;
}

}  // namespace immunizer::execute
