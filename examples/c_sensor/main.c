/* A C program instrumented with the Immunizer sensor C API (immunizer/sensor.h).
 *
 *   IMMUNIZER_KAFKA_BOOTSTRAP=127.0.0.1:9092 ./c_sensor_example [calls]
 *
 * Records a small request handler (an outer call with a nested database call) `calls`
 * times, flushes, prints the sensor's counters and exits 0 when every record is accounted
 * for (sent or dropped with a reason). It never blocks on the broker: if none is reachable
 * the records are counted as dropped once the delivery timeout passes. */
#include <immunizer/sensor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int lookup_product(immunizer_sensor* s, int64_t id) {
  immunizer_call* c = immunizer_call_begin_z(s, "db.lookup_product");
  immunizer_call_arg_int_z(c, "id", id);
  int found = id % 7 != 0;
  if (!found)
    immunizer_call_error_z(c, "NotFound", "no such product");
  else
    immunizer_call_result_bool(c, 1);
  immunizer_call_end(c);
  return found;
}

static int handle_request(immunizer_sensor* s, const char* user, const char* ip, int64_t id,
                          const char* name) {
  immunizer_call* c = immunizer_call_begin_z(s, "http GET /tienda1/publico/anadir.jsp");
  immunizer_call_principal_z(c, user, NULL, ip);
  immunizer_call_arg_int_z(c, "id", id);
  immunizer_call_arg_str_z(c, "nombre", name);
  immunizer_call_arg_double_z(c, "precio", 39.5);
  immunizer_call_label_z(c, "example", "c_sensor");
  int status = lookup_product(s, id) ? 200 : 404;
  immunizer_call_result_int(c, status);
  immunizer_call_end(c);
  return status;
}

int main(int argc, char** argv) {
  int calls = argc > 1 ? atoi(argv[1]) : 100;
  char err[256];
  immunizer_sensor* s = immunizer_sensor_new_from_env("c-example", err, sizeof err);
  if (!s) {
    fprintf(stderr, "c_sensor_example: %s\n", err);
    return 2;
  }
  for (int i = 0; i < calls; ++i)
    handle_request(s, i % 2 ? "alice" : "bob", "127.0.0.1", i, "Queso Manchego");

  int flushed = immunizer_sensor_flush(s, 10000);
  immunizer_sensor_stats st;
  immunizer_sensor_get_stats(s, &st);
  printf(
      "recorded=%llu sent=%llu dropped: sampled_out=%llu budget=%llu queue_full=%llu "
      "delivery_failed=%llu "
      "inflight=%llu flushed=%d\n",
      (unsigned long long)st.recorded, (unsigned long long)st.sent,
      (unsigned long long)st.dropped_sampled_out, (unsigned long long)st.dropped_budget,
      (unsigned long long)st.dropped_queue_full, (unsigned long long)st.dropped_delivery_failed,
      (unsigned long long)st.inflight, flushed);
  unsigned long long accounted = st.sent + st.dropped_sampled_out + st.dropped_budget +
                                 st.dropped_queue_full + st.dropped_delivery_failed +
                                 st.dropped_shutdown + st.inflight;
  immunizer_sensor_free(s, 1000);
  return accounted == st.recorded ? 0 : 1;
}
