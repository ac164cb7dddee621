/* A C service protected by Immunizer through the C APIs only (immunizer/sensor.h,
 * immunizer/effector.h); compiled by a C compiler, linked against the shared agents.
 *
 *   IMMUNIZER_KAFKA_BOOTSTRAP=127.0.0.1:9092 IMMUNIZER_EXECUTE_ADDRESS=127.0.0.1:7070 \
 *   IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS=.immunizer/keys/execute.pub ./c_effector_example
 * [calls] [--wait-block SECONDS]
 *
 * Each request asks the effector first (a denied request is answered 403 and recorded as
 * such), then is recorded by the sensor. With --wait-block it first waits for execute, then,
 * after the requests, waits until execute blocks the user "mallory" (exit 0) or the time
 * runs out (exit 5). Exits 1 when a record is not accounted for, 2 on bad configuration,
 * 4 when execute cannot be reached in time. */
#define _POSIX_C_SOURCE 200809L
#include <immunizer/effector.h>
#include <immunizer/sensor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

static int handle_request(immunizer_sensor* s, immunizer_effector* e, const char* user,
                          const char* ip, int64_t id) {
  const char* call = "http GET /account";
  int status;
  immunizer_call* c = immunizer_call_begin_z(s, call);
  immunizer_call_principal_z(c, user, NULL, ip);
  immunizer_call_arg_int_z(c, "id", id);
  if (!immunizer_effector_allows_z(e, user, NULL, ip, call)) {
    status = 403;
    immunizer_call_error_z(c, "Blocked", "denied by an active directive");
  } else {
    status = 200;
    immunizer_call_result_int(c, status);
  }
  immunizer_call_end(c);
  return status;
}

int main(int argc, char** argv) {
  int calls = 20, wait_block_s = 0, i;
  for (i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--wait-block") == 0 && i + 1 < argc)
      wait_block_s = atoi(argv[++i]);
    else
      calls = atoi(argv[i]);
  }
  char err[256];
  immunizer_sensor* s = immunizer_sensor_new_from_env("c-effector-example", err, sizeof err);
  if (!s) {
    fprintf(stderr, "c_effector_example: sensor: %s\n", err);
    return 2;
  }
  immunizer_effector* e = immunizer_effector_new_from_env("c-effector-example", err, sizeof err);
  if (!e) {
    fprintf(stderr, "c_effector_example: effector: %s\n", err);
    immunizer_sensor_free(s, 0);
    return 2;
  }
  printf("effector library %s\n", immunizer_effector_version());
  immunizer_effector_start(e);
  if (wait_block_s > 0) {
    int waited = 0;
    while (!immunizer_effector_connected(e) && waited < 30000) sleep_ms(20), waited += 20;
    if (!immunizer_effector_connected(e)) {
      printf("not connected\n");
      immunizer_effector_free(e);
      immunizer_sensor_free(s, 0);
      return 4;
    }
    printf("connected\n");
    fflush(stdout);
  }

  int denied = 0;
  for (i = 0; i < calls; ++i) denied += handle_request(s, e, "mallory", "203.0.113.7", i) == 403;
  immunizer_sensor_flush(s, 10000);
  immunizer_sensor_stats st;
  immunizer_sensor_get_stats(s, &st);
  unsigned long long accounted = st.sent + st.dropped_sampled_out + st.dropped_budget +
                                 st.dropped_queue_full + st.dropped_delivery_failed +
                                 st.dropped_shutdown + st.inflight;
  printf("requests=%d denied=%d recorded=%llu sent=%llu\n", calls, denied,
         (unsigned long long)st.recorded, (unsigned long long)st.sent);
  fflush(stdout);
  int rc = accounted == st.recorded ? 0 : 1;

  if (rc == 0 && wait_block_s > 0) {
    long waited = 0;
    while (immunizer_effector_allows_z(e, "mallory", NULL, "203.0.113.7", "http GET /account") &&
           waited < wait_block_s * 1000L)
      sleep_ms(20), waited += 20;
    immunizer_effector_stats es;
    immunizer_effector_get_stats(e, &es);
    if (es.active_actions > 0 &&
        !immunizer_effector_allows_z(e, "mallory", NULL, NULL, "http GET /account")) {
      printf("blocked (applied %llu, denied %llu)\n", (unsigned long long)es.applied,
             (unsigned long long)es.denied);
    } else {
      printf("not blocked\n");
      rc = 5;
    }
  }
  immunizer_effector_free(e);
  immunizer_sensor_free(s, 1000);
  return rc;
}
