#include "immunizer/dashboard/pipeline_loss.hpp"

#include <httplib.h>

#include "immunizer/common/metrics_text.hpp"

namespace immunizer::dashboard {

PipelineLoss::PipelineLoss(std::vector<std::string> metrics_urls,
                           std::chrono::milliseconds interval)
    : urls_(std::move(metrics_urls)), poller_(interval, [this] { refresh(); }) {}

PipelineLoss::~PipelineLoss() { stop(); }

void PipelineLoss::start() {
  if (!urls_.empty()) poller_.start();
}

void PipelineLoss::stop() { poller_.stop(); }

void PipelineLoss::refresh() {
  double lost = 0;
  int unreachable = 0;
  for (const auto& url : urls_) {
    // http://host:port/path (checked by DashboardConfig).
    const size_t host_at = url.find("://") + 3;
    const size_t path_at = url.find('/', host_at);
    httplib::Client c(url.substr(0, path_at));
    c.set_connection_timeout(1);
    c.set_read_timeout(3);
    auto r = c.Get(path_at == std::string::npos ? "/metrics" : url.substr(path_at).c_str());
    if (!r || r->status != 200) {
      ++unreachable;
      continue;
    }
    lost += common::metric_sum(r->body, "immunizer_records_lost_total");
  }
  std::lock_guard l(mu_);
  polled_ = true;
  lost_ = lost;
  unreachable_ = unreachable;
}

nlohmann::json PipelineLoss::summary() const {
  std::lock_guard l(mu_);
  return {
      {"records_lost", polled_ ? nlohmann::json(static_cast<int64_t>(lost_)) : nlohmann::json()},
      {"pages", urls_.size()},
      {"unreachable", unreachable_}};
}

}  // namespace immunizer::dashboard
