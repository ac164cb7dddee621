// Wiring shared by the stream services: consumer group, producer, optional learned-state
// snapshots (restored at start-up, written through their own best-effort producer), and the
// stream loop until the service is told to stop. Called from a service body only.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "immunizer/common/service.hpp"
#include "immunizer/common/stream_loop.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::common {

// Throughput knobs of one stream service, keys under its own name (`<service>.max_batch`,
// `.poll_timeout_ms`, `.linger_ms`, `.fetch_wait_max_ms`): read and range-checked in the
// service's setup (an out-of-range or malformed value is a ConfigError naming the key).
struct StreamTuning {
  size_t max_batch = 500;          // messages per consumed batch (one flush and commit each)
  int64_t poll_timeout_ms = 20;    // the longest a poll waits for its first message
  int64_t linger_ms = 5;           // producer: how long messages gather into one request
  int64_t fetch_wait_max_ms = 20;  // consumer: how long the broker may wait to fill a fetch
  static StreamTuning from_config(const Config& c, const std::string& service);
};

struct SnapshotHooks {
  std::string kind;     // "monitor", "analyze": the snapshots this service owns
  bool restore = true;  // read the latest ones back before consuming
  // Applies the snapshots read back; returns how many were usable.
  std::function<size_t(const std::map<std::string, v1::ModelSnapshot>&)> apply;
  // Receives the producer snapshots are written to.
  std::function<void(Producer*)> attach;
};

// Runs `proc` over `topics` in consumer group `group` until ctx.stop is set.
void run_stream_service(ServiceContext& ctx, Processor& proc, KafkaMetrics& metrics,
                        const std::string& group, const std::vector<std::string>& topics,
                        const SnapshotHooks* snapshots = nullptr, const StreamTuning& tuning = {});

// Calls `restore_one(key, snapshot)` for each snapshot; a throwing one is skipped with a
// warning naming the key. Returns how many were restored.
size_t restore_each(
    const std::map<std::string, v1::ModelSnapshot>& snaps, const std::string& kind,
    const std::function<void(const std::string&, const v1::ModelSnapshot&)>& restore_one);

}  // namespace immunizer::common
