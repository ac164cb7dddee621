#include "immunizer/common/stream_loop.hpp"

#include "immunizer/common/ids.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/v1/records.pb.h"

#include <openssl/evp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <algorithm>

namespace immunizer::common {

std::string sha256(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr) != 1) return {};
  return std::string(reinterpret_cast<const char*>(md), n);
}

void Processor::process_batch(const std::vector<Message>& batch, Producer& out,
                              const Reject& reject) {
  for (const auto& m : batch) {
    try {
      process(m, out);
    } catch (const BadMessage& e) {
      reject(m, e.reason(), e.what());
    } catch (const std::exception& e) {
      reject(m, "processing_error", e.what());
    }
  }
}

StreamLoop::StreamLoop(Consumer& in, Producer& out, Processor& p, StreamLoopOptions opt,
                       KafkaMetrics* metrics, prometheus::Registry* registry)
    : in_(in), out_(out), proc_(p), opt_(std::move(opt)), metrics_(metrics) {
  if (registry) {
    skipped_family_ =
        &counter_family(*registry, "immunizer_outputs_skipped_total",
                        "Outputs the broker refused for good (after retries), skipped, by reason");
    batch_seconds_ = &register_histogram(*registry, "immunizer_batch_seconds",
                                         "Time to process, flush and commit one consumed batch",
                                         {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5},
                                         {{"service", opt_.service}});
  }
}

void StreamLoop::dead_letter(const Message& m, const std::string& reason,
                             const std::string& detail) {
  immunizer::v1::DeadLetter dl;
  dl.set_source_topic(m.topic);
  dl.set_partition(m.partition);
  dl.set_offset(m.offset);
  dl.set_service(opt_.service);
  dl.set_reason(reason + ": " + detail);
  // A bounded slice: a dead letter must never be the message the broker refuses.
  const size_t keep = std::min(m.payload.size(), opt_.deadletter_payload_bytes);
  dl.set_payload(m.payload.data(), keep);
  dl.set_payload_truncated(keep < m.payload.size());
  dl.set_payload_length(m.payload.size());
  dl.set_payload_sha256(sha256(m.payload));
  if (m.key.size() > 1024) {
    dl.set_key(m.key.data(), 1024);
  } else {
    dl.set_key(m.key);
  }
  dl.set_at_unix_nanos(now_unix_nanos());
  out_.produce(opt_.deadletter_topic, m.topic, dl.SerializeAsString());
  ++deadlettered_;
  if (metrics_) metrics_->deadletter(reason);
  static LogThrottle throttle;
  uint64_t suppressed = 0;
  if (throttle.allow(&suppressed))
    logger(opt_.service)
        ->warn("dead letter {}[{}]@{}: {}: {} (+{} suppressed)", m.topic, m.partition, m.offset,
               reason, detail, suppressed);
}

size_t StreamLoop::run_once() {
  std::vector<Message> batch = in_.poll(opt_.max_batch, opt_.poll_timeout);
  const auto t0 = std::chrono::steady_clock::now();
  if (const uint64_t gained = in_.partitions_gained(); gained != partitions_gained_) {
    // Not at the first assignment: the stage restored its state before it joined.
    if (partitions_gained_ > 0 && opt_.on_partitions_gained) opt_.on_partitions_gained();
    partitions_gained_ = gained;
  }
  if (!batch.empty()) {
    try {
      proc_.process_batch(batch, out_,
                          [this](const Message& m, const std::string& reason,
                                 const std::string& detail) { dead_letter(m, reason, detail); });
    } catch (const std::exception& e) {
      // A batch-level failure: nothing of it is committed; it is read again.
      logger(opt_.service)
          ->error("batch failed, re-reading {} messages: {}", batch.size(), e.what());
      out_.flush(opt_.flush_timeout);
      in_.rewind(batch);
      return batch.size();
    }
  }
  proc_.tick(out_);
  if (batch.empty()) return 0;
  const FlushResult r = out_.flush(opt_.flush_timeout);
  const Message& first = batch.front();
  const bool same_batch = first.topic == retry_topic_ && first.partition == retry_partition_ &&
                          first.offset == retry_offset_;
  if (r.ok()) {
    in_.commit(batch);
    processed_ += batch.size();
    retry_attempts_ = 0;
    retry_offset_ = -1;
  } else if (r.permanent > 0 && r.permanent == r.failed && r.complete &&
             (same_batch ? retry_attempts_ : 0) + 1 >= opt_.max_output_attempts) {
    // Every failure was permanent and has recurred max_output_attempts times: reading the
    // batch again cannot help. The refused outputs are counted and skipped, the rest of the
    // batch's outputs were acknowledged, the batch is committed.
    outputs_skipped_ += r.permanent;
    if (skipped_family_)
      skipped_family_->Add({{"service", opt_.service}, {"reason", r.permanent_reason}})
          .Increment(static_cast<double>(r.permanent));
    logger(opt_.service)
        ->error("{} outputs of the batch at {}[{}]@{} refused by the broker {} times ({}); skipped",
                r.permanent, first.topic, first.partition, first.offset, opt_.max_output_attempts,
                r.permanent_reason);
    in_.commit(batch);
    processed_ += batch.size();
    retry_attempts_ = 0;
    retry_offset_ = -1;
  } else {
    // Outputs not acknowledged: do not commit; read the batch again (at-least-once).
    if (r.permanent > 0) {
      retry_attempts_ = same_batch ? retry_attempts_ + 1 : 1;
      retry_topic_ = first.topic, retry_partition_ = first.partition, retry_offset_ = first.offset;
    }
    logger(opt_.service)
        ->error("{} outputs not acknowledged ({}{}); re-reading {} messages", r.failed,
                r.complete ? "delivery failed" : "flush timed out",
                r.permanent ? ", " + std::to_string(r.permanent) + " refused: " + r.permanent_reason
                            : "",
                batch.size());
    in_.rewind(batch);
  }
  if (batch_seconds_)
    batch_seconds_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return batch.size();
}

void StreamLoop::run(const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) run_once();
  proc_.drain(out_);
  const FlushResult r = out_.flush(opt_.flush_timeout);
  if (!r.ok()) logger(opt_.service)->error("final flush incomplete: {} failed", r.failed);
  in_.close();
}

}  // namespace immunizer::common
