/* C API of the Immunizer sensor, over the same core as the C++ API (immunizer/sensor/sensor.hpp).
 * For C programs and for other languages through their FFI.
 * Thread-safety: an immunizer_sensor is shared by all threads; an immunizer_call belongs to
 * the thread that began it and must be ended there, innermost first (calls nest like the
 * C++ CallScope). No function blocks on the network; none reports delivery errors: they are
 * counted (immunizer_sensor_get_stats). Strings are (pointer, length) pairs unless the
 * name ends in _z (NUL-terminated); they are copied before the function returns. */
#ifndef IMMUNIZER_SENSOR_H
#define IMMUNIZER_SENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct immunizer_sensor immunizer_sensor;
typedef struct immunizer_call immunizer_call;

typedef struct immunizer_sensor_stats {
  uint64_t recorded;
  uint64_t sent;
  uint64_t dropped_sampled_out;
  uint64_t dropped_budget;
  uint64_t dropped_queue_full;
  uint64_t dropped_delivery_failed;
  uint64_t dropped_shutdown;
  uint64_t inflight;
  double sample_rate;
} immunizer_sensor_stats;

/* Creates a sensor configured from IMMUNIZER_* environment variables (docs/sensor.md),
 * with `app` overriding IMMUNIZER_APP when not NULL. Returns NULL on bad configuration and,
 * if `err` is not NULL, writes a NUL-terminated reason into err[0..err_size). */
immunizer_sensor* immunizer_sensor_new_from_env(const char* app, char* err, size_t err_size);

/* Same, but with an explicit bootstrap ("host:port") and topic prefix (NULL: "immunizer."). */
immunizer_sensor* immunizer_sensor_new(const char* app, const char* bootstrap,
                                       const char* topic_prefix, char* err, size_t err_size);

/* Flushes for at most flush_timeout_ms, then releases the sensor. */
void immunizer_sensor_free(immunizer_sensor* s, int flush_timeout_ms);

/* Waits up to timeout_ms for every record to be sent or dropped; 1 if none is left. */
int immunizer_sensor_flush(immunizer_sensor* s, int timeout_ms);
void immunizer_sensor_set_enabled(immunizer_sensor* s, int enabled);
void immunizer_sensor_get_stats(const immunizer_sensor* s, immunizer_sensor_stats* out);

/* Begins a call (NULL only if out of memory; every other function accepts NULL). */
immunizer_call* immunizer_call_begin(immunizer_sensor* s, const char* call, size_t call_len);
immunizer_call* immunizer_call_begin_z(immunizer_sensor* s, const char* call);
/* 1 when the call is recorded (enabled and sampled in). */
int immunizer_call_recording(const immunizer_call* c);

void immunizer_call_principal_z(immunizer_call* c, const char* user, const char* session,
                                const char* ip);
void immunizer_call_arg_null_z(immunizer_call* c, const char* name);
void immunizer_call_arg_bool_z(immunizer_call* c, const char* name, int value);
void immunizer_call_arg_int_z(immunizer_call* c, const char* name, int64_t value);
void immunizer_call_arg_double_z(immunizer_call* c, const char* name, double value);
void immunizer_call_arg_str(immunizer_call* c, const char* name, size_t name_len, const char* value,
                            size_t value_len);
void immunizer_call_arg_str_z(immunizer_call* c, const char* name, const char* value);
void immunizer_call_arg_bytes_z(immunizer_call* c, const char* name, const void* data, size_t len);
void immunizer_call_label_z(immunizer_call* c, const char* key, const char* value);

void immunizer_call_result_int(immunizer_call* c, int64_t value);
void immunizer_call_result_double(immunizer_call* c, double value);
void immunizer_call_result_bool(immunizer_call* c, int value);
void immunizer_call_result_str_z(immunizer_call* c, const char* value);
void immunizer_call_error_z(immunizer_call* c, const char* type, const char* message);

/* Ends the call: measures its duration and enqueues the record without blocking; frees c. */
void immunizer_call_end(immunizer_call* c);

#ifdef __cplusplus
}
#endif

#endif /* IMMUNIZER_SENSOR_H */
