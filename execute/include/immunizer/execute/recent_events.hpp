// Reads back the tail of execute's own audit trail (<prefix>actions) at start-up, so that the
// Dispatcher can recall what the previous run decided (Dispatcher::recall). A blocking call
// with its own short-lived Kafka client (no consumer group is joined, nothing is committed);
// for start-up only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "immunizer/common/kafka.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::execute {

struct RecentEvents {
  std::vector<v1::ActionEvent> events;  // in partition order
  // Every event written at or after this time (its at_unix_nanos) is in `events`: 0 when every
  // partition was read from its first offset ever (0), else the latest, over the partitions,
  // of the first event read. INT64_MAX when the read did not complete.
  int64_t complete_since_unix_nanos = 0;
  bool complete = false;  // each partition read up to its end as of the call
  size_t unreadable = 0;  // messages that were not an ActionEvent (skipped)
};

// The last `per_partition` messages of each partition of `topic` (0: none, complete), up to the
// partitions' ends as of the call, within `timeout`.
RecentEvents read_recent_events(const common::KafkaSettings& s, const std::string& topic,
                                int64_t per_partition, std::chrono::milliseconds timeout);

}  // namespace immunizer::execute
