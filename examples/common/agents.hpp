// What the example services (examples/grpc_service, examples/httplib_service) share: the agent
// pair of docs/integrate.md, a sensor and an effector configured from the IMMUNIZER_* variables
// (app `default_app` unless IMMUNIZER_APP names one), the effector started and the sensor asking
// it which principals are watched (ACTION_WATCH_PRINCIPAL: every call of theirs is recorded);
// after the service, the effector stopped and the sensor flushed.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>

#include "immunizer/effector/effector.hpp"
#include "immunizer/sensor/sensor.hpp"

namespace immunizer::examples {

struct Agents {
  std::shared_ptr<sensor::Sensor> sensor;
  std::shared_ptr<effector::Effector> effector;
};

// Throws what SensorConfig/EffectorConfig::from_env and create() throw on a bad configuration.
inline Agents start_agents(const char* default_app) {
  auto sensor_cfg = sensor::SensorConfig::from_env();
  auto effector_cfg = effector::EffectorConfig::from_env();
  if (!std::getenv("IMMUNIZER_APP")) sensor_cfg.app = effector_cfg.app = default_app;
  Agents a{sensor::Sensor::create(sensor_cfg), effector::Effector::create(effector_cfg)};
  a.effector->start();
  a.sensor->set_watch(&effector::Effector::watch_hook, a.effector.get());
  return a;
}

// main() of an example service: `serve(agents)` between start_agents(default_app) and the
// agents' stop (the effector stopped, the sensor flushed for 5 s at most); returns its exit
// code, or prints "<name>: <what>" of an exception and returns 1.
template <typename Serve>
int run_with_agents(const char* name, const char* default_app, Serve serve) {
  try {
    Agents agents = start_agents(default_app);
    const int rc = serve(agents);
    agents.effector->stop();
    agents.sensor->flush(std::chrono::seconds(5));
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace immunizer::examples
