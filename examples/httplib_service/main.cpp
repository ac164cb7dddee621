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

#include "immunizer/integrations/httplib_middleware.hpp"  // Immunizer

namespace {
httplib::Server* g_server = nullptr;
void on_signal(int) {
  if (g_server) g_server->stop();
}
}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 2 && std::string(argv[1]) == "--port" ? std::atoi(argv[2]) : 8090;
  try {
    // Immunizer: an agent pair configured from the environment, and the middleware.
    auto sensor_cfg = immunizer::sensor::SensorConfig::from_env();
    auto effector_cfg = immunizer::effector::EffectorConfig::from_env();
    if (!std::getenv("IMMUNIZER_APP")) sensor_cfg.app = effector_cfg.app = "notes";
    auto sensor = immunizer::sensor::Sensor::create(sensor_cfg);
    auto effector = immunizer::effector::Effector::create(effector_cfg);
    effector->start();
    sensor->set_watch(&immunizer::effector::Effector::watch_hook, effector.get());  // watches
    immunizer::integrations::http::MiddlewareOptions opt;
    opt.principal = immunizer::integrations::PrincipalOptions::from_env();
    opt.routes = {{"GET", "/notes/:id"}, {"POST", "/notes"}, {"GET", "/search"}};
    immunizer::integrations::http::Middleware immunizer_mw(sensor, effector, opt);

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
    effector->stop();
    sensor->flush(std::chrono::seconds(5));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "immunizer-httplib-service: %s\n", e.what());
    return 1;
  }
  return 0;
}
