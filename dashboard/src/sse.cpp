#include "immunizer/dashboard/sse.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <algorithm>

namespace immunizer::dashboard {

SseHub::SseHub(size_t max_clients, size_t queue_capacity, prometheus::Registry& registry)
    : max_clients_(max_clients),
      capacity_(queue_capacity),
      clients_gauge_(common::register_gauge(registry, "immunizer_dashboard_sse_clients",
                                            "Browsers connected to /api/events")),
      dropped_counter_(common::register_counter(
          registry, "immunizer_dashboard_sse_dropped_total",
          "Server-sent events dropped because a client's queue was full")) {}

std::string SseHub::frame(std::string_view event, std::string_view json_data) {
  std::string f;
  f.reserve(event.size() + json_data.size() + 16);
  f.append("event: ").append(event).append("\n");
  // JSON from nlohmann::dump() has no raw newlines; split defensively anyway.
  size_t start = 0;
  while (true) {
    const size_t nl = json_data.find('\n', start);
    f.append("data: ")
        .append(json_data.substr(start, nl == std::string_view::npos ? nl : nl - start))
        .append("\n");
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  f.append("\n");
  return f;
}

std::shared_ptr<SseHub::Client> SseHub::subscribe() {
  std::lock_guard lock(mu_);
  if (closed_.load() || clients_.size() >= max_clients_) return nullptr;
  auto c = std::make_shared<Client>();
  clients_.push_back(c);
  clients_gauge_.Set(static_cast<double>(clients_.size()));
  return c;
}

void SseHub::unsubscribe(const std::shared_ptr<Client>& c) {
  std::lock_guard lock(mu_);
  clients_.erase(std::remove(clients_.begin(), clients_.end(), c), clients_.end());
  clients_gauge_.Set(static_cast<double>(clients_.size()));
}

void SseHub::publish(std::string_view event, std::string_view json_data) {
  const std::string f = frame(event, json_data);
  std::lock_guard lock(mu_);
  for (const auto& c : clients_) {
    bool queued = false;
    {
      std::lock_guard cl(c->mu);
      if (c->frames.size() < capacity_) {
        c->frames.push_back(f);
        queued = true;
      } else {
        ++c->dropped;
      }
    }
    if (queued) {
      c->cv.notify_one();
    } else {
      ++dropped_;
      dropped_counter_.Increment();
    }
  }
}

SseHub::Next SseHub::next(Client& c, std::string& frame, std::chrono::milliseconds timeout) {
  std::unique_lock cl(c.mu);
  auto ready = [&] {
    // closed_ is atomic: taking mu_ here would invert the lock order of publish().
    return !c.frames.empty() || closed_.load();
  };
  if (!c.cv.wait_for(cl, timeout, ready)) return Next::kTimeout;
  if (c.frames.empty()) return Next::kClosed;
  frame = std::move(c.frames.front());
  c.frames.pop_front();
  return Next::kFrame;
}

void SseHub::close() {
  std::vector<std::shared_ptr<Client>> all;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    all = clients_;
  }
  for (const auto& c : all) {
    std::lock_guard cl(c->mu);  // pairs with the predicate check in next()
    c->cv.notify_all();
  }
}

size_t SseHub::clients() const {
  std::lock_guard lock(mu_);
  return clients_.size();
}
uint64_t SseHub::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

}  // namespace immunizer::dashboard
