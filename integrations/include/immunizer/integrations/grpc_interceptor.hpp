// Immunizer server interceptor for gRPC C++ (grpc::experimental server interceptors). Every
// RPC becomes one record: the full method name ("/pkg.Service/Method") as the call, the
// request message's fields as typed nested arguments (protobuf reflection, bounded by
// max_depth / max_elements), the peer address (forwarded metadata only from trusted proxies)
// and configured metadata keys as principal, the status code as result (and the status as
// error when not OK). Setup, one line:
//
//   immunizer::integrations::grpc::install(builder, sensor, effector);
//
// Enforcement: allows(principal, method) is asked when the call's metadata arrives. gRPC C++
// server interceptors cannot stop a handler from being invoked (grpc/grpc#24017), so a denied
// call reaches its handler with the request message cleared (the attacker's payload never
// reaches application code), `denied(context)` true, the response replaced by an empty one
// and the status replaced by PERMISSION_DENIED. Handlers with side effects that must not run
// even with an empty request check `denied(context)` first (one line).
// The record is written when the status is sent (or when the call ends without one), on that
// thread: its duration field is not the handler's (measure it in the handler if needed).
// Thread-safety: the factory and its options are shared by all server threads.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>
#include <vector>

#include "immunizer/effector/effector.hpp"
#include "immunizer/integrations/principal.hpp"
#include "immunizer/sensor/sensor.hpp"

namespace immunizer::integrations::grpc {

struct InterceptorOptions {
  // session_headers / user_headers are metadata keys here (lower case); session cookies are
  // read from "cookie" metadata; forwarded addresses from "x-forwarded-for" / "forwarded".
  PrincipalOptions principal{.session_cookies = {}};
  int max_depth = 8;           // nested messages deeper than this are recorded as null
  size_t max_elements = 1024;  // values per record (fields, list items, map entries)
  bool record_request = true;  // request fields as arguments
};

// Counters shared by every interceptor of a factory.
struct InterceptorStats {
  std::atomic<uint64_t> calls{0}, denied{0}, truncated{0};
};

class InterceptorFactory : public ::grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // sensor and effector may be null. Throws std::invalid_argument on a bad trusted-proxy CIDR.
  InterceptorFactory(std::shared_ptr<sensor::Sensor> sensor,
                     std::shared_ptr<effector::Effector> effector, InterceptorOptions options = {});
  ::grpc::experimental::Interceptor* CreateServerInterceptor(
      ::grpc::experimental::ServerRpcInfo* info) override;
  // Valid as long as the caller holds it (the factory may be gone with its server).
  std::shared_ptr<const InterceptorStats> stats() const;

  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
};

// Adds the interceptor to `builder` (replacing the builder's interceptor list: if you have
// interceptors of your own, put an InterceptorFactory first in your list instead). Returns
// the interceptor's counters.
std::shared_ptr<const InterceptorStats> install(::grpc::ServerBuilder& builder,
                                                std::shared_ptr<sensor::Sensor> sensor,
                                                std::shared_ptr<effector::Effector> effector,
                                                InterceptorOptions options = {});

// True when Immunizer denied this call (its request was cleared; its status will be
// PERMISSION_DENIED whatever the handler returns).
bool denied(const ::grpc::ServerContextBase& context);

}  // namespace immunizer::integrations::grpc
