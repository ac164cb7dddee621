// SensorConfig::from_env: zero-code setup from IMMUNIZER_* environment variables.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "immunizer/sensor/sensor.hpp"

extern char** environ;

namespace immunizer::sensor {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

[[noreturn]] void bad(const char* name, const std::string& value, const char* why) {
  throw std::invalid_argument(std::string("sensor: ") + name + "='" + value + "': " + why);
}

// Numbers are parsed strictly: the whole value, decimal, no '+', blanks, hex, inf or nan.
double env_double(const char* name, double def, double lo, double hi) {
  const char* v = env(name);
  if (!v) return def;
  const char* end = v + std::strlen(v);
  double d = 0;
  const auto [p, ec] = std::from_chars(v, end, d, std::chars_format::general);
  if (ec != std::errc() || p != end || !std::isfinite(d)) bad(name, v, "not a decimal number");
  if (d < lo || d > hi)
    bad(name, v, ("out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]").c_str());
  return d;
}

long long env_int(const char* name, long long def, long long lo, long long hi) {
  const char* v = env(name);
  if (!v) return def;
  const char* end = v + std::strlen(v);
  long long d = 0;
  const auto [p, ec] = std::from_chars(v, end, d, 10);
  if (ec != std::errc() || p != end) bad(name, v, "not a decimal integer");
  if (d < lo || d > hi)
    bad(name, v, ("out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]").c_str());
  return d;
}

bool env_bool(const char* name, bool def) {
  const char* v = env(name);
  if (!v) return def;
  const std::string s(v);
  if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
  if (s == "0" || s == "false" || s == "no" || s == "off") return false;
  bad(name, s, "not a boolean (true/false)");
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string_view to_string(DropReason r) noexcept {
  switch (r) {
    case DropReason::kSampledOut:
      return "sampled_out";
    case DropReason::kBudget:
      return "budget";
    case DropReason::kQueueFull:
      return "queue_full";
    case DropReason::kDeliveryFailed:
      return "delivery_failed";
    case DropReason::kShutdown:
      return "shutdown";
  }
  return "unknown";
}

SensorConfig SensorConfig::from_env() {
  // The sensor's own namespace is strict: a misspelled IMMUNIZER_SENSOR_* variable is an
  // error, not silently ignored (other IMMUNIZER_* variables belong to other components).
  static const std::set<std::string> kKnown{"IMMUNIZER_SENSOR_ENABLED",
                                            "IMMUNIZER_SENSOR_SAMPLE_RATE",
                                            "IMMUNIZER_SENSOR_CPU_BUDGET",
                                            "IMMUNIZER_SENSOR_MIN_SAMPLE_RATE",
                                            "IMMUNIZER_SENSOR_MAX_INFLIGHT_BYTES",
                                            "IMMUNIZER_SENSOR_QUEUE_CAPACITY",
                                            "IMMUNIZER_SENSOR_DELIVERY_TIMEOUT_MS",
                                            "IMMUNIZER_SENSOR_LINGER_MS",
                                            "IMMUNIZER_SENSOR_MAX_BATCH_RECORDS",
                                            "IMMUNIZER_SENSOR_MAX_BATCH_BYTES",
                                            "IMMUNIZER_SENSOR_MAX_STRING_BYTES",
                                            "IMMUNIZER_SENSOR_MAX_RECORD_BYTES",
                                            "IMMUNIZER_SENSOR_IDEMPOTENCE",
                                            "IMMUNIZER_SENSOR_COMPRESSION",
                                            "IMMUNIZER_SENSOR_SHUTDOWN_FLUSH_MS",
                                            "IMMUNIZER_SENSOR_KAFKA_PROPERTIES"};
  for (char** e = environ; e && *e; ++e) {
    const std::string_view entry(*e);
    const std::string name(entry.substr(0, entry.find('=')));
    if (name.rfind("IMMUNIZER_SENSOR_", 0) == 0 && !kKnown.count(name)) {
      std::string hint;
      size_t best = 4;
      for (const auto& k : kKnown) {
        const size_t d = edit_distance(name, k);
        if (d < best) best = d, hint = " (did you mean " + k + "?)";
      }
      throw std::invalid_argument("sensor: unknown environment variable " + name + hint);
    }
  }
  SensorConfig c;
  if (const char* v = env("IMMUNIZER_APP")) c.app = v;
  if (const char* v = env("IMMUNIZER_INSTANCE")) c.instance = v;
  if (const char* v = env("IMMUNIZER_KAFKA_BOOTSTRAP")) c.bootstrap = v;
  if (const char* v = env("IMMUNIZER_KAFKA_TOPIC_PREFIX")) c.topic_prefix = v;
  c.enabled = env_bool("IMMUNIZER_SENSOR_ENABLED", c.enabled);
  c.sample_rate = env_double("IMMUNIZER_SENSOR_SAMPLE_RATE", c.sample_rate, 0.0, 1.0);
  c.cpu_budget = env_double("IMMUNIZER_SENSOR_CPU_BUDGET", c.cpu_budget, 0.0, 1.0);
  c.min_sample_rate = env_double("IMMUNIZER_SENSOR_MIN_SAMPLE_RATE", c.min_sample_rate, 0.0, 1.0);
  c.max_inflight_bytes =
      static_cast<size_t>(env_int("IMMUNIZER_SENSOR_MAX_INFLIGHT_BYTES",
                                  static_cast<long long>(c.max_inflight_bytes), 4096, 1ll << 40));
  c.queue_capacity = static_cast<size_t>(env_int(
      "IMMUNIZER_SENSOR_QUEUE_CAPACITY", static_cast<long long>(c.queue_capacity), 16, 1 << 24));
  c.delivery_timeout_ms = static_cast<int>(
      env_int("IMMUNIZER_SENSOR_DELIVERY_TIMEOUT_MS", c.delivery_timeout_ms, 1, 3'600'000));
  c.linger_ms = static_cast<int>(env_int("IMMUNIZER_SENSOR_LINGER_MS", c.linger_ms, 0, 60'000));
  c.max_batch_records = static_cast<size_t>(env_int(
      "IMMUNIZER_SENSOR_MAX_BATCH_RECORDS", static_cast<long long>(c.max_batch_records), 1, 65536));
  c.max_batch_bytes =
      static_cast<size_t>(env_int("IMMUNIZER_SENSOR_MAX_BATCH_BYTES",
                                  static_cast<long long>(c.max_batch_bytes), 1024, 16 << 20));
  c.max_string_bytes =
      static_cast<size_t>(env_int("IMMUNIZER_SENSOR_MAX_STRING_BYTES",
                                  static_cast<long long>(c.max_string_bytes), 16, 16 << 20));
  c.max_record_bytes =
      static_cast<size_t>(env_int("IMMUNIZER_SENSOR_MAX_RECORD_BYTES",
                                  static_cast<long long>(c.max_record_bytes), 1024, 16 << 20));
  c.idempotence = env_bool("IMMUNIZER_SENSOR_IDEMPOTENCE", c.idempotence);
  if (const char* v = env("IMMUNIZER_SENSOR_COMPRESSION")) c.compression = v;
  c.shutdown_flush_timeout = std::chrono::milliseconds(
      env_int("IMMUNIZER_SENSOR_SHUTDOWN_FLUSH_MS", c.shutdown_flush_timeout.count(), 0, 600'000));
  // Shared Kafka security keys (docs/conventions.md), passed through to librdkafka.
  if (const char* v = env("IMMUNIZER_KAFKA_SECURITY_PROTOCOL"))
    c.kafka_properties["security.protocol"] = v;
  if (const char* v = env("IMMUNIZER_KAFKA_SASL_MECHANISM"))
    c.kafka_properties["sasl.mechanism"] = v;
  if (const char* v = env("IMMUNIZER_KAFKA_SASL_USERNAME")) c.kafka_properties["sasl.username"] = v;
  if (const char* v = env("IMMUNIZER_KAFKA_SASL_PASSWORD")) c.kafka_properties["sasl.password"] = v;
  if (const char* v = env("IMMUNIZER_KAFKA_SSL_CA_LOCATION"))
    c.kafka_properties["ssl.ca.location"] = v;
  // Anything else: IMMUNIZER_SENSOR_KAFKA_PROPERTIES="key=value,key=value".
  if (const char* v = env("IMMUNIZER_SENSOR_KAFKA_PROPERTIES")) {
    std::string s(v);
    size_t at = 0;
    while (at <= s.size()) {
      size_t comma = s.find(',', at);
      if (comma == std::string::npos) comma = s.size();
      const std::string kv = s.substr(at, comma - at);
      if (!kv.empty()) {
        const size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
          bad("IMMUNIZER_SENSOR_KAFKA_PROPERTIES", s, "expected key=value,...");
        c.kafka_properties[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      at = comma + 1;
    }
  }
  if (c.app.find('|') != std::string::npos) bad("IMMUNIZER_APP", c.app, "must not contain '|'");
  return c;
}

}  // namespace immunizer::sensor
