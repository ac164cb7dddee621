// Immunizer middleware for cpp-httplib servers: a pre-routing handler that asks the effector
// whether the request's principal may proceed (403 otherwise, before any handler runs) and a
// logger that records the request with the sensor (installed as httplib's post-routing
// handler: it runs when the status is final, before the response is written, so durations
// do not include the client's socket). Two calls per request:
//   - `http.request` (configurable): method, path, raw query, headers (minus credentials and
//     forwarding headers), body length; result = the status code;
//   - for a request matching a route (or named by the `endpoint` callback): a call named by
//     the route, context `http.request`, with path parameters, query parameters, form fields
//     and JSON body fields as typed arguments; result = the status code.
// The application's own CallScopes opened by a handler nest under both.
// Setup: `Middleware mw(sensor, effector, options); mw.install(server);` (one line), or call
// pre_routing()/log() from your own pre-routing and post-routing handlers.
// Thread-safety: one Middleware per server, shared by its worker threads; it must outlive the
// server's last request. Each worker thread keeps the open scopes of its current request in
// thread-local storage between pre_routing() and log() (httplib runs both on that thread).
#pragma once

#include <httplib.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "immunizer/effector/effector.hpp"
#include "immunizer/integrations/principal.hpp"
#include "immunizer/sensor/sensor.hpp"

namespace immunizer::integrations::http {

// "GET /users/:id/orders/:order", "/files/*" (any method when the method is empty). A
// segment ":name" matches one path segment and becomes argument `name`; a final "*" matches
// the rest (argument "*").
struct Route {
  std::string method;   // empty: any
  std::string pattern;  // the call name of matching requests
};

// Receives one decoded parameter (name, value).
using ParamSink = std::function<void(std::string_view, std::string_view)>;

struct MiddlewareOptions {
  PrincipalOptions principal;
  std::string request_call = "http.request";  // the outer call; empty: not recorded
  std::vector<Route> routes;                  // endpoint calls (first match wins)
  // When no route matches: the endpoint call for this request, or "" for none.
  std::function<std::string(const httplib::Request&)> endpoint;
  // Decodes a query string or url-encoded form into parameters, in order. Default: split on
  // '&' and '=', percent-decoding with '+' as a space.
  std::function<void(std::string_view encoded, const ParamSink&)> params;
  // Converts recorded path, query and header text (e.g. Latin-1 to UTF-8); returns a view of
  // the input or of `scratch`. Default: as received.
  std::function<std::string_view(std::string_view, std::string& scratch)> text;
  // Lower-case header names never recorded (credentials and forwarding headers), plus any
  // name starting with "x-immunizer-" and httplib's own REMOTE_ADDR/PORT, LOCAL_ADDR/PORT.
  std::vector<std::string> excluded_headers{
      "cookie",         "authorization",   "proxy-authorization",
      "content-length", "x-forwarded-for", "forwarded"};
  bool record_headers = true;
  bool json_body = true;    // application/json bodies as nested typed arguments
  bool raw_body = true;     // any other body as one bytes argument "body"
  int max_json_depth = 16;  // deeper values are dropped (counted in the "json.truncated" label)
  size_t max_json_elements = 1024;
  // A request carrying this header gets it as the records' "trace" label, and the outer
  // record's id back in X-Immunizer-Record. Empty: off.
  std::string trace_header = "X-Immunizer-Trace";
  std::string denied_body = "blocked by Immunizer\n";
};

struct MiddlewareStats {
  uint64_t requests = 0, denied = 0;
};

class Middleware {
 public:
  // sensor and effector may be null (then it only enforces, or only records). Throws
  // std::invalid_argument on bad options (a malformed trusted-proxy CIDR).
  Middleware(std::shared_ptr<sensor::Sensor> sensor, std::shared_ptr<effector::Effector> effector,
             MiddlewareOptions options = {});
  Middleware(const Middleware&) = delete;
  Middleware& operator=(const Middleware&) = delete;

  // Sets the server's pre-routing and post-routing handlers to this middleware's.
  void install(httplib::Server& server);

  // Opens the request's records and enforces; Handled (403 written) when denied. A denied
  // request with a body is answered with "Connection: close" (httplib has not read the
  // body yet, so the connection cannot carry another request).
  httplib::Server::HandlerResponse pre_routing(const httplib::Request& req, httplib::Response& res);
  // Completes and closes the request's records (post-routing: the status is final).
  void log(const httplib::Request& req, const httplib::Response& res);

  // The principal of a request (client address per the trusted proxies).
  sensor::Principal principal(const httplib::Request& req) const;
  // The endpoint call of a request ("" when none) and, through `on_param`, its path parameters.
  std::string endpoint_of(const httplib::Request& req, const ParamSink* on_param = nullptr) const;

  MiddlewareStats stats() const;

 private:
  // pre_routing()'s parts: the outer record's arguments and labels (and the X-Immunizer-Record
  // answer header), the inner record's path and query arguments, the 403 answer.
  void record_outer(sensor::CallScope& outer, const httplib::Request& req, httplib::Response& res,
                    const sensor::Principal& who, const std::string& trace) const;
  void record_inner_start(
      sensor::CallScope& inner, const httplib::Request& req, const sensor::Principal& who,
      const std::string& trace,
      const std::vector<std::pair<std::string, std::string>>& path_params) const;
  httplib::Server::HandlerResponse deny(const httplib::Request& req, httplib::Response& res);
  void record_inner_args(sensor::CallScope& inner, const httplib::Request& req,
                         bool body_read) const;

  std::shared_ptr<sensor::Sensor> sensor_;
  std::shared_ptr<effector::Effector> effector_;
  MiddlewareOptions opt_;
  ProxyTrust trust_;
  std::atomic<uint64_t> requests_{0}, denied_{0};
};

// Percent-decoding ('+' as a space when asked); invalid escapes are kept as they are.
std::string url_decode(std::string_view s, bool plus_as_space);
// The default MiddlewareOptions::params.
void for_each_param(std::string_view encoded, const ParamSink& f);

}  // namespace immunizer::integrations::http
