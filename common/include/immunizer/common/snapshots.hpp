// Learned state on the compacted models topic: services write a ModelSnapshot per model
// key and, at start-up, read the latest snapshot of each key back (restart, rebalance).
// read_snapshots() is a blocking call meant for start-up; not for the hot path.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "immunizer/common/ids.hpp"

#include "immunizer/common/kafka.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::common {

// Topic key of a snapshot: "<kind>|<model key>" so monitor and analyze share the topic.
inline std::string snapshot_key(const std::string& kind, const std::string& model_key) {
  return kind + "|" + model_key;
}

// The latest snapshot per model key of `kind`, reading the topic from the beginning up to
// its end as of the call. Returns what it read if `timeout` passes first.
std::map<std::string, v1::ModelSnapshot> read_snapshots(const KafkaSettings& s,
                                                        const std::string& topic,
                                                        const std::string& kind,
                                                        std::chrono::milliseconds timeout);

// Remembers which model keys changed since their last snapshot and writes them in rounds:
// every `interval_ms`, and once more at shutdown. Snapshots go to their own producer when one
// is set (best effort: never part of a batch's commit), otherwise to the data producer.
// One owner thread (the service's stream loop).
class SnapshotWriter {
 public:
  // The state of a key (bytes, records seen), or nullopt to skip it.
  using StateFn =
      std::function<std::optional<std::pair<std::string, uint64_t>>(const std::string& key)>;

  SnapshotWriter(std::string kind, uint32_t format, std::string topic, int64_t interval_ms,
                 const Clock& clock)
      : kind_(std::move(kind)),
        format_(format),
        topic_(std::move(topic)),
        interval_ns_(interval_ms * 1'000'000),
        clock_(clock) {}
  void set_producer(Producer* p) { own_ = p; }
  void mark(const std::string& model_key) { changed_.insert(model_key); }
  // Writes a round when the interval has passed since the last; returns whether it did.
  bool maybe_write(Producer& data_out, const StateFn& state);
  // Writes every changed key now and waits (bounded) for the broker's acknowledgement.
  void write_final(Producer& data_out, const StateFn& state);

 private:
  void write(Producer& data_out, const StateFn& state);
  std::string kind_;
  uint32_t format_;
  std::string topic_;
  int64_t interval_ns_;
  const Clock& clock_;
  Producer* own_ = nullptr;
  std::set<std::string> changed_;
  int64_t last_ns_ = 0;
};

}  // namespace immunizer::common
