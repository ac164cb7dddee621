// The execute gRPC server: EffectorControl.Connect (the bidi stream every effector holds)
// and Operations (manual Block / Unblock / ListActive), on one listener. Uses gRPC's callback
// API: no thread per stream; each stream has a bounded outbound queue and a slow effector is
// disconnected rather than allowed to block anyone. No exception escapes a gRPC callback.
// Mutual TLS (execute.tls): every call is authorised by the role of the client certificate's
// identity (spiffe://immunizer/<role>/<name>): effectors may only Connect and say hello as the
// app (and instance) their certificate names; operators may only call Operations. Refusals
// answer UNAUTHENTICATED or PERMISSION_DENIED and count in
// immunizer_execute_grpc_refused_total{reason}.
// Thread-safe; the Dispatcher must outlive the server.
#pragma once

#include <grpcpp/server.h>

#include <cstdint>
#include <memory>
#include <string>

#include "immunizer/execute/config.hpp"
#include "immunizer/execute/dispatcher.hpp"

namespace prometheus {
class Registry;
}

namespace immunizer::execute {

class Access;

class ControlServer {
 public:
  // `registry` (may be null: a private one) receives the refusal counters.
  ControlServer(Dispatcher& dispatcher, ExecuteConfig cfg,
                prometheus::Registry* registry = nullptr);
  ~ControlServer();  // stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds cfg.grpc_listen and serves; throws std::runtime_error naming the address when it
  // cannot bind or a TLS file cannot be read.
  void start();
  // Ends every stream (effectors reconnect elsewhere) and waits for the callbacks.
  void stop();
  // The bound port (useful with port 0); 0 before start().
  int port() const { return port_; }
  // Calls refused for `reason` ("unauthenticated", "wrong_role", "identity_mismatch").
  uint64_t refused(const std::string& reason) const;

  struct Services;

 private:
  Dispatcher& dispatcher_;
  ExecuteConfig cfg_;
  std::shared_ptr<prometheus::Registry> own_registry_;
  std::unique_ptr<Access> access_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace immunizer::execute
