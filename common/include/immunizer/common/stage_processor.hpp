// The processor of a pipeline stage as the stage runtime (stage.hpp) drives it: a stream
// Processor plus the steps around the stream loop (restore, start, stop), and
// SnapshottingProcessor, the base of the stages whose learned state lives on the compacted
// models topic (monitor, analyze): it owns the snapshot rounds (tick, drain), restoring and
// the gauges refreshed after them, so a stage only says how one key's state is read and
// taken back. Called from the stream loop's thread only, like Processor (start() and stop()
// from the thread that runs the loop, before and after it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/snapshots.hpp"
#include "immunizer/common/stream_loop.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::common {

struct ServiceContext;

// What a stage keeps on the models topic: the snapshot kind ("monitor", "analyze",
// "execute"; empty: none; a literal) and the format version of the state bytes it writes.
struct SnapshotSpec {
  std::string_view kind;
  uint32_t format = 0;
};

class StageProcessor : public Processor {
 public:
  // Start-up, in this order (each only when the stage has a snapshot kind): restore() with
  // the latest snapshot of every key, returning how many were usable; set_snapshot_producer()
  // with the producer for writes that are not part of a batch (snapshots, state). Then
  // start() (servers, pollers, extra producers); then the stream loop (process, tick, drain);
  // then stop(out) once the loop has drained and flushed `out`.
  virtual size_t restore(const std::map<std::string, v1::ModelSnapshot>& snaps) { return 0; }
  virtual void set_snapshot_producer(Producer* p) {}
  virtual void start(ServiceContext& ctx) {}
  virtual void stop(Producer& out) {}
};

class SnapshottingProcessor : public StageProcessor {
 public:
  // Snapshots of `spec` to `topic`, of the keys mark()ed, every `interval_ms` and at drain().
  SnapshottingProcessor(SnapshotSpec spec, std::string topic, int64_t interval_ms,
                        const Clock& clock);
  // A snapshot round when the interval has passed (then update_gauges()).
  void tick(Producer& out) override;
  // The last round, waiting (bounded) for the snapshot producer's acknowledgements.
  void drain(Producer& out) override;
  // restore_key() for every snapshot of the spec's format, except a key this processor
  // changed after the snapshot was taken (its own state is newer: a restore after a
  // rebalance); one of another format or whose restore_key() throws is skipped with a
  // warning naming the key. Then update_gauges(). Returns the keys restored.
  size_t restore(const std::map<std::string, v1::ModelSnapshot>& snaps) override;
  // Snapshots go to this producer (best effort, never part of a batch's commit); default: the
  // loop's output producer.
  void set_snapshot_producer(Producer* p) override { snapshots_.set_producer(p); }

 protected:
  // The key's state changed: it goes into the next round.
  void mark(const std::string& model_key) {
    snapshots_.mark(model_key);
    changed_at_[model_key] = clock_.now_unix_nanos();
  }
  // The state of a key (bytes, records seen), or nullopt to skip it.
  virtual std::optional<std::pair<std::string, uint64_t>> state_of(const std::string& key) = 0;
  // Takes back one key's state bytes; throws when they cannot be used.
  virtual void restore_key(const std::string& key, const std::string& state) = 0;
  // After every snapshot round and after restoring.
  virtual void update_gauges() {}

 private:
  SnapshotSpec spec_;
  const Clock& clock_;
  SnapshotWriter snapshots_;
  std::unordered_map<std::string, int64_t> changed_at_;  // key -> last mark() (unix ns)
};

}  // namespace immunizer::common
