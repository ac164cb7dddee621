// The HTTP endpoint every service exposes: /metrics (Prometheus text), /healthz (alive),
// /readyz (ready to serve: started, and Kafka reachable when a service watches it), plus any routes
// a service adds (the dashboard adds its UI).
//
// httplib parses and routes the requests, but the connections are handled here so that no
// client can hold the server: one poller thread accepts (at most `max_connections` open at
// once, further ones get 503) and reads each request head under a deadline, so slow or idle
// clients never occupy a worker; a fixed pool of workers runs complete requests. A body
// larger than `max_body_bytes` is refused with 413 from its Content-Length, before any of
// it is read; chunked or compressed request bodies are refused (411/415); the body of an
// accepted request must arrive within `read_timeout`. Every refusal is counted in
// immunizer_http_refused_total{reason} and logged at debug level.
//
// Thread-safe; owns its threads. The registry must outlive the server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "immunizer/common/metrics.hpp"

namespace httplib {
class Server;  // routes() is httplib's router: include <httplib.h> to add routes
}  // namespace httplib

namespace immunizer::common {

class Config;

struct HttpLimits {
  // Largest request body accepted (Content-Length); larger ones are answered 413 unread.
  size_t max_body_bytes = 64 * 1024;
  // Request line plus headers; larger heads are answered 431.
  size_t max_header_bytes = 16 * 1024;
  // Open connections at once (in any state); one more is answered 503 and closed.
  int max_connections = 128;
  // Requests processed at once (a Server-Sent Events stream holds one worker).
  int worker_threads = 8;
  // The whole request head must arrive within this time from its first byte.
  std::chrono::milliseconds header_timeout{5000};
  // The whole body must arrive within this time from the end of the head.
  std::chrono::milliseconds read_timeout{10000};
  // Each write of a response may wait this long for the client to read.
  std::chrono::milliseconds write_timeout{10000};
  // An idle keep-alive connection is closed after this time.
  std::chrono::milliseconds keep_alive_timeout{5000};
  int keep_alive_max_requests = 1000;

  // The http.* keys (http.max_body_bytes, http.max_connections, http.worker_threads,
  // http.header_timeout_ms, http.read_timeout_ms, http.keep_alive_timeout_ms).
  static HttpLimits from_config(const Config& c);
};

class HttpEngine;  // httplib::Server driven by our own connections (http_server.cpp)

class HttpServer {
 public:
  HttpServer(std::string listen, int port, std::shared_ptr<prometheus::Registry> registry,
             HttpLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Add routes before start().
  httplib::Server& routes();
  // Before start(): e.g. the dashboard needs a worker per event-stream client.
  HttpLimits& limits() { return limits_; }
  // Binds (throws std::runtime_error naming the address when it cannot) and serves.
  void start();
  void stop();
  int port() const { return bound_port_; }
  void set_ready(bool r) { ready_ = r; }
  void set_status(std::string s);
  // /readyz answers 503 with `why` while false (the service cannot reach Kafka), whatever
  // set_ready says. True until first set.
  void set_broker_reachable(bool reachable, std::string why = "");

 private:
  std::string listen_;
  int port_;
  int bound_port_ = 0;
  std::shared_ptr<prometheus::Registry> registry_;
  HttpLimits limits_;
  std::unique_ptr<HttpEngine> engine_;
  std::atomic<bool> ready_{false};
  std::mutex status_mu_;
  std::string status_ = "starting";
  bool broker_reachable_ = true;
  std::string broker_why_;
};

}  // namespace immunizer::common
