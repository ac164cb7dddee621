// The instrumented demo shop: serves the CSIC 2010 "tienda1" endpoints over HTTP. Recording
// and enforcement are the cpp-httplib middleware's (integrations/, docs/integrate.md): an
// outer `http.request` call, and an inner call named by the endpoint's path with its decoded
// parameters (CSIC's Latin-1 bytes as UTF-8), both checked with the effector before the page
// is served. The principal is the JSESSIONID cookie and the client address (X-Forwarded-For
// only from the trusted proxies configured). Thread-safe: handlers run on the HTTP server's
// pool; sensor, effector and middleware are shared.
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

#include "immunizer/effector/effector.hpp"
#include "immunizer/integrations/httplib_middleware.hpp"
#include "immunizer/sensor/sensor.hpp"

namespace immunizer::shop {

struct ShopOptions {
  // Client address, session cookie (default: no trusted proxy, JSESSIONID).
  integrations::PrincipalOptions principal;
};

struct ShopCounters {  // requests served (denied ones never reach the shop: see blocked())
  std::atomic<uint64_t> requests{0}, ok{0}, not_found{0};
};

class Shop {
 public:
  // sensor and effector may be null: the shop then runs uninstrumented (baseline for benchmarks).
  Shop(std::shared_ptr<sensor::Sensor> sensor, std::shared_ptr<effector::Effector> effector,
       ShopOptions opt);
  // Registers the shop's routes (every path, GET/POST/PUT/HEAD) and the middleware on `server`.
  void install(httplib::Server& server);
  // Handles one request as the server would (middleware, page, middleware's logger); public
  // so tests and benchmarks call it without a socket.
  void handle(const httplib::Request& req, httplib::Response& res);
  const ShopCounters& counters() const { return counters_; }
  uint64_t blocked() const { return middleware_ ? middleware_->stats().denied : 0; }

 private:
  void serve(const httplib::Request& req, httplib::Response& res);
  static int page_status(const httplib::Request& req);
  std::unique_ptr<integrations::http::Middleware> middleware_;  // null when uninstrumented
  ShopCounters counters_;
};

// The middleware options the shop uses (CSIC decoding, endpoint calls by path).
integrations::http::MiddlewareOptions middleware_options(const ShopOptions& opt);

// JSESSIONID from a Cookie header value, or empty.
std::string session_from_cookie(const std::string& cookie);

}  // namespace immunizer::shop
