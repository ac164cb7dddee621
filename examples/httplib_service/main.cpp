// A fresh cpp-httplib service protected by Immunizer: the few lines marked "Immunizer" are
// all it takes (docs/integrate.md). Sensor and effector read IMMUNIZER_* variables
// (IMMUNIZER_KAFKA_BOOTSTRAP, IMMUNIZER_EXECUTE_ADDRESS, IMMUNIZER_SECURITY_SIGNING_KEY, ...).
//   immunizer-httplib-service [--port 8090]
#include <httplib.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "../common/agents.hpp"                           // Immunizer
#include "immunizer/integrations/httplib_middleware.hpp"  // Immunizer

namespace {
httplib::Server* g_server = nullptr;
void on_signal(int) {
  if (g_server) g_server->stop();
}
}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 2 && std::string(argv[1]) == "--port" ? std::atoi(argv[2]) : 8090;
  // Immunizer: an agent pair configured from the environment, around the service
  // (../common/agents.hpp), and the middleware.
  using immunizer::examples::Agents;
  return immunizer::examples::run_with_agents("immunizer-httplib-service", "notes", [&](Agents& a) {
    immunizer::integrations::http::MiddlewareOptions opt;
    opt.principal = immunizer::integrations::PrincipalOptions::from_env();
    opt.routes = {{"GET", "/notes/:id"}, {"POST", "/notes"}, {"GET", "/search"}};
    immunizer::integrations::http::Middleware immunizer_mw(a.sensor, a.effector, opt);

    httplib::Server server;
    immunizer_mw.install(server);  // Immunizer: the one line on the server

    // The application itself: a toy note store.
    server.Get(R"(/notes/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content("{\"id\": " + std::string(req.matches[1]) + ", \"text\": \"hello\"}",
                      "application/json");
    });
    server.Post("/notes", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 201;
      res.set_content("{\"id\": 1}", "application/json");
    });
    server.Get("/search", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content("[]", "application/json");
    });
    g_server = &server;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::printf(
        "notes service on http://127.0.0.1:%d (GET /notes/:id, POST /notes, GET /search?q=)\n",
        port);
    std::fflush(stdout);
    if (!server.listen("127.0.0.1", port)) {
      std::fprintf(stderr, "cannot listen on 127.0.0.1:%d\n", port);
      return 1;
    }
    return 0;
  });
}
