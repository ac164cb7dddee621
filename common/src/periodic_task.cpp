#include "immunizer/common/periodic_task.hpp"

namespace immunizer::common {

PeriodicTask::PeriodicTask(std::chrono::milliseconds interval, std::function<void()> task)
    : interval_(interval), task_(std::move(task)) {}

PeriodicTask::~PeriodicTask() { stop(); }

void PeriodicTask::start() {
  std::lock_guard l(mu_);
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    std::unique_lock l(mu_);
    while (!stopping_) {
      l.unlock();
      task_();
      l.lock();
      cv_.wait_for(l, interval_, [this] { return stopping_; });
    }
  });
}

void PeriodicTask::stop() {
  std::thread t;
  {
    std::lock_guard l(mu_);
    stopping_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

}  // namespace immunizer::common
