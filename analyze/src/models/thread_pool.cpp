#include "immunizer/analyze/models/thread_pool.hpp"

#include <algorithm>
#include <exception>

namespace immunizer::analyze {

ThreadPool::ThreadPool(std::size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

// Claims indices of the current job until none are left; called with mu_ unlocked.
void ThreadPool::drain() {
  for (;;) {
    std::size_t i;
    const std::function<void(std::size_t)>* job;
    {
      std::lock_guard lock(mu_);
      if (job_ == nullptr || next_ >= n_) return;
      i = next_++;
      job = job_;
    }
    std::exception_ptr err;
    try {
      (*job)(i);
    } catch (...) {
      err = std::current_exception();
    }
    std::lock_guard lock(mu_);
    if (err && !error_) error_ = err;
    if (++finished_ == n_) done_.notify_all();
  }
}

void ThreadPool::worker_loop() {
  std::size_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    drain();
  }
}

void ThreadPool::parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn) {
  if (n == 0) return;
  if (n == 1 || workers_.empty()) {
    // Nothing to share: waking the workers would cost more than the work (analyze calls
    // this twice per consumed batch, often for one message or one model key).
    std::exception_ptr err;
    for (std::size_t i = 0; i < n; ++i) {
      try {
        fn(i);
      } catch (...) {
        if (!err) err = std::current_exception();
      }
    }
    if (err) std::rethrow_exception(err);
    return;
  }
  {
    std::lock_guard lock(mu_);
    job_ = &fn;
    n_ = n;
    next_ = finished_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  drain();
  std::exception_ptr err;
  {
    std::unique_lock lock(mu_);
    done_.wait(lock, [&] { return finished_ == n_; });
    job_ = nullptr;
    err = error_;
  }
  if (err) std::rethrow_exception(err);
}

TaskQueue::TaskQueue() : thread_([this] { loop(); }) {}

TaskQueue::~TaskQueue() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    tasks_.clear();
  }
  wake_.notify_all();
  thread_.join();
}

void TaskQueue::submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void TaskQueue::wait_idle() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return tasks_.empty() && !busy_; });
}

std::size_t TaskQueue::queued() const {
  std::lock_guard lock(mu_);
  return tasks_.size() + (busy_ ? 1 : 0);
}

void TaskQueue::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
    if (stop_) break;
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    busy_ = true;
    lock.unlock();
    task();
    lock.lock();
    busy_ = false;
    if (tasks_.empty()) idle_.notify_all();
  }
  busy_ = false;
  idle_.notify_all();
}

}  // namespace immunizer::analyze
