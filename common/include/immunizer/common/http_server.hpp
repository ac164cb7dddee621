// The HTTP endpoint every service exposes: /metrics (Prometheus text), /healthz (alive),
// /readyz (ready to serve), plus any routes a service adds (the dashboard adds its UI).
// Thread-safe; owns its listener thread. The registry must outlive the server.
#pragma once

#include <httplib.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace immunizer::common {

class HttpServer {
 public:
  HttpServer(std::string listen, int port, std::shared_ptr<prometheus::Registry> registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Add routes before start().
  httplib::Server& routes() { return server_; }
  // Binds (throws std::runtime_error naming the address when it cannot) and serves.
  void start();
  void stop();
  int port() const { return bound_port_; }
  void set_ready(bool r) { ready_ = r; }
  void set_status(std::string s);

 private:
  std::string listen_;
  int port_;
  int bound_port_ = 0;
  std::shared_ptr<prometheus::Registry> registry_;
  httplib::Server server_;
  std::thread thread_;
  std::atomic<bool> ready_{false};
  std::mutex status_mu_;
  std::string status_ = "starting";
};

}  // namespace immunizer::common
