// The C API records through the same core: nested calls, typed args, stats.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "immunizer/sensor.h"

TEST(SensorCApi, RecordsAndCounts) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, 1);
  rd_kafka_mock_topic_create(mc, "c.calls", 1, 1);

  immunizer_sensor* s =
      immunizer_sensor_new("capp", rd_kafka_mock_cluster_bootstraps(mc), "c.", err, sizeof err);
  ASSERT_NE(s, nullptr) << err;
  for (int i = 0; i < 10; ++i) {
    immunizer_call* c = immunizer_call_begin_z(s, "handler");
    immunizer_call_principal_z(c, "bob", nullptr, "127.0.0.1");
    immunizer_call_arg_int_z(c, "i", i);
    immunizer_call_arg_str_z(c, "name", "x");
    immunizer_call_arg_double_z(c, "d", 1.5);
    immunizer_call* inner = immunizer_call_begin_z(s, "inner");
    immunizer_call_error_z(inner, "E", "m");
    immunizer_call_end(inner);
    immunizer_call_result_int(c, 0);
    immunizer_call_end(c);
  }
  EXPECT_EQ(immunizer_sensor_flush(s, 10000), 1);
  immunizer_sensor_stats st;
  immunizer_sensor_get_stats(s, &st);
  EXPECT_EQ(st.recorded, 20u);
  EXPECT_EQ(st.sent, 20u);
  immunizer_sensor_free(s, 1000);

  EXPECT_EQ(immunizer_sensor_new("bad|app", "x:1", nullptr, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("app"), std::string::npos);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
}
