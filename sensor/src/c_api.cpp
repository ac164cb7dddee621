// C API (immunizer/sensor.h) over the C++ core. Nothing here throws across the C boundary.
#include "immunizer/sensor.h"

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>

#include "immunizer/agent/c_api.hpp"
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

using immunizer::agent::c_view;
using immunizer::agent::guard_c_call;

namespace {

// A sensor of the configuration from the environment with `edit` applied; nullptr (the error
// in err) when either throws.
template <typename Edit>
immunizer_sensor* make(char* err, size_t err_size, Edit&& edit) {
  return guard_c_call<immunizer_sensor*>(err, err_size, nullptr, [&] {
    SensorConfig cfg = SensorConfig::from_env();
    edit(cfg);
    auto h = std::make_unique<immunizer_sensor>();
    h->sensor = Sensor::create(std::move(cfg));
    return h.release();
  });
}

}  // namespace

extern "C" {

immunizer_sensor* immunizer_sensor_new_from_env(const char* app, char* err, size_t err_size) {
  return make(err, err_size, [&](SensorConfig& cfg) {
    if (app) cfg.app = app;
  });
}

immunizer_sensor* immunizer_sensor_new(const char* app, const char* bootstrap,
                                       const char* topic_prefix, char* err, size_t err_size) {
  return make(err, err_size, [&](SensorConfig& cfg) {
    if (app) cfg.app = app;
    if (bootstrap) cfg.bootstrap = bootstrap;
    if (topic_prefix) cfg.topic_prefix = topic_prefix;
  });
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
  immunizer::agent::fill_c_stats(s, out, [s](immunizer_sensor_stats& o) {
    const auto st = s->sensor->stats();
    o.recorded = st.recorded;
    o.sent = st.sent;
    o.dropped_sampled_out = st.dropped_by(DropReason::kSampledOut);
    o.dropped_budget = st.dropped_by(DropReason::kBudget);
    o.dropped_queue_full = st.dropped_by(DropReason::kQueueFull);
    o.dropped_delivery_failed = st.dropped_by(DropReason::kDeliveryFailed);
    o.dropped_shutdown = st.dropped_by(DropReason::kShutdown);
    o.inflight = st.inflight;
    o.sample_rate = st.sample_rate;
  });
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
  if (c) c->scope.principal(c_view(user), c_view(session), c_view(ip));
}
void immunizer_call_arg_null_z(immunizer_call* c, const char* name) {
  if (c) c->scope.arg(c_view(name), immunizer::sensor::Null{});
}
void immunizer_call_arg_bool_z(immunizer_call* c, const char* name, int value) {
  if (c) c->scope.arg(c_view(name), value != 0);
}
void immunizer_call_arg_int_z(immunizer_call* c, const char* name, int64_t value) {
  if (c) c->scope.arg(c_view(name), value);
}
void immunizer_call_arg_double_z(immunizer_call* c, const char* name, double value) {
  if (c) c->scope.arg(c_view(name), value);
}
void immunizer_call_arg_str(immunizer_call* c, const char* name, size_t name_len, const char* value,
                            size_t value_len) {
  if (c)
    c->scope.arg(std::string_view(name ? name : "", name ? name_len : 0),
                 std::string_view(value ? value : "", value ? value_len : 0));
}
void immunizer_call_arg_str_z(immunizer_call* c, const char* name, const char* value) {
  if (c) c->scope.arg(c_view(name), c_view(value));
}
void immunizer_call_arg_bytes_z(immunizer_call* c, const char* name, const void* data, size_t len) {
  if (c) c->scope.arg(c_view(name), immunizer::sensor::Bytes(data, data ? len : 0));
}
void immunizer_call_label_z(immunizer_call* c, const char* key, const char* value) {
  if (c) c->scope.label(c_view(key), c_view(value));
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
  if (c) c->scope.result(c_view(value));
}
void immunizer_call_error_z(immunizer_call* c, const char* type, const char* message) {
  if (c) c->scope.error(c_view(type), c_view(message));
}
void immunizer_call_end(immunizer_call* c) { delete c; }

}  // extern "C"
