// An application protected by Immunizer, built out of tree against the installed package.
// Configured by IMMUNIZER_* variables (bootstrap, execute address, signing key). Prints
// "connected", records CONSUMER_CALLS calls by principal user "mallory", prints the
// sensor's counters, then waits (bounded) until execute blocks mallory and prints
// "blocked". Exit: 0 blocked, 3 records not all sent, 4 no connection, 5 no block.
#include <immunizer/effector/effector.hpp>
#include <immunizer/sensor/sensor.hpp>
#include <immunizer/version.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

using namespace std::chrono_literals;

int main() {
  std::printf("consumer built against Immunizer %s\n", IMMUNIZER_VERSION);
  const int calls = std::getenv("CONSUMER_CALLS") ? std::atoi(std::getenv("CONSUMER_CALLS")) : 50;
  auto scfg = immunizer::sensor::SensorConfig::from_env();
  scfg.app = "consumer";
  auto sensor = immunizer::sensor::Sensor::create(scfg);
  auto ecfg = immunizer::effector::EffectorConfig::from_env();
  ecfg.app = "consumer";
  auto effector = immunizer::effector::Effector::create(ecfg);
  effector->start();

  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!effector->connected() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  if (!effector->connected()) {
    std::printf("not connected to execute at %s\n", ecfg.execute_address.c_str());
    return 4;
  }
  std::printf("connected\n");
  std::fflush(stdout);

  const immunizer::effector::PrincipalView mallory("mallory", "", "203.0.113.7");
  for (int i = 0; i < calls; ++i) {
    immunizer::sensor::CallScope call(*sensor, "consumer.handle");
    call.principal("mallory", "", "203.0.113.7");
    call.arg("item", static_cast<int64_t>(i));
    call.arg("query", "id=" + std::to_string(i));
    call.result(effector->allows(mallory, "consumer.handle") ? int64_t{200} : int64_t{403});
  }
  sensor->flush(10s);
  const auto st = sensor->stats();
  std::printf("recorded=%llu sent=%llu dropped=%llu\n", (unsigned long long)st.recorded,
              (unsigned long long)st.sent, (unsigned long long)st.dropped_total());
  if (st.sent != static_cast<uint64_t>(calls)) {
    for (size_t r = 0; r < immunizer::sensor::kDropReasons; ++r) {
      const auto reason = static_cast<immunizer::sensor::DropReason>(r);
      if (st.dropped_by(reason) == 0) continue;
      const auto name = immunizer::sensor::to_string(reason);
      std::printf("dropped %.*s=%llu\n", static_cast<int>(name.size()), name.data(),
                  static_cast<unsigned long long>(st.dropped_by(reason)));
    }
    std::printf("sample_rate=%g overhead_share=%g\n", st.sample_rate, st.overhead_share);
    std::fflush(stdout);
    return 3;
  }
  std::fflush(stdout);

  const auto block_deadline = std::chrono::steady_clock::now() + 60s;
  while (effector->allows(mallory, "consumer.handle")) {
    if (std::chrono::steady_clock::now() > block_deadline) {
      std::printf("not blocked\n");
      return 5;
    }
    std::this_thread::sleep_for(20ms);
  }
  const auto es = effector->stats();
  std::printf("blocked (directives applied %llu, denied %llu)\n", (unsigned long long)es.applied,
              (unsigned long long)es.denied);
  effector->stop();
  return 0;
}
