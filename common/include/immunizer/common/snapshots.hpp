// Learned state on the compacted models topic: services write a ModelSnapshot per model
// key and, at start-up, read the latest snapshot of each key back (restart, rebalance).
// read_snapshots() is a blocking call meant for start-up; not for the hot path.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "immunizer/common/kafka.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::common {

// Topic key of a snapshot: "<kind>|<model key>" so monitor and analyze share the topic.
inline std::string snapshot_key(const std::string& kind, const std::string& model_key) {
  return kind + "|" + model_key;
}

// The latest snapshot per model key of `kind`, reading the topic from the beginning up to
// its end as of the call. Returns what it read if `timeout` passes first.
std::map<std::string, v1::ModelSnapshot> read_snapshots(const KafkaSettings& s, const std::string& topic,
                                                        const std::string& kind,
                                                        std::chrono::milliseconds timeout);

}  // namespace immunizer::common
