// C API (immunizer/sensor.h) over the C++ core. Nothing here throws across the C boundary.
#include "immunizer/sensor.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>

#include "immunizer/sensor/sensor.hpp"

using immunizer::sensor::CallScope;
using immunizer::sensor::DropReason;
using immunizer::sensor::Sensor;
using immunizer::sensor::SensorConfig;

struct immunizer_sensor {
  std::shared_ptr<Sensor> sensor;
};

struct immunizer_call {
  explicit immunizer_call(Sensor& s, std::string_view call) : scope(s, call) {}
  CallScope scope;
};

namespace {

std::string_view sv(const char* s) { return s ? std::string_view(s) : std::string_view(); }

void write_err(char* err, size_t n, const char* what) {
  if (err && n) std::snprintf(err, n, "%s", what);
}

immunizer_sensor* make(SensorConfig cfg, char* err, size_t err_size) {
  try {
    auto* h = new immunizer_sensor;
    try {
      h->sensor = Sensor::create(std::move(cfg));
    } catch (...) {
      delete h;
      throw;
    }
    return h;
  } catch (const std::exception& e) {
    write_err(err, err_size, e.what());
  } catch (...) {
    write_err(err, err_size, "unknown error");
  }
  return nullptr;
}

}  // namespace

extern "C" {

immunizer_sensor* immunizer_sensor_new_from_env(const char* app, char* err, size_t err_size) {
  try {
    SensorConfig cfg = SensorConfig::from_env();
    if (app) cfg.app = app;
    return make(std::move(cfg), err, err_size);
  } catch (const std::exception& e) {
    write_err(err, err_size, e.what());
    return nullptr;
  }
}

immunizer_sensor* immunizer_sensor_new(const char* app, const char* bootstrap,
                                       const char* topic_prefix, char* err, size_t err_size) {
  try {
    SensorConfig cfg = SensorConfig::from_env();
    if (app) cfg.app = app;
    if (bootstrap) cfg.bootstrap = bootstrap;
    if (topic_prefix) cfg.topic_prefix = topic_prefix;
    return make(std::move(cfg), err, err_size);
  } catch (const std::exception& e) {
    write_err(err, err_size, e.what());
    return nullptr;
  }
}

void immunizer_sensor_free(immunizer_sensor* s, int flush_timeout_ms) {
  if (!s) return;
  try {
    if (flush_timeout_ms > 0) s->sensor->flush(std::chrono::milliseconds(flush_timeout_ms));
  } catch (...) {
  }
  delete s;
}

int immunizer_sensor_flush(immunizer_sensor* s, int timeout_ms) {
  if (!s) return 1;
  try {
    return s->sensor->flush(std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms)) ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

void immunizer_sensor_set_enabled(immunizer_sensor* s, int enabled) {
  if (s) s->sensor->set_enabled(enabled != 0);
}

void immunizer_sensor_get_stats(const immunizer_sensor* s, immunizer_sensor_stats* out) {
  if (!out) return;
  std::memset(out, 0, sizeof *out);
  if (!s) return;
  try {
    const auto st = s->sensor->stats();
    out->recorded = st.recorded;
    out->sent = st.sent;
    out->dropped_sampled_out = st.dropped_by(DropReason::kSampledOut);
    out->dropped_budget = st.dropped_by(DropReason::kBudget);
    out->dropped_queue_full = st.dropped_by(DropReason::kQueueFull);
    out->dropped_delivery_failed = st.dropped_by(DropReason::kDeliveryFailed);
    out->dropped_shutdown = st.dropped_by(DropReason::kShutdown);
    out->inflight = st.inflight;
    out->sample_rate = st.sample_rate;
  } catch (...) {
  }
}

immunizer_call* immunizer_call_begin(immunizer_sensor* s, const char* call, size_t call_len) {
  if (!s) return nullptr;
  return new (std::nothrow)
      immunizer_call(*s->sensor, std::string_view(call ? call : "", call ? call_len : 0));
}

immunizer_call* immunizer_call_begin_z(immunizer_sensor* s, const char* call) {
  return immunizer_call_begin(s, call, call ? std::strlen(call) : 0);
}

int immunizer_call_recording(const immunizer_call* c) { return c && c->scope.recording() ? 1 : 0; }

void immunizer_call_principal_z(immunizer_call* c, const char* user, const char* session,
                                const char* ip) {
  if (c) c->scope.principal(sv(user), sv(session), sv(ip));
}
void immunizer_call_arg_null_z(immunizer_call* c, const char* name) {
  if (c) c->scope.arg(sv(name), immunizer::sensor::Null{});
}
void immunizer_call_arg_bool_z(immunizer_call* c, const char* name, int value) {
  if (c) c->scope.arg(sv(name), value != 0);
}
void immunizer_call_arg_int_z(immunizer_call* c, const char* name, int64_t value) {
  if (c) c->scope.arg(sv(name), value);
}
void immunizer_call_arg_double_z(immunizer_call* c, const char* name, double value) {
  if (c) c->scope.arg(sv(name), value);
}
void immunizer_call_arg_str(immunizer_call* c, const char* name, size_t name_len, const char* value,
                            size_t value_len) {
  if (c)
    c->scope.arg(std::string_view(name ? name : "", name ? name_len : 0),
                 std::string_view(value ? value : "", value ? value_len : 0));
}
void immunizer_call_arg_str_z(immunizer_call* c, const char* name, const char* value) {
  if (c) c->scope.arg(sv(name), sv(value));
}
void immunizer_call_arg_bytes_z(immunizer_call* c, const char* name, const void* data, size_t len) {
  if (c) c->scope.arg(sv(name), immunizer::sensor::Bytes(data, data ? len : 0));
}
void immunizer_call_label_z(immunizer_call* c, const char* key, const char* value) {
  if (c) c->scope.label(sv(key), sv(value));
}
void immunizer_call_result_int(immunizer_call* c, int64_t value) {
  if (c) c->scope.result(value);
}
void immunizer_call_result_double(immunizer_call* c, double value) {
  if (c) c->scope.result(value);
}
void immunizer_call_result_bool(immunizer_call* c, int value) {
  if (c) c->scope.result(value != 0);
}
void immunizer_call_result_str_z(immunizer_call* c, const char* value) {
  if (c) c->scope.result(sv(value));
}
void immunizer_call_error_z(immunizer_call* c, const char* type, const char* message) {
  if (c) c->scope.error(sv(type), sv(message));
}
void immunizer_call_end(immunizer_call* c) { delete c; }

}  // extern "C"
