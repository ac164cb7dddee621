#include "immunizer/common/snapshots.hpp"

#include <librdkafka/rdkafka.h>

#include <stdexcept>

#include "immunizer/common/logging.hpp"

namespace immunizer::common {

std::map<std::string, v1::ModelSnapshot> read_snapshots(const KafkaSettings& s,
                                                        const std::string& topic,
                                                        const std::string& kind,
                                                        std::chrono::milliseconds timeout) {
  std::map<std::string, v1::ModelSnapshot> out;
  // group.id: required by librdkafka; never committed.
  rd_kafka_t* rk = make_kafka_reader(
      s, {{"group.id", "immunizer-snapshot-reader"}, {"enable.auto.commit", "false"}},
      "snapshot reader");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const int tmo = static_cast<int>(timeout.count());

  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (rd_kafka_metadata(rk, 0, rkt, &md, tmo) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt < 1) {
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    logger("snapshots")->warn("cannot read metadata of {}; starting without snapshots", topic);
    return out;
  }
  std::map<int32_t, int64_t> end;  // partition -> high watermark
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
  for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
    const int32_t p = md->topics[0].partitions[i].id;
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, tmo) == 0 && hi > lo) {
      end[p] = hi;
      rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
  }
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  if (!end.empty()) rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);

  size_t read = 0;
  while (!end.empty() && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (!m->err) {
      ++read;
      v1::ModelSnapshot snap;
      if (m->payload && snap.ParseFromArray(m->payload, static_cast<int>(m->len)) &&
          snap.kind() == kind)
        out[snap.model_key()] = std::move(snap);
      auto it = end.find(m->partition);
      if (it != end.end() && m->offset + 1 >= it->second) end.erase(it);
    }
    rd_kafka_message_destroy(m);
  }
  if (!end.empty())
    logger("snapshots")
        ->warn("snapshot read of {} timed out; {} partitions incomplete", topic, end.size());
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  logger("snapshots")
      ->info("read {} messages from {}: {} {} snapshots", read, topic, out.size(), kind);
  return out;
}

void SnapshotWriter::write(Producer& data_out, const StateFn& state) {
  Producer& out = own_ ? *own_ : data_out;
  for (const auto& key : changed_) {
    auto st = state(key);
    if (!st) continue;
    v1::ModelSnapshot snap;
    snap.set_model_key(key);
    snap.set_kind(kind_);
    snap.set_format_version(format_);
    snap.set_state(std::move(st->first));
    snap.set_taken_unix_nanos(clock_.now_unix_nanos());
    snap.set_records_seen(st->second);
    out.produce(topic_, snapshot_key(kind_, key), snap.SerializeAsString());
  }
  changed_.clear();
}

bool SnapshotWriter::maybe_write(Producer& data_out, const StateFn& state) {
  const int64_t now = clock_.now_unix_nanos();
  if (last_ns_ == 0) last_ns_ = now;
  if (now - last_ns_ < interval_ns_) return false;
  write(data_out, state);
  last_ns_ = now;
  return true;
}

void SnapshotWriter::write_final(Producer& data_out, const StateFn& state) {
  write(data_out, state);
  if (own_ && !own_->flush(std::chrono::seconds(10)).ok())
    logger(kind_)->warn("final {} snapshots not all acknowledged", kind_);
}

}  // namespace immunizer::common
