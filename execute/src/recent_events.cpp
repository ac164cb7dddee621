#include "immunizer/execute/recent_events.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <limits>
#include <map>
#include <stdexcept>

#include "immunizer/common/logging.hpp"

namespace immunizer::execute {
namespace {

constexpr int64_t kUnknown = std::numeric_limits<int64_t>::max();

struct Handle {
  rd_kafka_t* rk = nullptr;
  ~Handle() {
    if (rk) rd_kafka_destroy(rk);
  }
};

rd_kafka_t* make_reader(const common::KafkaSettings& s) {
  // group.id: required by librdkafka; never joined.
  return common::make_kafka_reader(s,
                                   {{"group.id", "immunizer-execute-recall"},
                                    {"enable.auto.commit", "false"},
                                    {"enable.partition.eof", "false"}},
                                   "action event reader");
}

// Assigns each non-empty partition at max(low, high - per_partition); returns, per partition,
// its end and whether the read starts at offset 0; false when the metadata is not available.
struct Range {
  int64_t end = 0;
  bool from_zero = false;
  int64_t first_at = -1;  // at_unix_nanos of the first event read, -1 before
};
bool assign_tails(rd_kafka_t* rk, const std::string& topic, int64_t per_partition, int tmo,
                  std::map<int32_t, Range>& ranges) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const bool ok = rd_kafka_metadata(rk, 0, rkt, &md, tmo) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                  md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
  rd_kafka_topic_destroy(rkt);
  if (!ok) {
    if (md) rd_kafka_metadata_destroy(md);
    return false;
  }
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
  bool all = true;
  for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
    const int32_t p = md->topics[0].partitions[i].id;
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, tmo) != 0) {
      all = false;
      continue;
    }
    if (hi <= lo) continue;  // empty: nothing to read, nothing missed
    const int64_t from = std::max(lo, hi - per_partition);
    if (from >= hi) continue;
    ranges[p] = Range{hi, from == 0, -1};
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = from;
  }
  rd_kafka_metadata_destroy(md);
  if (!ranges.empty()) rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  return all;
}

}  // namespace

RecentEvents read_recent_events(const common::KafkaSettings& s, const std::string& topic,
                                int64_t per_partition, std::chrono::milliseconds timeout) {
  RecentEvents out;
  out.complete_since_unix_nanos = kUnknown;
  const auto log = common::logger("execute");
  if (per_partition <= 0) {
    out.complete = true;
    return out;
  }
  Handle h{make_reader(s)};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::map<int32_t, Range> ranges;
  if (!assign_tails(h.rk, topic, per_partition, static_cast<int>(timeout.count()), ranges)) {
    log->warn("cannot read the partitions of {}; recalling nothing of the previous run", topic);
    return out;
  }
  std::map<int32_t, Range> pending = ranges;
  while (!pending.empty() && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(h.rk, 100);
    if (!m) continue;
    if (!m->err) {
      v1::ActionEvent e;
      if (m->payload && e.ParseFromArray(m->payload, static_cast<int>(m->len))) {
        Range& r = ranges[m->partition];
        if (r.first_at < 0) r.first_at = e.at_unix_nanos();
        out.events.push_back(std::move(e));
      } else {
        ++out.unreadable;
      }
      auto it = pending.find(m->partition);
      if (it != pending.end() && m->offset + 1 >= it->second.end) pending.erase(it);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(h.rk);
  out.complete = pending.empty();
  if (!out.complete) {
    log->warn("reading back {} timed out ({} partition(s) incomplete); recalled what was read",
              topic, pending.size());
    return out;
  }
  out.complete_since_unix_nanos = 0;
  for (const auto& [p, r] : ranges)
    if (!r.from_zero)
      out.complete_since_unix_nanos =
          std::max(out.complete_since_unix_nanos, r.first_at < 0 ? kUnknown : r.first_at);
  log->info("read back {} recent event(s) from {} ({} unreadable)", out.events.size(), topic,
            out.unreadable);
  return out;
}

}  // namespace immunizer::execute
