#include "immunizer/common/mock_broker.hpp"
#include "immunizer/common/kafka.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stdexcept>

namespace immunizer::common {

std::vector<TopicSpec> all_topic_specs(const std::string& prefix, int partitions) {
  std::vector<TopicSpec> specs;
  for (const auto& t : Topics::with_prefix(prefix).all()) specs.push_back({t, partitions});
  return specs;
}

MockBroker::MockBroker(int brokers, const std::vector<TopicSpec>& topics) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the cluster; silence its own connection attempts.
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk_) throw std::runtime_error(std::string("mock broker: ") + err);
  cluster_ = rd_kafka_mock_cluster_new(rk_, brokers);
  if (!cluster_) {
    rd_kafka_destroy(rk_);
    throw std::runtime_error("mock broker: cannot create the cluster");
  }
  for (const auto& t : topics) create_topic(t);
}

MockBroker::~MockBroker() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(rk_);
}

std::string MockBroker::bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

void MockBroker::create_topic(const TopicSpec& t) {
  const auto e = rd_kafka_mock_topic_create(cluster_, t.name.c_str(), t.partitions, 1);
  if (e) throw std::runtime_error("mock broker: topic " + t.name + ": " + rd_kafka_err2str(e));
}

void MockBroker::set_broker_down(int id) { rd_kafka_mock_broker_set_down(cluster_, id); }
void MockBroker::set_broker_up(int id) { rd_kafka_mock_broker_set_up(cluster_, id); }

}  // namespace immunizer::common
