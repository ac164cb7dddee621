#include "immunizer/dashboard/operations.hpp"

#include <grpcpp/grpcpp.h>

#include "immunizer/common/config.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/v1/control.grpc.pb.h"

namespace immunizer::dashboard {

namespace {

OpsStatus from_grpc(const grpc::Status& s, const std::string& target) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return {};
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return {OpsStatus::kUnavailable,
              "execute unreachable at " + target + ": " + s.error_message()};
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return {OpsStatus::kInvalidArgument, s.error_message()};
    case grpc::StatusCode::NOT_FOUND:
      return {OpsStatus::kNotFound, s.error_message()};
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return {OpsStatus::kFailed, "execute at " + target +
                                      " refused the dashboard's certificate (it must name an "
                                      "operator, spiffe://immunizer/operator/...): " +
                                      s.error_message()};
    default:
      return {OpsStatus::kFailed, "execute at " + target + " failed: " + s.error_message()};
  }
}

class GrpcOperationsClient final : public OperationsClient {
 public:
  GrpcOperationsClient(std::string address, std::chrono::milliseconds timeout,
                       const std::shared_ptr<grpc::ChannelCredentials>& creds,
                       const common::TlsFiles& tls)
      : address_(std::move(address)), timeout_(timeout) {
    grpc::ChannelArguments args;
    common::apply_channel_args(tls, args);
    // execute may start after the dashboard: reconnect within 2 s instead of gRPC's backoff of
    // up to 2 minutes, and let each call wait for the connection within its deadline (below).
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    stub_ = v1::Operations::NewStub(grpc::CreateCustomChannel(address_, creds, args));
  }

  OpsStatus block(const v1::BlockRequest& req, v1::BlockResponse* resp) override {
    grpc::ClientContext ctx;
    ready_within_deadline(ctx);
    return from_grpc(stub_->Block(&ctx, req, resp), address_);
  }
  OpsStatus unblock(const v1::UnblockRequest& req, v1::UnblockResponse* resp) override {
    grpc::ClientContext ctx;
    ready_within_deadline(ctx);
    return from_grpc(stub_->Unblock(&ctx, req, resp), address_);
  }
  OpsStatus list_active(v1::ListActiveResponse* resp) override {
    grpc::ClientContext ctx;
    ready_within_deadline(ctx);
    return from_grpc(stub_->ListActive(&ctx, v1::ListActiveRequest{}, resp), address_);
  }
  std::string target() const override { return address_; }

 private:
  // A call waits (up to its deadline) for a channel in backoff to connect rather than failing
  // at once: a manual block right after execute (re)starts still reaches it.
  void ready_within_deadline(grpc::ClientContext& ctx) const {
    ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
    ctx.set_wait_for_ready(true);
  }

  std::string address_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<v1::Operations::Stub> stub_;
};

}  // namespace

std::unique_ptr<OperationsClient> make_grpc_operations_client(const std::string& address,
                                                              std::chrono::milliseconds timeout,
                                                              const common::TlsFiles& tls) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  try {
    creds = common::client_credentials(tls, "dashboard.execute_tls_{ca,cert,key}_file");
  } catch (const std::runtime_error& e) {
    throw common::ConfigError(e.what());
  }
  if (!tls.enabled)
    common::logger("dashboard")
        ->warn(
            "dashboard.execute_tls=none: calls to execute at {} are plaintext and "
            "unauthenticated (execute refuses them unless it runs with execute.tls=none)",
            address);
  return std::make_unique<GrpcOperationsClient>(address, timeout, creds, tls);
}

}  // namespace immunizer::dashboard
