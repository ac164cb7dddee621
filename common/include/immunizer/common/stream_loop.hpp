// The consume -> process -> produce -> commit loop every stream service runs.
// A batch's offsets are committed only after every output derived from it has been
// acknowledged by the broker; a message that fails processing becomes a DeadLetter and
// the loop goes on. Outputs the broker refuses for good (too large, invalid) are retried
// max_output_attempts times, then counted, logged once and skipped: a batch is never
// re-read forever. Outputs that merely wait for the broker (timeouts, broker down) are
// retried until they are acknowledged. One thread runs the loop; the Processor is called
// only from it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

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

// SHA-256 of `bytes` (32 raw bytes), e.g. to identify a dead letter's whole payload.
std::string sha256(std::string_view bytes);

class Processor {
 public:
  virtual ~Processor() = default;
  // Handles one message; outputs go to `out`. Throwing sends the message to the dead letters.
  virtual void process(const Message& m, Producer& out) = 0;
  // Handles a whole batch at once (e.g. to score keys in parallel). The default calls
  // process() per message; `reject` sends one message to the dead letters.
  using Reject =
      std::function<void(const Message&, const std::string& reason, const std::string& detail)>;
  virtual void process_batch(const std::vector<Message>& batch, Producer& out,
                             const Reject& reject);
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
  // Attempts at a batch whose outputs the broker refuses permanently, before they are skipped.
  int max_output_attempts = 3;
  // A dead letter carries at most this many bytes of the message (plus its length and
  // SHA-256), so that it stays far below the broker's message size limit.
  size_t deadletter_payload_bytes = 64 << 10;
  // Called before a batch is processed when the consumer gained a partition since the last
  // batch (a rebalance, not the first assignment): the stage takes back the latest state of
  // keys another member held (snapshotting stages: their snapshots).
  std::function<void()> on_partitions_gained;
};

class StreamLoop {
 public:
  StreamLoop(Consumer& in, Producer& out, Processor& p, StreamLoopOptions opt,
             KafkaMetrics* metrics, prometheus::Registry* registry = nullptr);
  // Runs until `stop` is set, then drains, flushes, commits and closes the consumer.
  void run(const std::atomic<bool>& stop);
  // Runs one poll/process/flush/commit round; returns the number of messages handled.
  size_t run_once();
  uint64_t processed() const { return processed_; }
  uint64_t deadlettered() const { return deadlettered_; }
  uint64_t outputs_skipped() const { return outputs_skipped_; }

 private:
  void dead_letter(const Message& m, const std::string& reason, const std::string& detail);
  Consumer& in_;
  Producer& out_;
  Processor& proc_;
  StreamLoopOptions opt_;
  KafkaMetrics* metrics_;
  prometheus::Histogram* batch_seconds_ = nullptr;
  prometheus::Family<prometheus::Counter>* skipped_family_ = nullptr;
  uint64_t processed_ = 0;
  uint64_t deadlettered_ = 0;
  uint64_t outputs_skipped_ = 0;
  uint64_t partitions_gained_ = 0;  // the consumer's count at the last batch
  // The batch being retried because of permanently refused outputs: its first message and
  // how many attempts it had.
  std::string retry_topic_;
  int32_t retry_partition_ = -1;
  int64_t retry_offset_ = -1;
  int retry_attempts_ = 0;
};

}  // namespace immunizer::common
