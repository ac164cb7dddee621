// In-memory Producer and Consumer for tests of stream processors: no broker, no threads.
// Not thread-safe; inspect `sent`, `committed` directly. The failure switches let tests
// check that nothing is committed when outputs are not acknowledged. Part of the testing
// library (common/testing): linked by tests, benchmarks and fuzz targets only; the fakes keep
// the namespace of the interfaces they stand in for.
#pragma once

#include <deque>
#include <map>

#include "immunizer/common/kafka.hpp"

namespace immunizer::common {

class FakeProducer final : public Producer {
 public:
  struct Sent {
    std::string topic, key, payload;
  };
  void produce(const std::string& topic, std::string_view key, std::string_view payload) override {
    pending.push_back({topic, std::string(key), std::string(payload)});
  }
  FlushResult flush(std::chrono::milliseconds) override {
    ++flushes;
    FlushResult r{true, fail_next_flush ? pending.size() : 0};
    if (!fail_next_flush) {
      for (auto& m : pending) {
        if (max_message_bytes && m.payload.size() + m.key.size() > max_message_bytes) {
          ++r.failed;  // what a broker does with a message over its limit
          if (r.permanent++ == 0) r.permanent_reason = "Broker: Message size too large";
        } else {
          sent.push_back(std::move(m));
        }
      }
    }
    fail_next_flush = false;
    pending.clear();
    return r;
  }
  std::vector<Sent> on(const std::string& topic) const {
    std::vector<Sent> out;
    for (const auto& s : sent)
      if (s.topic == topic) out.push_back(s);
    return out;
  }
  std::vector<Sent> pending, sent;
  bool fail_next_flush = false;  // the next flush fails every message, transiently
  size_t max_message_bytes = 0;  // > 0: larger messages fail permanently
  int flushes = 0;
};

class FakeConsumer final : public Consumer {
 public:
  void push(const std::string& topic, std::string key, std::string payload, int32_t partition = 0) {
    Message m;
    m.topic = topic;
    m.partition = partition;
    m.offset = next_offset_[{topic, partition}]++;
    m.key = std::move(key);
    m.payload = std::move(payload);
    log_.push_back(m);
    queue_.push_back(std::move(m));
  }
  std::vector<Message> poll(size_t max, std::chrono::milliseconds) override {
    std::vector<Message> out;
    while (!queue_.empty() && out.size() < max) {
      out.push_back(queue_.front());
      queue_.pop_front();
    }
    return out;
  }
  void commit(const std::vector<Message>& batch) override {
    for (const auto& m : batch)
      committed[{m.topic, m.partition}] = std::max(committed[{m.topic, m.partition}], m.offset + 1);
  }
  void rewind(const std::vector<Message>& batch) override {
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(*it);
    ++rewinds;
  }
  void close() override { closed = true; }
  uint64_t partitions_gained() const override { return gained; }

  std::map<std::pair<std::string, int32_t>, int64_t> committed;
  uint64_t gained = 0;  // what partitions_gained() answers (a test's rebalances)
  int rewinds = 0;
  bool closed = false;

 private:
  std::deque<Message> queue_;
  std::vector<Message> log_;
  std::map<std::pair<std::string, int32_t>, int64_t> next_offset_;
};

}  // namespace immunizer::common
