// Sends incident notifications (opened, escalated, resolved) to webhooks (JSON
// body signed with HMAC-SHA256, retries with exponential backoff, dead letters
// after N attempts) and as JSON lines to a file for SIEMs. notify() never
// blocks the caller (the consumer thread): every destination has a bounded
// queue and its own worker thread, and a notification for a full queue is
// dropped and counted. Thread-safe. Metrics per destination.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "immunizer/common/ids.hpp"
#include "immunizer/common/metrics.hpp"

namespace immunizer::dashboard {

struct NotifierConfig {
  // Webhook URLs (http:// or https://host[:port]/path); each is one
  // destination.
  std::vector<std::string> webhook_urls;
  // HMAC-SHA256 key for the X-Immunizer-Signature header; required with
  // webhook_urls.
  std::string webhook_secret;
  // Append one JSON object per line to this file (created 0600); "" = off.
  std::string jsonl_path;
  // Which incident events are sent: opened, escalated, resolved (resolved
  // includes false_positive).
  std::vector<std::string> events = {"opened", "escalated", "resolved"};
  int64_t queue = 1000;             // notifications waiting per destination
  int64_t max_attempts = 5;         // then the notification is a dead letter
  int64_t backoff_ms = 500;         // first retry delay, doubled per attempt ...
  int64_t max_backoff_ms = 30'000;  // ... up to this
  int64_t timeout_ms = 5000;        // connect + read timeout of one webhook attempt
  // Dead letters (destination, error, attempts, the notification) as JSON
  // lines; "" = only counted and logged.
  std::string deadletter_path;
  bool enabled() const { return !webhook_urls.empty() || !jsonl_path.empty(); }
};

// hex(HMAC-SHA256(secret, timestamp + "." + body)): what X-Immunizer-Signature
// carries (as "sha256=<hex>"), with the timestamp in X-Immunizer-Timestamp
// (unix seconds).
std::string webhook_signature(const std::string& secret, const std::string& timestamp,
                              const std::string& body);

class Notifier {
 public:
  class Destination;
  // Throws std::invalid_argument for a bad URL or a webhook without a secret.
  Notifier(NotifierConfig cfg, prometheus::Registry& registry, const common::Clock& clock);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // event: "opened", "escalated", "resolved"; ignored unless configured.
  void notify(const std::string& event, const nlohmann::json& incident);
  // Stops the workers after at most `drain` spent delivering what is queued.
  void stop(std::chrono::milliseconds drain = std::chrono::milliseconds(2000));
  size_t destinations() const { return dests_.size(); }

 private:
  struct DeadLetterSink;
  NotifierConfig cfg_;
  const common::Clock& clock_;
  std::unique_ptr<DeadLetterSink> deadletters_;  // outlives the destinations that write to it
  std::vector<std::unique_ptr<Destination>> dests_;
};

}  // namespace immunizer::dashboard
