// The embedded Kafka-protocol broker: librdkafka's mock cluster, reachable over TCP on
// 127.0.0.1 by any process (consumer groups, idempotent producers). For local runs and
// tests; it keeps everything in memory. Thread-safe; owns the cluster until destroyed.
#pragma once

#include <memory>
#include <string>
#include <vector>

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace immunizer::common {

struct TopicSpec {
  std::string name;
  int partitions = 1;
};

// Every topic of a prefix, with `partitions` each (tests and test beds).
std::vector<TopicSpec> all_topic_specs(const std::string& prefix, int partitions = 1);

class MockBroker {
 public:
  // Throws std::runtime_error when the cluster cannot start.
  MockBroker(int brokers, const std::vector<TopicSpec>& topics);
  ~MockBroker();
  MockBroker(const MockBroker&) = delete;
  MockBroker& operator=(const MockBroker&) = delete;

  std::string bootstrap() const;
  void create_topic(const TopicSpec& t);
  // Fault injection: take a broker (1-based id) down or bring it back.
  void set_broker_down(int id);
  void set_broker_up(int id);
  rd_kafka_mock_cluster_s* cluster() { return cluster_; }

 private:
  rd_kafka_s* rk_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
};

}  // namespace immunizer::common
