// Private state of a Sensor, shared by sensor.cpp (producer thread) and call_scope.cpp
// (the caller side).
#pragma once

#include <librdkafka/rdkafka.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <pthread.h>
#include <time.h>

#include "immunizer/sensor/sensor.hpp"
#include "mpmc_ring.hpp"

namespace immunizer::sensor {

namespace detail {
// One encoded record handed from a caller to the producer thread: one allocation holding
// the key then the payload.
struct Record {
  uint32_t key_len;
  uint32_t payload_len;
  uint32_t accounted;  // bytes charged to the in-flight budget
  uint32_t capacity;   // bytes allocated after the header (blocks are recycled)
  char* key() { return reinterpret_cast<char*>(this + 1); }
  char* payload() { return key() + key_len; }
};

struct alignas(64) PaddedCounter {
  std::atomic<uint64_t> v{0};
};

// A counter striped over cache lines so that threads recording at once do not fight over
// one line; each thread adds to its own stripe, readers sum.
struct StripedCounter {
  static constexpr size_t kStripes = 16;
  static constexpr size_t kProducerStripe = kStripes - 1;  // the producer thread's own
  PaddedCounter s[kStripes];
  // Callers pass their thread's stripe number; the producer thread passes kProducerStripe.
  void add(size_t stripe, uint64_t n) { s[stripe].v.fetch_add(n, std::memory_order_release); }
  uint64_t sum() const {
    uint64_t n = 0;
    for (const auto& c : s) n += c.v.load(std::memory_order_acquire);
    return n;
  }
};

int64_t steady_ns() noexcept;

// The argument names seen per call name, for the flag checks of sampled-out calls: at most
// kMaxCalls call names and kMaxNamesPerCall names each, in fixed tables of 64-bit hashes,
// with the character classes of each pair's values (about 1.5 MB in all, allocated with the
// sensor; nothing grows). Lock-free: lookups are a load
// per probe, insertions a CAS. Past a bound a name is reported kFull (the caller treats it
// as flagged: an attacker flooding names gets recorded, not hidden). Thread-safe.
class ArgNameTable {
 public:
  static constexpr size_t kMaxCalls = 256;
  static constexpr size_t kMaxNamesPerCall = 64;
  enum class Seen : uint8_t { kKnown, kNew, kFull };
  // `call` and `name` are hashes (any 64-bit values). On kKnown and kNew, *slot is the pair's
  // place (for rare_classes).
  Seen see(uint64_t call, uint64_t name, size_t* slot = nullptr) noexcept;

  // Whether `classes` (a detail::char_classes bit set of one value of the pair at `slot`)
  // holds a class found in under 1 in kRareShare of the pair's learnt values, once it has
  // kLearnValues of them. Values that are not rare are learnt (their classes counted); a rare
  // one is not, so that a flood of one attacker's values cannot make its characters common.
  // Learning stops at kMaxValues values a pair (the counts then stay as they are).
  bool rare_classes(size_t slot, uint8_t classes) noexcept;
  static constexpr uint32_t kLearnValues = 100;
  static constexpr uint32_t kRareShare = 100;
  static constexpr uint32_t kMaxValues = 1u << 30;

 private:
  static constexpr size_t kCallSlots = 2 * kMaxCalls;
  static constexpr size_t kPairSlots = 2 * kMaxCalls * kMaxNamesPerCall;
  static constexpr size_t kMaxProbe = 64;
  std::atomic<uint32_t>* quota(uint64_t call) noexcept;  // names taken by `call`; null: full
  std::atomic<uint64_t> calls_[kCallSlots]{};
  std::atomic<uint32_t> names_[kCallSlots]{};
  std::atomic<uint32_t> call_count_{0};
  std::atomic<uint64_t> pairs_[kPairSlots]{};
  // Per pair: values learnt, and of them those holding each character class (about 1.2 MB).
  std::atomic<uint32_t> values_[kPairSlots]{};
  std::atomic<uint32_t> class_counts_[kPairSlots][kCharClasses]{};
};
}  // namespace detail

struct MetricsBinding;

struct Sensor::Impl {
  explicit Impl(SensorConfig cfg);
  ~Impl();
  void start();
  void create_producer();     // rk_, rkt_ from cfg_; throws on bad configuration
  void recover_from_fatal();  // producer thread
  void stop_and_drain();
  void pump();
  void poll(int timeout_ms);  // producer thread: rd_kafka_poll + give back budget
  void controller_tick(int64_t now);
  void sync_metrics();
  bool flush(std::chrono::milliseconds deadline);
  SensorStats stats() const;
  void count_drop(DropReason r, size_t stripe, uint64_t n = 1) {
    dropped_[static_cast<size_t>(r)].add(stripe, n);
  }
  // Producer thread: batching of records by model key into CallRecordBatch messages.
  struct KeyBatch {
    std::string key;
    std::string payload;  // CallRecordBatch wire bytes
    uint32_t records = 0;
    uint64_t accounted = 0;  // budget bytes of its records
  };
  void batch_record(detail::Record* r);  // appends (and recycles r), producing full batches
  void produce_batch(KeyBatch& b);
  void produce_all_batches();
  void produce_message(std::string_view key, std::string_view value, uint32_t records,
                       uint64_t accounted);
  std::vector<KeyBatch> batches_;
  void release_bytes(uint64_t bytes) {
    inflight_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  uint64_t inflight_records() const;

  SensorConfig cfg_;
  std::string id_prefix_;      // RecordId fields 1,2 (app, instance) pre-encoded
  std::string key_prefix_;     // "<app>|"
  uint32_t instance_tag_ = 0;  // distinguishes sensors in thread-local caches

  // Sampling threshold compared against a 32-bit random number; UINT32_MAX+1 means always.
  std::atomic<uint64_t> sample_threshold_{1ull << 32};
  std::atomic<double> effective_rate_{1.0};
  std::atomic<double> overhead_share_{0.0};

  std::atomic<uint64_t> next_seq_block_{1};
  // recorded = sampled_in + dropped[kSampledOut]; in flight = sampled_in - sent - other drops.
  detail::StripedCounter sampled_in_;
  detail::StripedCounter sent_;
  detail::StripedCounter dropped_[kDropReasons];
  detail::StripedCounter own_ns_;              // estimated caller-side sensor time (extrapolated)
  detail::StripedCounter kept_[kKeepReasons];  // sampled out, recorded as flagged
  detail::ArgNameTable arg_names_;
  struct WatchBinding {
    WatchHook hook;
    const void* context;
  };
  static constexpr size_t kMaxWatchBindings = 16;
  std::atomic<const WatchBinding*> watch_{nullptr};
  std::array<WatchBinding, kMaxWatchBindings> watch_bindings_{};  // never reused: see set_watch
  std::atomic<size_t> watch_bindings_used_{0};
  alignas(64) std::atomic<uint64_t> inflight_bytes_{0};

  detail::MpmcRing<detail::Record> ring_;
  detail::MpmcRing<detail::Record> recycle_;  // sent records' blocks, reused by callers
  // Producer thread only: outcomes of delivery reports, published after each poll with the
  // bytes released first, so that "counted as sent or dropped" implies "budget returned".
  uint64_t pending_release_ = 0;
  uint64_t pending_sent_ = 0;
  uint64_t pending_failed_ = 0;
  uint64_t pending_purged_ = 0;

  std::atomic<bool> fatal_{false};  // set by the error callback
  std::atomic<uint64_t> producer_restarts_{0};
  DropReason purge_reason_ = DropReason::kShutdown;  // how purged messages are counted
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* rkt_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex wake_mu_;
  std::condition_variable drained_cv_;
  std::atomic<int> flush_waiters_{0};

  // CPU clocks of librdkafka's threads for this producer (registered by an interceptor as
  // they start): their time is the sensor's too, and the CPU budget counts it.
  void kafka_thread_started();
  void kafka_thread_exiting();
  int64_t kafka_threads_cpu_ns();
  std::mutex kafka_threads_mu_;
  std::vector<std::pair<pthread_t, clockid_t>> kafka_threads_;
  int64_t kafka_threads_exited_ns_ = 0;

  // Controller state (producer thread only).
  int64_t last_tick_ns_ = 0;
  int64_t last_proc_cpu_ns_ = 0;
  int64_t last_pump_cpu_ns_ = 0;
  int64_t last_kafka_cpu_ns_ = 0;
  uint64_t last_own_ns_ = 0;
  int64_t last_metrics_ns_ = 0;
  int64_t last_recalibration_ns_ = 0;
  double smoothed_share_ = -1;  // EWMA of the measured share; < 0: none yet

  std::mutex metrics_mu_;
  std::unique_ptr<MetricsBinding> metrics_;
};

}  // namespace immunizer::sensor
