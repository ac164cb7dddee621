#include "immunizer/execute/control_server.hpp"

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <deque>

#include "immunizer/common/grpc_tls.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/v1/control.grpc.pb.h"

namespace immunizer::execute {

// Who may do what: every call is checked against the role of the client certificate's
// identity before anything else happens; each refusal is counted by reason and logged.
class Access {
 public:
  Access(bool enabled, prometheus::Registry& registry)
      : enabled_(enabled),
        family_(prometheus::BuildCounter()
                    .Name("immunizer_execute_grpc_refused_total")
                    .Help("gRPC calls refused by execute, by reason (unauthenticated: no Immunizer "
                          "client "
                          "certificate; wrong_role: a role not allowed for the method; "
                          "identity_mismatch: an "
                          "effector hello for an app/instance its certificate does not name)")
                    .Register(registry)) {
    for (const char* r : {"unauthenticated", "wrong_role", "identity_mismatch"})
      counters_.emplace(r, &family_.Add({{"reason", r}}));
  }

  bool enabled() const { return enabled_; }

  // OK when the caller holds `role` (or TLS is off); otherwise the status to answer with.
  grpc::Status check(grpc::CallbackServerContext* ctx, common::Role role, const char* method,
                     common::PeerIdentity* who) {
    if (!enabled_) return grpc::Status::OK;
    const auto auth = ctx->auth_context();
    *who = auth ? common::peer_identity(*auth) : common::PeerIdentity{};
    if (who->role == common::Role::kNone) {
      refuse("unauthenticated", ctx, method, "no Immunizer client certificate");
      return grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          "a client certificate with an Immunizer identity (spiffe://immunizer/...) is required");
    }
    if (who->role != role) {
      refuse("wrong_role", ctx, method, who->uri);
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          std::string(method) + " needs the " +
                              std::string(common::to_string(role)) + " role, not " +
                              std::string(common::to_string(who->role)));
    }
    return grpc::Status::OK;
  }

  void refuse(const char* reason, grpc::CallbackServerContext* ctx, const char* method,
              const std::string& detail) {
    counters_.at(reason)->Increment();
    log()->warn("refused {} from {}: {} ({})", method, ctx->peer(), reason, detail);
  }

  uint64_t refused(const std::string& reason) const {
    const auto it = counters_.find(reason);
    return it == counters_.end() ? 0 : static_cast<uint64_t>(it->second->Value());
  }

  static std::shared_ptr<spdlog::logger> log() { return common::logger("execute"); }

 private:
  const bool enabled_;
  prometheus::Family<prometheus::Counter>& family_;
  std::map<std::string, prometheus::Counter*> counters_;
};

namespace {

std::shared_ptr<spdlog::logger> log() { return common::logger("execute"); }

class ConnectReactor;

// The dispatcher's handle on one stream. Outlives the reactor: after the stream is done,
// send() returns false and close() does nothing.
class StreamLink final : public EffectorLink {
 public:
  explicit StreamLink(ConnectReactor* r) : reactor_(r) {}
  bool send(const v1::Directive& d) override;
  bool send_batch(const v1::DirectiveBatch& b) override;
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
class ConnectReactor final
    : public grpc::ServerBidiReactor<v1::EffectorMessage, v1::ExecuteMessage> {
 public:
  ConnectReactor(Dispatcher& d, Access& access, grpc::CallbackServerContext* ctx,
                 size_t queue_limit)
      : dispatcher_(d),
        access_(access),
        ctx_(ctx),
        queue_limit_(queue_limit),
        link_(std::make_shared<StreamLink>(this)) {
    peer_ = ctx->peer();
    // Only effectors open control streams; anyone else is refused before reading a byte.
    if (grpc::Status st =
            access_.check(ctx, common::Role::kEffector, "EffectorControl.Connect", &who_);
        !st.ok()) {
      finish(std::move(st));
      return;
    }
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
          // An effector speaks only as itself: its certificate names its app (and instance).
          if (access_.enabled() && !common::effector_name_matches(who_.name, in_.hello().app(),
                                                                  in_.hello().instance())) {
            access_.refuse("identity_mismatch", ctx_, "EffectorControl.Connect",
                           "hello as '" + in_.hello().app().substr(0, 100) + "/" +
                               in_.hello().instance().substr(0, 100) + "' with certificate " +
                               who_.uri);
            finish(grpc::Status(
                grpc::StatusCode::PERMISSION_DENIED,
                "hello app/instance does not match the client certificate (" + who_.uri + ")"));
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
  Access& access_;
  grpc::CallbackServerContext* ctx_;
  const size_t queue_limit_;
  common::PeerIdentity who_;  // from the client certificate (empty with TLS off)
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
  return reactor_ != nullptr &&
         reactor_->enqueue([&](v1::ExecuteMessage& m) { *m.mutable_directive() = d; });
}

bool StreamLink::send_batch(const v1::DirectiveBatch& b) {
  std::lock_guard lk(mu_);
  return reactor_ != nullptr &&
         reactor_->enqueue([&](v1::ExecuteMessage& m) { *m.mutable_batch() = b; });
}

bool StreamLink::end_replay(uint32_t directives) {
  std::lock_guard lk(mu_);
  return reactor_ != nullptr && reactor_->enqueue([&](v1::ExecuteMessage& m) {
    m.mutable_replay_complete()->set_directives(directives);
  });
}

void StreamLink::close(const std::string& reason) {
  std::lock_guard lk(mu_);
  if (reactor_) reactor_->cancel(reason);
}

class EffectorControlImpl final : public v1::EffectorControl::CallbackService {
 public:
  EffectorControlImpl(Dispatcher& d, Access& a, size_t limit)
      : dispatcher_(d), access_(a), limit_(limit) {}
  grpc::ServerBidiReactor<v1::EffectorMessage, v1::ExecuteMessage>* Connect(
      grpc::CallbackServerContext* ctx) override {
    return new ConnectReactor(dispatcher_, access_, ctx, limit_);
  }

 private:
  Dispatcher& dispatcher_;
  Access& access_;
  size_t limit_;
};

class OperationsImpl final : public v1::Operations::CallbackService {
 public:
  OperationsImpl(Dispatcher& d, Access& a) : dispatcher_(d), access_(a) {}

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
  grpc::ServerUnaryReactor* ListActive(grpc::CallbackServerContext* ctx,
                                       const v1::ListActiveRequest*,
                                       v1::ListActiveResponse* resp) override {
    return run(ctx, "ListActive", [&] { *resp = dispatcher_.list_active(); });
  }

 private:
  template <class F>
  grpc::ServerUnaryReactor* run(grpc::CallbackServerContext* ctx, const char* what, F&& f) {
    auto* r = ctx->DefaultReactor();
    common::PeerIdentity who;
    grpc::Status st = access_.check(ctx, common::Role::kOperator, what, &who);
    if (!st.ok()) {
      r->Finish(st);
      return r;
    }
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
  Access& access_;
};

}  // namespace

struct ControlServer::Services {
  Services(Dispatcher& d, Access& a, size_t limit) : control(d, a, limit), operations(d, a) {}
  EffectorControlImpl control;
  OperationsImpl operations;
};

ControlServer::ControlServer(Dispatcher& dispatcher, ExecuteConfig cfg,
                             prometheus::Registry* registry)
    : dispatcher_(dispatcher), cfg_(std::move(cfg)) {
  if (!registry) {
    own_registry_ = std::make_shared<prometheus::Registry>();
    registry = own_registry_.get();
  }
  access_ = std::make_unique<Access>(cfg_.tls.enabled, *registry);
}

uint64_t ControlServer::refused(const std::string& reason) const {
  return access_->refused(reason);
}

ControlServer::~ControlServer() { stop(); }

void ControlServer::start() {
  services_ = std::make_unique<Services>(dispatcher_, *access_, cfg_.effector_queue_limit);
  const auto creds = common::server_credentials(cfg_.tls, "execute: gRPC TLS (execute.tls_*_file)");
  if (!cfg_.tls.enabled)
    log()->warn(
        "execute.tls=none: the gRPC server is plaintext and unauthenticated; anyone who reaches {} "
        "can "
        "block, unblock and pose as an effector",
        cfg_.grpc_listen);
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
  log()->info("gRPC (EffectorControl, Operations; {}) listening on {} (port {})",
              cfg_.tls.enabled ? "mutual TLS" : "PLAINTEXT", cfg_.grpc_listen, port_);
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
