// The execute gRPC server: EffectorControl.Connect (the bidi stream every effector holds)
// and Operations (manual Block / Unblock / ListActive), on one listener. Uses gRPC's callback
// API: no thread per stream; each stream has a bounded outbound queue and a slow effector is
// disconnected rather than allowed to block anyone. No exception escapes a gRPC callback.
// Thread-safe; the Dispatcher must outlive the server.
#pragma once

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "immunizer/execute/config.hpp"
#include "immunizer/execute/dispatcher.hpp"

namespace immunizer::execute {

class ControlServer {
 public:
  ControlServer(Dispatcher& dispatcher, ExecuteConfig cfg);
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

  struct Services;

 private:
  Dispatcher& dispatcher_;
  ExecuteConfig cfg_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace immunizer::execute
