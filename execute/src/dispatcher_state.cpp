#include "immunizer/execute/dispatcher.hpp"

#include <algorithm>

#include "dispatcher_internal.hpp"
#include "immunizer/common/snapshots.hpp"

namespace immunizer::execute {

using namespace internal;  // NOLINT(google-build-using-namespace): this component's own helpers

void Dispatcher::persist_locked(const std::string& primary, const Active* a) {
  v1::ModelSnapshot snap;
  snap.set_model_key(primary);
  snap.set_kind(kSnapshotKind);
  snap.set_format_version(kSnapshotFormat);
  snap.set_taken_unix_nanos(clock_.now_unix_nanos());
  if (a) {
    v1::ValueMap m;
    auto& f = *m.mutable_fields();
    f["directive"].set_bytes_value(a->directive.SerializeAsString());
    auto* list = f["aliases"].mutable_list_value();
    for (const auto& id : a->aliases) list->add_items()->set_string_value(id);
    f["alarm_id"].set_string_value(a->alarm_id);
    snap.set_state(m.SerializeAsString());
  }
  // State is what survives a restart: never dropped for queue limits.
  Out o{topics_.models, common::snapshot_key(kSnapshotKind, primary), snap.SerializeAsString()};
  if (state_sink_) {
    ++state_gen_;
    state_outbox_.push_back(std::move(o));
  } else {
    outbox_.push_back(std::move(o));
  }
}

size_t Dispatcher::restore(const std::map<std::string, v1::ModelSnapshot>& snapshots) {
  std::lock_guard lk(mu_);
  const int64_t now = clock_.now_unix_nanos();
  size_t n = 0;
  for (const auto& [key, snap] : snapshots) {
    if (snap.kind() != kSnapshotKind || snap.state().empty()) continue;
    v1::ValueMap m;
    if (!m.ParseFromString(snap.state())) {
      log()->warn("persisted entry {} is unreadable; skipped", key);
      continue;
    }
    const auto& f = m.fields();
    Active a;
    if (!f.count("directive") || !a.directive.ParseFromString(f.at("directive").bytes_value()) ||
        a.directive.action().id().empty())
      continue;
    if (a.directive.expires_unix_nanos() != 0 && a.directive.expires_unix_nanos() <= now) continue;
    const std::string primary = a.directive.action().id();
    if (active_.count(primary)) continue;
    if (f.count("aliases"))
      for (const auto& v : f.at("aliases").list_value().items())
        a.aliases.push_back(v.string_value());
    if (a.aliases.empty()) a.aliases.push_back(primary);
    if (f.count("alarm_id")) a.alarm_id = f.at("alarm_id").string_value();
    by_target_[target_key(a.directive.action())] = primary;
    for (const auto& id : a.aliases) alias_[id] = primary;
    // Acks for the replayed directive are reported under the primary action.
    remember_locked(
        a.directive,
        Sent{primary, a.directive.action(), a.directive.plan_id(), a.alarm_id, 0, false, {}});
    active_.emplace(primary, std::move(a));
    ++n;
  }
  update_gauges_locked();
  if (n) log()->info("restored {} active directive(s) from the previous run", n);
  return n;
}

size_t Dispatcher::drain(common::Producer& out) {
  bool waiting = false;
  {
    std::lock_guard lk(mu_);
    waiting = !held_.empty();
  }
  // Events wait for the state before them: acknowledged, they go out with this drain.
  if (waiting) flush_state();
  std::vector<Out> outs;
  {
    std::lock_guard lk(mu_);
    outs.swap(outbox_);
  }
  for (const auto& o : outs) out.produce(o.topic, o.key, o.payload);
  size_t n = outs.size();
  if (state_sink_ && !waiting) {
    std::lock_guard sl(state_mu_);
    {
      std::lock_guard lk(mu_);
      n += state_outbox_.size();
    }
    produce_state();
  }
  return n;
}

void Dispatcher::set_state_sink(common::Producer* sink, std::chrono::milliseconds timeout) {
  std::lock_guard sl(state_mu_);
  std::lock_guard lk(mu_);
  state_sink_ = sink;
  state_timeout_ = timeout;
}

uint64_t Dispatcher::produce_state() {
  std::vector<Out> outs;
  uint64_t gen = 0;
  {
    std::lock_guard lk(mu_);
    if (repersist_all_) {
      // A flush failed: what it carried may be lost; the current state of every entry again.
      repersist_all_ = false;
      for (const auto& [primary, a] : active_) persist_locked(primary, &a);
    }
    outs.swap(state_outbox_);
    gen = state_gen_;
  }
  for (const auto& o : outs) state_sink_->produce(o.topic, o.key, o.payload);
  return gen;
}

void Dispatcher::release_held_locked() {
  while (!held_.empty() && held_.front().first <= acked_gen_) {
    outbox_.push_back(std::move(held_.front().second));
    held_.pop_front();
  }
}

bool Dispatcher::flush_state() {
  if (!state_sink_) return true;
  std::lock_guard sl(state_mu_);
  const uint64_t gen = produce_state();
  const common::FlushResult r = state_sink_->flush(state_timeout_);
  std::lock_guard lk(mu_);
  if (r.ok()) {
    acked_gen_ = std::max(acked_gen_, gen);
    release_held_locked();
    return true;
  }
  log()->error("active-action state not acknowledged by Kafka ({} failed, {}); it is written again",
               r.failed, r.complete ? "delivery failed" : "timed out");
  repersist_all_ = true;
  return false;
}

}  // namespace immunizer::execute
