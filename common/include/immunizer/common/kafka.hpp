// Kafka seams: Producer and Consumer interfaces, librdkafka implementations, the topic
// names, and per-service Kafka metrics. Producers are thread-safe; a Consumer belongs to
// one thread. Messages are copied in and out: no buffer ownership crosses the seam.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "immunizer/common/metrics.hpp"

struct rd_kafka_s;

namespace immunizer::common {

class Config;

// Connection settings shared by every client of a service (kafka.* config keys).
struct KafkaSettings {
  std::string bootstrap = "127.0.0.1:9092";
  std::string topic_prefix = "immunizer.";
  std::string security_protocol = "plaintext";
  std::string sasl_mechanism;
  std::string sasl_username;
  std::string sasl_password;
  std::string ssl_ca_location;
  std::string ssl_certificate_location;  // mutual TLS to Kafka: this service's client
  std::string ssl_key_location;          // certificate and key (PEM files), both or neither
  static KafkaSettings from_config(const Config& c);
  // librdkafka properties for these settings.
  std::map<std::string, std::string> properties() const;
};

// Topic names under a prefix (kafka.topic_prefix).
struct Topics {
  std::string calls, features, scores, alarms, plans, actions, feedback, models, deadletter;
  static Topics with_prefix(const std::string& p);
  std::vector<std::string> all() const;
};

struct Message {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string payload;
  int64_t timestamp_ms = 0;
};

// Counters every service exports for its Kafka traffic.
class KafkaMetrics {
 public:
  KafkaMetrics(prometheus::Registry& r, std::string service);
  void consumed(const std::string& topic, uint64_t n = 1);
  void produced(const std::string& topic, uint64_t n = 1);
  void delivery_failed(uint64_t n = 1);
  void deadletter(const std::string& reason);
  // Messages skipped by an offset reset past unread data (immunizer_records_lost_total).
  void records_lost(const std::string& topic, uint64_t n);
  void lag(const std::string& topic, int32_t partition, int64_t lag);

 private:
  prometheus::Counter& counter(prometheus::Family<prometheus::Counter>& f,
                               std::map<std::string, prometheus::Counter*>& cache,
                               const std::string& label_name, const std::string& value);
  std::string service_;
  std::mutex mu_;
  prometheus::Family<prometheus::Counter>& consumed_family_;
  prometheus::Family<prometheus::Counter>& produced_family_;
  prometheus::Family<prometheus::Counter>& deadletter_family_;
  prometheus::Family<prometheus::Counter>& lost_family_;
  prometheus::Family<prometheus::Gauge>& lag_family_;
  prometheus::Counter& delivery_failures_;
  std::map<std::string, prometheus::Counter*> consumed_, produced_, deadletters_, lost_;
  std::map<std::string, prometheus::Gauge*> lag_;
};

struct FlushResult {
  bool complete = false;  // every message produced so far has a delivery report
  uint64_t failed = 0;    // messages whose delivery failed since the previous flush
  // Of `failed`, those that trying again cannot fix (message over the broker's size limit,
  // invalid, not authorised), and why the first of them failed.
  uint64_t permanent = 0;
  std::string permanent_reason;
  bool ok() const { return complete && failed == 0; }
};

class Producer {
 public:
  virtual ~Producer() = default;
  // Queues a message. Waits (backpressure) while the local queue is full; never drops.
  virtual void produce(const std::string& topic, std::string_view key,
                       std::string_view payload) = 0;
  // Waits until every message produced so far is acknowledged by the broker, or timeout.
  virtual FlushResult flush(std::chrono::milliseconds timeout) = 0;
};

class Consumer {
 public:
  virtual ~Consumer() = default;
  // Up to max messages; returns early when none arrive for `timeout`.
  virtual std::vector<Message> poll(size_t max, std::chrono::milliseconds timeout) = 0;
  // Commits, per partition, the offset after the last message of the batch. The Kafka
  // consumer does so asynchronously (the next batch overlaps the broker's answer; a refused
  // commit is logged and its messages are read again after a restart) and commits the last
  // offsets synchronously in close().
  virtual void commit(const std::vector<Message>& batch) = 0;
  // Re-reads the batch: seeks each partition back to the batch's first offset.
  virtual void rewind(const std::vector<Message>& batch) = 0;
  // Unsubscribes and leaves the group.
  virtual void close() = 0;
  // Messages this consumer never saw because its position was reset past unread data.
  virtual uint64_t lost() const { return 0; }
  // How many times its assignment gained a partition it did not have (the first assignment
  // included; checked at every poll, before the poll returns the partition's messages).
  virtual uint64_t partitions_gained() const { return 0; }
};

// Whether the Kafka cluster answers this process: a client of its own (the service's
// settings, so the same network path and credentials) asks any broker for metadata every
// `interval`; a request that no broker answers within the interval means unreachable.
// `on_change(reachable, why)` runs on the watch's thread at the first result and whenever it
// flips. With several brokers, one of them down is not unreachable: a failed request is asked
// again from a fresh client (new connections to the bootstrap brokers) before the watch says
// unreachable, and requests on a dead connection give up after 3 intervals. Owns its thread.
class BrokerWatch {
 public:
  using OnChange = std::function<void(bool reachable, const std::string& why)>;
  BrokerWatch(const KafkaSettings& s, std::chrono::milliseconds interval, OnChange on_change);
  ~BrokerWatch();
  BrokerWatch(const BrokerWatch&) = delete;
  BrokerWatch& operator=(const BrokerWatch&) = delete;
  bool reachable() const { return reachable_.load(); }

 private:
  void run();
  rd_kafka_s* new_watch_client() const;
  KafkaSettings settings_;
  rd_kafka_s* rk_ = nullptr;
  std::chrono::milliseconds interval_;
  OnChange on_change_;
  std::atomic<bool> reachable_{false};
  std::atomic<bool> quit_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

// Idempotent, acks=all producer with delivery reports. Throws std::runtime_error on bad settings.
// `overrides` are extra librdkafka properties (e.g. message.max.bytes for snapshots).
std::unique_ptr<Producer> make_kafka_producer(
    const KafkaSettings& s, const std::string& client_id, KafkaMetrics* metrics,
    const std::map<std::string, std::string>& overrides = {});
// Consumer-group member with manual commits, starting at the earliest offset for a new group.
// `overrides` are extra librdkafka properties (e.g. fetch.wait.max.ms).
std::unique_ptr<Consumer> make_kafka_consumer(
    const KafkaSettings& s, const std::string& group, const std::vector<std::string>& topics,
    KafkaMetrics* metrics, const std::map<std::string, std::string>& overrides = {});
// A bare librdkafka consumer handle for the readers that assign partitions themselves (model
// snapshots at start-up, execute's recall of its action events): the connection settings with
// `overrides` on top (a group.id is required by librdkafka). Throws std::runtime_error naming
// `what` when a property is refused or the client cannot be made. The caller owns the handle
// (rd_kafka_destroy).
rd_kafka_s* make_kafka_reader(const KafkaSettings& s,
                              const std::map<std::string, std::string>& overrides,
                              const char* what);

}  // namespace immunizer::common
