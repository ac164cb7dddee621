// SensorConfig::from_env: zero-code setup from IMMUNIZER_* environment variables.
#include <iterator>
#include <string>
#include <utility>

#include "immunizer/agent/env.hpp"
#include "immunizer/common/enum_names.hpp"
#include "immunizer/sensor/sensor.hpp"

namespace immunizer::sensor {

namespace {
constexpr std::string_view kDropReasonNames[] = {"sampled_out", "budget", "queue_full",
                                                 "delivery_failed", "shutdown"};
static_assert(std::size(kDropReasonNames) == kDropReasons);
constexpr std::string_view kKeepReasonNames[] = {
    "new_arg_name", "name_table_full", "too_long", "invalid_utf8", "watched", "rare_characters"};
static_assert(std::size(kKeepReasonNames) == kKeepReasons);
}  // namespace

std::string_view to_string(DropReason r) noexcept {
  return common::enum_name(kDropReasonNames, r, "unknown");
}

std::string_view to_string(KeepReason r) noexcept {
  return common::enum_name(kKeepReasonNames, r, "unknown");
}

SensorConfig SensorConfig::from_env() {
  // The sensor's own namespace is strict: a misspelled IMMUNIZER_SENSOR_* variable is an
  // error, not silently ignored (other IMMUNIZER_* variables belong to other components).
  const agent::EnvReader env(
      "sensor", "IMMUNIZER_SENSOR_",
      {"IMMUNIZER_SENSOR_ENABLED", "IMMUNIZER_SENSOR_SAMPLE_RATE", "IMMUNIZER_SENSOR_CPU_BUDGET",
       "IMMUNIZER_SENSOR_MIN_SAMPLE_RATE", "IMMUNIZER_SENSOR_KEEP_FLAGGED",
       "IMMUNIZER_SENSOR_MAX_INFLIGHT_BYTES", "IMMUNIZER_SENSOR_QUEUE_CAPACITY",
       "IMMUNIZER_SENSOR_DELIVERY_TIMEOUT_MS", "IMMUNIZER_SENSOR_LINGER_MS",
       "IMMUNIZER_SENSOR_MAX_BATCH_RECORDS", "IMMUNIZER_SENSOR_MAX_BATCH_BYTES",
       "IMMUNIZER_SENSOR_MAX_STRING_BYTES", "IMMUNIZER_SENSOR_MAX_RECORD_BYTES",
       "IMMUNIZER_SENSOR_IDEMPOTENCE", "IMMUNIZER_SENSOR_COMPRESSION",
       "IMMUNIZER_SENSOR_SHUTDOWN_FLUSH_MS", "IMMUNIZER_SENSOR_KAFKA_PROPERTIES"});
  auto size = [&](const char* name, size_t def, long long lo, long long hi) {
    return static_cast<size_t>(env.integer(name, static_cast<long long>(def), lo, hi));
  };
  SensorConfig c;
  env.string("IMMUNIZER_APP", &c.app);
  env.string("IMMUNIZER_INSTANCE", &c.instance);
  env.string("IMMUNIZER_KAFKA_BOOTSTRAP", &c.bootstrap);
  env.string("IMMUNIZER_KAFKA_TOPIC_PREFIX", &c.topic_prefix);
  c.enabled = env.boolean("IMMUNIZER_SENSOR_ENABLED", c.enabled);
  c.sample_rate = env.number("IMMUNIZER_SENSOR_SAMPLE_RATE", c.sample_rate, 0.0, 1.0);
  c.cpu_budget = env.number("IMMUNIZER_SENSOR_CPU_BUDGET", c.cpu_budget, 0.0, 1.0);
  c.min_sample_rate = env.number("IMMUNIZER_SENSOR_MIN_SAMPLE_RATE", c.min_sample_rate, 0.0, 1.0);
  c.keep_flagged = env.boolean("IMMUNIZER_SENSOR_KEEP_FLAGGED", c.keep_flagged);
  c.max_inflight_bytes =
      size("IMMUNIZER_SENSOR_MAX_INFLIGHT_BYTES", c.max_inflight_bytes, 4096, 1ll << 40);
  c.queue_capacity = size("IMMUNIZER_SENSOR_QUEUE_CAPACITY", c.queue_capacity, 16, 1 << 24);
  c.delivery_timeout_ms = static_cast<int>(
      env.integer("IMMUNIZER_SENSOR_DELIVERY_TIMEOUT_MS", c.delivery_timeout_ms, 1, 3'600'000));
  c.linger_ms = static_cast<int>(env.integer("IMMUNIZER_SENSOR_LINGER_MS", c.linger_ms, 0, 60'000));
  c.max_batch_records = size("IMMUNIZER_SENSOR_MAX_BATCH_RECORDS", c.max_batch_records, 1, 65536);
  c.max_batch_bytes = size("IMMUNIZER_SENSOR_MAX_BATCH_BYTES", c.max_batch_bytes, 1024, 16 << 20);
  c.max_string_bytes = size("IMMUNIZER_SENSOR_MAX_STRING_BYTES", c.max_string_bytes, 16, 16 << 20);
  c.max_record_bytes =
      size("IMMUNIZER_SENSOR_MAX_RECORD_BYTES", c.max_record_bytes, 1024, 16 << 20);
  c.idempotence = env.boolean("IMMUNIZER_SENSOR_IDEMPOTENCE", c.idempotence);
  env.string("IMMUNIZER_SENSOR_COMPRESSION", &c.compression);
  c.shutdown_flush_timeout = std::chrono::milliseconds(env.integer(
      "IMMUNIZER_SENSOR_SHUTDOWN_FLUSH_MS", c.shutdown_flush_timeout.count(), 0, 600'000));
  // Shared Kafka security keys (docs/conventions.md), passed through to librdkafka.
  for (const auto& [name, property] :
       {std::pair{"IMMUNIZER_KAFKA_SECURITY_PROTOCOL", "security.protocol"},
        std::pair{"IMMUNIZER_KAFKA_SASL_MECHANISM", "sasl.mechanism"},
        std::pair{"IMMUNIZER_KAFKA_SASL_USERNAME", "sasl.username"},
        std::pair{"IMMUNIZER_KAFKA_SASL_PASSWORD", "sasl.password"},
        std::pair{"IMMUNIZER_KAFKA_SSL_CA_LOCATION", "ssl.ca.location"}})
    if (const char* v = env.raw(name)) c.kafka_properties[property] = v;
  // Anything else: IMMUNIZER_SENSOR_KAFKA_PROPERTIES="key=value,key=value".
  for (const std::string& kv : env.list("IMMUNIZER_SENSOR_KAFKA_PROPERTIES")) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      env.bad("IMMUNIZER_SENSOR_KAFKA_PROPERTIES", env.raw("IMMUNIZER_SENSOR_KAFKA_PROPERTIES"),
              "expected key=value,...");
    c.kafka_properties[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (c.app.find('|') != std::string::npos) env.bad("IMMUNIZER_APP", c.app, "must not contain '|'");
  return c;
}

}  // namespace immunizer::sensor
