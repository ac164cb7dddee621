// Seam to execute's gRPC Operations service (manual block/unblock, active list), so the
// HTTP API can be tested with a fake. Implementations are thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "immunizer/common/grpc_tls.hpp"
#include "immunizer/v1/control.pb.h"

namespace immunizer::dashboard {

struct OpsStatus {
  enum Code { kOk, kUnavailable, kInvalidArgument, kNotFound, kFailed };
  Code code = kOk;
  std::string message;
  bool ok() const { return code == kOk; }
};

class OperationsClient {
 public:
  virtual ~OperationsClient() = default;
  virtual OpsStatus block(const v1::BlockRequest& req, v1::BlockResponse* resp) = 0;
  virtual OpsStatus unblock(const v1::UnblockRequest& req, v1::UnblockResponse* resp) = 0;
  virtual OpsStatus list_active(v1::ListActiveResponse* resp) = 0;
  // Where the calls go, for error messages.
  virtual std::string target() const = 0;
};

// gRPC channel to `address` (host:port) with mutual TLS from `tls` (plaintext only when
// tls.enabled is false, logged as a warning); each call has `timeout` as deadline. Throws
// common::ConfigError naming the dashboard.execute_tls_* key when a TLS file is missing or
// unreadable. Connection problems surface as kUnavailable, refusals by execute
// (UNAUTHENTICATED, PERMISSION_DENIED) as kFailed, never as exceptions.
std::unique_ptr<OperationsClient> make_grpc_operations_client(const std::string& address,
                                                              std::chrono::milliseconds timeout,
                                                              const common::TlsFiles& tls);

}  // namespace immunizer::dashboard
