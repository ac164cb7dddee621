// librdkafka's in-process mock cluster with the topic the agent benchmarks produce to.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace immunizer::bench {

struct MockCluster {
  MockCluster() {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    mc = rd_kafka_mock_cluster_new(rk, 1);
    rd_kafka_mock_topic_create(mc, "bench.calls", 4, 1);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;
  const char* bootstrap() const { return rd_kafka_mock_cluster_bootstraps(mc); }
  rd_kafka_t* rk;
  rd_kafka_mock_cluster_t* mc;
};

}  // namespace immunizer::bench
