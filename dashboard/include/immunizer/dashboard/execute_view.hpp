// execute's authoritative list of enforcing actions (Operations/ListActive),
// polled on its own thread so neither the consumer nor a browser ever waits for
// execute. Actions execute merged or extended are one entry there, so they are
// counted once. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "immunizer/common/ids.hpp"
#include "immunizer/common/periodic_task.hpp"
#include "immunizer/dashboard/operations.hpp"

namespace immunizer::dashboard {

class ExecuteView {
 public:
  ExecuteView(OperationsClient& ops, std::chrono::milliseconds interval,
              const common::Clock& clock);
  ~ExecuteView();
  ExecuteView(const ExecuteView&) = delete;
  ExecuteView& operator=(const ExecuteView&) = delete;

  void start();  // polls every interval until stop()
  void stop();
  // One poll now; false when execute did not answer.
  bool refresh();
  // {"reachable", "at_unix_nanos" (last answer), "blocks_active",
  // "enforcing_active",
  //  "by_kind": {...}, "effectors", "error"}; counts are null until execute has
  //  answered once.
  nlohmann::json summary() const;
  // Enforcing actions (block, abort, throttle, disable) if execute answered
  // within 3 intervals.
  std::optional<int64_t> fresh_enforcing_active() const;

 private:
  OperationsClient& ops_;
  std::chrono::milliseconds interval_;
  const common::Clock& clock_;
  mutable std::mutex mu_;
  bool reachable_ = false, answered_ = false;
  int64_t at_ = 0, blocks_ = 0, enforcing_ = 0, effectors_ = 0;
  nlohmann::json by_kind_ = nlohmann::json::object();
  std::string error_;
  common::PeriodicTask poller_;  // last: stopped before the state it refreshes goes
};

}  // namespace immunizer::dashboard
