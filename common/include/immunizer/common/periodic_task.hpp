// A thread of its own that runs a task at once and then every interval until stopped: the
// pollers that keep a view fresh so that no caller waits for the remote end (the dashboard's
// view of execute, its pipeline loss figure). Thread-safe; stop() (or destruction) wakes the
// thread and joins it, after the task's current run.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace immunizer::common {

class PeriodicTask {
 public:
  PeriodicTask(std::chrono::milliseconds interval, std::function<void()> task);
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  void start();  // nothing when already running
  void stop();   // idempotent

 private:
  std::chrono::milliseconds interval_;
  std::function<void()> task_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace immunizer::common
