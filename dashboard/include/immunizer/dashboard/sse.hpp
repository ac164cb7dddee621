// Fan-out of Server-Sent Events to browsers. publish() never blocks on the network: each
// client has a bounded queue, and an event for a full queue is dropped and counted (the
// browser re-syncs from /api/* on its next reconnect or refresh). Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "immunizer/common/metrics.hpp"

namespace immunizer::dashboard {

class SseHub {
 public:
  struct Client {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::string> frames;  // complete "event: ..\ndata: ..\n\n" frames
    uint64_t dropped = 0;
  };
  enum class Next { kFrame, kTimeout, kClosed };

  SseHub(size_t max_clients, size_t queue_capacity, prometheus::Registry& registry);

  // nullptr when max_clients are already connected or the hub is closed.
  std::shared_ptr<Client> subscribe();
  void unsubscribe(const std::shared_ptr<Client>& c);
  // Queues one event for every client; never waits for a client.
  void publish(std::string_view event, std::string_view json_data);
  // Waits up to `timeout` for the client's next frame.
  Next next(Client& c, std::string& frame, std::chrono::milliseconds timeout);
  // Wakes every waiting client and refuses new ones (before the HTTP server stops).
  void close();

  size_t clients() const;
  uint64_t dropped() const;
  static std::string frame(std::string_view event, std::string_view json_data);

 private:
  size_t max_clients_, capacity_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::atomic<bool> closed_{false};
  uint64_t dropped_ = 0;
  prometheus::Gauge& clients_gauge_;
  prometheus::Counter& dropped_counter_;
};

}  // namespace immunizer::dashboard
