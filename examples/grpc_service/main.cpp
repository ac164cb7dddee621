// A fresh gRPC service protected by Immunizer: the lines marked "Immunizer" are all it takes
// (docs/integrate.md). Sensor and effector read IMMUNIZER_* variables.
//   immunizer-grpc-service [--port 50051]
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "../common/agents.hpp"                         // Immunizer
#include "immunizer/integrations/grpc_interceptor.hpp"  // Immunizer
#include "immunizer/test/shop_service.grpc.pb.h"

namespace {

class ShopService final : public immunizer::test::Shop::Service {
  grpc::Status Order(grpc::ServerContext* ctx, const immunizer::test::OrderRequest* req,
                     immunizer::test::OrderReply* rep) override {
    if (immunizer::integrations::grpc::denied(*ctx))
      return grpc::Status::CANCELLED;  // Immunizer: no side effects
    if (req->quantity() <= 0)
      return grpc::Status(grpc::INVALID_ARGUMENT, "quantity must be positive");
    rep->set_order_id("order-" + std::to_string(req->quantity()));
    rep->set_total_cents(static_cast<int64_t>(req->price() * 100) * req->quantity());
    return grpc::Status::OK;
  }
};

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 2 && std::string(argv[1]) == "--port" ? std::atoi(argv[2]) : 50051;
  // Immunizer: an agent pair configured from the environment, around the service
  // (../common/agents.hpp).
  using immunizer::examples::Agents;
  return immunizer::examples::run_with_agents("immunizer-grpc-service", "orders", [&](Agents& a) {
    ShopService service;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureServerCredentials());
    builder.RegisterService(&service);
    immunizer::integrations::grpc::install(
        builder, a.sensor, a.effector,
        {.principal = immunizer::integrations::PrincipalOptions::from_env()});  // Immunizer
    auto server = builder.BuildAndStart();
    if (!server) throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port));
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::printf("orders service (immunizer.test.Shop) on 127.0.0.1:%d\n", port);
    std::fflush(stdout);
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server->Shutdown();
    return 0;
  });
}
