// Fixed-size worker pool with a blocking parallel_for, used to score many model keys at once.
// parallel_for may be called from one thread at a time (the pool's owner); the workers are
// owned by the pool and joined by its destructor.
#pragma once

#include <condition_variable>
#include <cstddef>
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

}  // namespace immunizer::analyze
