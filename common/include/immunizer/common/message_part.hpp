// One part of a consumed message (a record of a batch) as a message of its own: the
// message's coordinates (topic, partition, offset, key, timestamp) with only that part's
// bytes, so a dead letter about one record carries that record alone. Pure; thread-safe.
#pragma once

#include <string_view>

#include "immunizer/common/kafka.hpp"

namespace immunizer::common {

inline Message message_part(const Message& m, std::string_view bytes) {
  return Message{.topic = m.topic,
                 .partition = m.partition,
                 .offset = m.offset,
                 .key = m.key,
                 .payload = std::string(bytes),
                 .timestamp_ms = m.timestamp_ms};
}

}  // namespace immunizer::common
