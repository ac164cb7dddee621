// The instrumented demo shop: serves the CSIC 2010 "tienda1" endpoints over HTTP and
// records every request with the sensor (an outer `http.request` call, and an inner call
// named by the endpoint's path with its decoded parameters), asking the effector first
// whether the principal (session cookie, client address) may proceed. Thread-safe: handlers
// run on the HTTP server's pool; sensor and effector are shared.
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

#include "immunizer/effector/effector.hpp"
#include "immunizer/sensor/sensor.hpp"

namespace immunizer::shop {

struct ShopOptions {
  // Take the client address from X-Forwarded-For (the shop sits behind a proxy or the replayer).
  bool trust_forwarded_for = true;
};

struct ShopCounters {
  std::atomic<uint64_t> requests{0}, ok{0}, not_found{0}, blocked{0};
};

class Shop {
 public:
  // sensor and effector may be null: the shop then runs uninstrumented (baseline for benchmarks).
  Shop(std::shared_ptr<sensor::Sensor> sensor, std::shared_ptr<effector::Effector> effector, ShopOptions opt);
  // Registers the shop's routes (every path, GET/POST/PUT/HEAD) on `server`.
  void install(httplib::Server& server);
  // Handles one request; public so tests call it without a socket.
  void handle(const httplib::Request& req, httplib::Response& res);
  const ShopCounters& counters() const { return counters_; }

 private:
  void serve_page(const std::string& path, const std::string& method, httplib::Response& res);
  std::shared_ptr<sensor::Sensor> sensor_;
  std::shared_ptr<effector::Effector> effector_;
  ShopOptions opt_;
  ShopCounters counters_;
};

// JSESSIONID from a Cookie header value, or empty.
std::string session_from_cookie(const std::string& cookie);

}  // namespace immunizer::shop
