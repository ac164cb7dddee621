// Fixed-size worker pool with a blocking parallel_for, used to score many model keys at once.
// parallel_for may be called from one thread at a time (the pool's owner); the workers are
// owned by the pool and joined by its destructor. TaskQueue: one background thread running
// tasks in order (analyze's refits); thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace immunizer::analyze {

class ThreadPool {
 public:
  explicit ThreadPool(std::size_t threads);  // 0 = hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  std::size_t size() const { return workers_.size() + 1; }  // the caller helps too
  // Runs fn(0..n-1) across the workers and the calling thread; returns when all are done.
  // The first exception thrown by fn is rethrown here after every index has run.
  void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn);

 private:
  void worker_loop();
  void drain();

  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::size_t n_ = 0, next_ = 0, finished_ = 0;
  std::size_t generation_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

class TaskQueue {
 public:
  TaskQueue();
  ~TaskQueue();  // tasks not started yet are dropped; the running one finishes
  TaskQueue(const TaskQueue&) = delete;
  TaskQueue& operator=(const TaskQueue&) = delete;

  void submit(std::function<void()> task);  // a task must not throw
  void wait_idle();                         // until every task submitted so far has run
  std::size_t queued() const;               // submitted and not finished

 private:
  void loop();
  mutable std::mutex mu_;
  std::condition_variable wake_, idle_;
  std::deque<std::function<void()>> tasks_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace immunizer::analyze
