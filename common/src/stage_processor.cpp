#include "immunizer/common/stage_processor.hpp"

#include <stdexcept>

#include "immunizer/common/logging.hpp"

namespace immunizer::common {

SnapshottingProcessor::SnapshottingProcessor(SnapshotSpec spec, std::string topic,
                                             int64_t interval_ms, const Clock& clock)
    : spec_(spec),
      clock_(clock),
      snapshots_(std::string(spec.kind), spec.format, std::move(topic), interval_ms, clock) {}

void SnapshottingProcessor::tick(Producer& out) {
  if (snapshots_.maybe_write(out, [this](const std::string& k) { return state_of(k); }))
    update_gauges();
}

void SnapshottingProcessor::drain(Producer& out) {
  snapshots_.write_final(out, [this](const std::string& k) { return state_of(k); });
}

size_t SnapshottingProcessor::restore(const std::map<std::string, v1::ModelSnapshot>& snaps) {
  size_t n = 0;
  for (const auto& [key, snap] : snaps) {
    if (const auto it = changed_at_.find(key);
        it != changed_at_.end() && it->second >= snap.taken_unix_nanos())
      continue;  // changed here since: this state is newer than the snapshot
    try {
      if (snap.format_version() != spec_.format)
        throw std::runtime_error("unknown format " + std::to_string(snap.format_version()));
      restore_key(key, snap.state());
      ++n;
    } catch (const std::exception& e) {
      logger(std::string(spec_.kind))->warn("snapshot of {} skipped: {}", key, e.what());
    }
  }
  update_gauges();
  return n;
}

}  // namespace immunizer::common
