#include "immunizer/dashboard/execute_view.hpp"

#include <set>

#include "immunizer/dashboard/json.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

ExecuteView::ExecuteView(OperationsClient& ops, std::chrono::milliseconds interval,
                         const common::Clock& clock)
    : ops_(ops), interval_(interval), clock_(clock), poller_(interval, [this] { refresh(); }) {}

ExecuteView::~ExecuteView() { stop(); }

void ExecuteView::start() { poller_.start(); }

void ExecuteView::stop() { poller_.stop(); }

bool ExecuteView::refresh() {
  v1::ListActiveResponse resp;
  const auto st = ops_.list_active(&resp);
  std::lock_guard l(mu_);
  reachable_ = st.ok();
  if (!st.ok()) {
    error_ = st.message;
    return false;
  }
  error_.clear();
  answered_ = true;
  at_ = clock_.now_unix_nanos();
  std::set<std::string> seen;
  blocks_ = enforcing_ = 0;
  by_kind_ = json::object();
  for (const auto& a : resp.actions()) {
    if (!a.action().id().empty() && !seen.insert(a.action().id()).second)
      continue;  // listed once per id
    const auto k = a.action().kind();
    by_kind_[action_kind_name(k)] = by_kind_.value(action_kind_name(k), 0) + 1;
    if (k == v1::ACTION_BLOCK_PRINCIPAL) ++blocks_;
    if (k == v1::ACTION_BLOCK_PRINCIPAL || k == v1::ACTION_ABORT_CALL ||
        k == v1::ACTION_THROTTLE_PRINCIPAL || k == v1::ACTION_DISABLE_CALL)
      ++enforcing_;
  }
  effectors_ = resp.effectors_size();
  return true;
}

json ExecuteView::summary() const {
  std::lock_guard l(mu_);
  return {{"reachable", reachable_},
          {"at_unix_nanos", at_},
          {"blocks_active", answered_ ? json(blocks_) : json(nullptr)},
          {"enforcing_active", answered_ ? json(enforcing_) : json(nullptr)},
          {"by_kind", by_kind_},
          {"effectors", answered_ ? json(effectors_) : json(nullptr)},
          {"error", error_}};
}

std::optional<int64_t> ExecuteView::fresh_enforcing_active() const {
  std::lock_guard l(mu_);
  const int64_t max_age =
      3 * std::chrono::duration_cast<std::chrono::nanoseconds>(interval_).count();
  if (!answered_ || !reachable_ || clock_.now_unix_nanos() - at_ > max_age) return std::nullopt;
  return enforcing_;
}

}  // namespace immunizer::dashboard
