// A cpp-httplib service protected by Immunizer through the installed integration
// (Immunizer::httplib_middleware, one line: mw.install(server)), built out of tree. Serves on
// 127.0.0.1 (an ephemeral port), sends itself CONSUMER_CALLS requests as user "mallory" (the
// X-User header, which this service's own authentication would set), prints
// "requests=N", then (bounded) keeps sending until the middleware answers 403 - execute
// blocked mallory - and prints "blocked". Exit: 0 blocked, 4 no connection to execute,
// 5 no block, 6 the server did not start.
#include <httplib.h>

#include <immunizer/integrations/httplib_middleware.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

using namespace std::chrono_literals;

int main() {
  const int calls = std::getenv("CONSUMER_CALLS") ? std::atoi(std::getenv("CONSUMER_CALLS")) : 50;
  auto scfg = immunizer::sensor::SensorConfig::from_env();
  scfg.app = "consumer";
  std::shared_ptr<immunizer::sensor::Sensor> sensor = immunizer::sensor::Sensor::create(scfg);
  auto ecfg = immunizer::effector::EffectorConfig::from_env();
  ecfg.app = "consumer";
  std::shared_ptr<immunizer::effector::Effector> effector =
      immunizer::effector::Effector::create(ecfg);
  effector->start();

  immunizer::integrations::http::MiddlewareOptions opt;
  opt.principal.user_headers = {"X-User"};
  opt.routes = {{"GET", "/hello"}};
  immunizer::integrations::http::Middleware mw(sensor, effector, opt);
  httplib::Server server;
  server.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("hello\n", "text/plain");
  });
  mw.install(server);
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0) return 6;
  std::thread serving([&] { server.listen_after_bind(); });

  int rc = 5;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!effector->connected() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  if (!effector->connected()) {
    std::printf("not connected to execute at %s\n", ecfg.execute_address.c_str());
    rc = 4;
  } else {
    httplib::Client client("127.0.0.1", port);
    const httplib::Headers user{{"X-User", "mallory"}};
    int ok = 0;
    for (int i = 0; i < calls; ++i)
      if (auto r = client.Get("/hello?item=" + std::to_string(i), user); r && r->status == 200)
        ++ok;
    std::printf("requests=%d answered=%d\n", calls, ok);
    std::fflush(stdout);
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < until) {
      auto r = client.Get("/hello", user);
      if (r && r->status == 403) {
        std::printf("blocked (HTTP 403 from the middleware)\n");
        rc = 0;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  server.stop();
  serving.join();
  return rc;
}
