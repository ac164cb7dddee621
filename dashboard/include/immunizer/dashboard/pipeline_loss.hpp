// Records the pipeline lost, as the services count them: immunizer_records_lost_total (a
// consumer reset past unread data) summed over the /metrics pages of the services
// (dashboard.pipeline_metrics_urls; `immunizer up` lists every service), polled on a thread of
// its own so no browser waits for them. The page's banner shows the figure in red when it is not 0
// (stats "pipeline.records_lost"; also in the overview's time series).
// Thread-safe.
#pragma once

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "immunizer/common/periodic_task.hpp"

namespace immunizer::dashboard {

class PipelineLoss {
 public:
  PipelineLoss(std::vector<std::string> metrics_urls, std::chrono::milliseconds interval);
  ~PipelineLoss();
  PipelineLoss(const PipelineLoss&) = delete;
  PipelineLoss& operator=(const PipelineLoss&) = delete;

  void start();  // polls every interval until stop(); nothing when no URL is configured
  void stop();
  // One poll now.
  void refresh();
  // {"records_lost": n (null before the first poll), "pages": configured, "unreachable": pages
  // that did not answer at the last poll}.
  nlohmann::json summary() const;

 private:
  std::vector<std::string> urls_;
  mutable std::mutex mu_;
  bool polled_ = false;
  double lost_ = 0;
  int unreachable_ = 0;
  common::PeriodicTask poller_;  // last: stopped before the state it refreshes goes
};

}  // namespace immunizer::dashboard
