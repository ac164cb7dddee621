// The consume -> process -> produce -> commit loop every stream service runs.
// A batch's offsets are committed only after every output derived from it has been
// acknowledged by the broker; a message that fails processing becomes a DeadLetter and
// the loop goes on. One thread runs the loop; the Processor is called only from it.
#pragma once

#include <prometheus/histogram.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <vector>
#include <stdexcept>
#include <string>

#include "immunizer/common/kafka.hpp"

namespace immunizer::common {

// Thrown by a Processor for input it cannot use; `reason()` is a short, stable label.
class BadMessage : public std::runtime_error {
 public:
  BadMessage(std::string reason, const std::string& detail)
      : std::runtime_error(detail), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

class Processor {
 public:
  virtual ~Processor() = default;
  // Handles one message; outputs go to `out`. Throwing sends the message to the dead letters.
  virtual void process(const Message& m, Producer& out) = 0;
  // Handles a whole batch at once (e.g. to score keys in parallel). The default calls
  // process() per message; `reject` sends one message to the dead letters.
  using Reject = std::function<void(const Message&, const std::string& reason, const std::string& detail)>;
  virtual void process_batch(const std::vector<Message>& batch, Producer& out, const Reject& reject);
  // After every batch and when idle: timers, TTLs, periodic snapshots.
  virtual void tick(Producer& out) {}
  // Once before the loop stops: final snapshots.
  virtual void drain(Producer& out) {}
};

struct StreamLoopOptions {
  std::string service;
  std::string deadletter_topic;
  size_t max_batch = 500;
  std::chrono::milliseconds poll_timeout{20};
  std::chrono::milliseconds flush_timeout{30000};
};

class StreamLoop {
 public:
  StreamLoop(Consumer& in, Producer& out, Processor& p, StreamLoopOptions opt, KafkaMetrics* metrics,
             prometheus::Registry* registry = nullptr);
  // Runs until `stop` is set, then drains, flushes, commits and closes the consumer.
  void run(const std::atomic<bool>& stop);
  // Runs one poll/process/flush/commit round; returns the number of messages handled.
  size_t run_once();
  uint64_t processed() const { return processed_; }
  uint64_t deadlettered() const { return deadlettered_; }

 private:
  void dead_letter(const Message& m, const std::string& reason, const std::string& detail);
  Consumer& in_;
  Producer& out_;
  Processor& proc_;
  StreamLoopOptions opt_;
  KafkaMetrics* metrics_;
  prometheus::Histogram* batch_seconds_ = nullptr;
  uint64_t processed_ = 0;
  uint64_t deadlettered_ = 0;
};

}  // namespace immunizer::common
