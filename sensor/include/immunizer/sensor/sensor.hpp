// The sensor: records instrumented calls (name, context, principal, typed arguments, result
// or error, duration) and produces them to `<prefix>calls` without ever blocking the caller.
// Thread-safety: a Sensor is shared by all threads; a CallScope belongs to the thread that
// created it and must be destroyed there (RAII, stack only). The Sensor must outlive every
// CallScope that references it. Memory is bounded (byte budget); every record that is not
// delivered is counted under exactly one drop reason. Nothing here throws into the caller
// except Sensor::create / SensorConfig::from_env on bad configuration.
//
// Build with IMMUNIZER_SENSOR_DISABLED defined (CMake option of the same name) to compile
// every call away: the same API becomes empty inline no-ops.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "immunizer/sensor/value.hpp"

namespace prometheus {
class Registry;
}

namespace immunizer::sensor {

// Who makes a call. Any field may be empty. The effector accepts it as is.
struct Principal {
  std::string user;
  std::string session;
  std::string ip;
};

// Identity of one record: (app, instance, seq). Unique per Sensor; seq is not contiguous
// across threads (each thread takes seqs in blocks).
struct RecordId {
  std::string_view app;
  std::string_view instance;
  uint64_t seq = 0;
};

// Why a record was not delivered. Exactly one reason per undelivered record.
enum class DropReason : uint8_t {
  kSampledOut = 0,      // per-call sampling (configured rate or lowered by the CPU budget)
  kBudget = 1,          // in-flight byte budget exhausted (e.g. broker slow or down)
  kQueueFull = 2,       // hand-off queue or librdkafka queue full
  kDeliveryFailed = 3,  // librdkafka reported a delivery error (timeout, auth, ...)
  kShutdown = 4,        // still queued when the flush deadline passed at shutdown
};
inline constexpr size_t kDropReasons = 5;
std::string_view to_string(DropReason r) noexcept;

// Why a call that sampling would have left out was recorded anyway (SensorConfig::keep_flagged):
// a cheap check on the call itself flagged it. Exactly one reason per kept record, the first
// found (argument names as they are written, then cuts, then encoding).
enum class KeepReason : uint8_t {
  kNewArgName = 0,      // an argument name not seen before for this call name
  kNameTableFull = 1,   // the bounded table of known names is full for this call (or has no
                        // room for another call name): an unknown name counts as new
  kTooLong = 2,         // a string over max_string_bytes, or the record over max_record_bytes
  kInvalidUtf8 = 3,     // an argument name or a string value (argument, result) not valid UTF-8
  kWatched = 4,         // its principal is under watch (Sensor::set_watch)
  kRareCharacters = 5,  // a string argument holds a character class (quotes, angle brackets,
                        // separators, brackets, escapes, operators, control bytes, spaces
                        // and slashes) found in under 1% of that argument's checked values
};
inline constexpr size_t kKeepReasons = 6;

// Whether a principal is under watch: every call naming it is recorded whatever the sampling
// (after its first alarm, plan and execute push an ACTION_WATCH_PRINCIPAL to the effector).
// Must be cheap, never block, never throw: it runs on the caller's thread, for each call
// sampling leaves out once its principal is given. The effector provides one
// (immunizer::effector::Effector::watch_hook, `context` the Effector); the two agents share
// only this signature.
using WatchHook = bool (*)(const void* context, std::string_view user, std::string_view session,
                           std::string_view ip) noexcept;
std::string_view to_string(KeepReason r) noexcept;

struct SensorConfig {
  std::string app = "app";  // application name: first part of the model key
  std::string instance;     // empty: "<hostname>-<pid>"
  std::string bootstrap = "127.0.0.1:9092";
  std::string topic_prefix = "immunizer.";
  bool enabled = true;             // runtime switch (Sensor::set_enabled flips it later)
  double sample_rate = 1.0;        // fraction of calls recorded, [0, 1]
  double cpu_budget = 0.02;        // max share of process CPU spent in the sensor (as
                                   // measured: callers, its thread, librdkafka's);
                                   // <= 0 or >= 1 disables the controller
  double min_sample_rate = 0.001;  // the CPU-budget controller never goes below this
  // A call that sampling leaves out is still encoded and checked (argument names against the
  // names seen for that call name, strings against max_string_bytes, UTF-8), and recorded
  // when the check flags it (KeepReason). Costs the encoding of sampled-out calls (the CPU
  // budget measures it); false: sampled-out calls cost only the sampling decision.
  bool keep_flagged = true;
  size_t max_inflight_bytes = 32u << 20;  // records encoded but not yet acknowledged
  size_t queue_capacity = 65536;          // hand-off ring (records), rounded up to a power of 2
  // librdkafka message.timeout.ms: longer than a broker outage the pipeline rides out (30 s,
  // issue 11) plus the 10 s request timeout; memory is bounded by max_inflight_bytes meanwhile.
  int delivery_timeout_ms = 120000;
  int linger_ms = 50;  // librdkafka linger.ms (records reach Kafka at most this much later)
  size_t max_batch_records = 256;       // records of one model key per Kafka message
                                        // (CallRecordBatch); 1: one CallRecord per message
  size_t max_batch_bytes = 256u << 10;  // and at most this many bytes per message
  // Size caps, so that an oversized call is still recorded, cut rather than lost: a string
  // (argument value, name, principal, label, call name) longer than max_string_bytes keeps
  // its first and last max_string_bytes / 2 bytes and is flagged with its original length;
  // once a record is past max_record_bytes, further arguments, list items and map entries
  // are left out and the record flagged (the result is always kept; a record may exceed the
  // cap by about two strings). max_record_bytes is at most max_batch_bytes (one record per message
  // fits).
  size_t max_string_bytes = 4096;
  size_t max_record_bytes = 64u << 10;
  bool idempotence = true;                                 // enable.idempotence (implies acks=all)
  std::string compression = "lz4";                         // compression.type
  std::chrono::milliseconds shutdown_flush_timeout{2000};  // flush budget in ~Sensor
  // Security and anything else, passed to librdkafka verbatim (e.g. "security.protocol",
  // "sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location").
  std::map<std::string, std::string> kafka_properties;

  // Reads IMMUNIZER_* variables over the defaults (see docs/sensor.md); throws
  // std::invalid_argument naming the variable on a bad value.
  static SensorConfig from_env();
};

struct SensorStats {
  uint64_t recorded = 0;  // calls completed while enabled (sampled in or out)
  uint64_t sent = 0;      // acknowledged by the broker
  std::array<uint64_t, kDropReasons> dropped{};  // indexed by DropReason
  uint64_t inflight = 0;                         // recorded, neither sent nor dropped yet
  uint64_t inflight_bytes = 0;
  double sample_rate = 1.0;        // current effective rate (configured x CPU budget)
  double overhead_share = 0;       // last measured share of process CPU spent in the sensor
  uint64_t producer_restarts = 0;  // Kafka producers replaced after a fatal error
  // Sampled out but recorded anyway, by KeepReason (counted in recorded, not in dropped).
  std::array<uint64_t, kKeepReasons> kept{};
  uint64_t kept_by(KeepReason r) const { return kept[static_cast<size_t>(r)]; }
  uint64_t dropped_total() const {
    uint64_t n = 0;
    for (auto d : dropped) n += d;
    return n;
  }
  uint64_t dropped_by(DropReason r) const { return dropped[static_cast<size_t>(r)]; }
};

class CallScope;

namespace detail {
int64_t steady_ns() noexcept;  // CLOCK_MONOTONIC in nanoseconds
// A cheap monotonic tick counter (TSC on x86; nanoseconds elsewhere), converted to time by
// the sensor. Used for call durations and for timing the sensor's own cost.
inline int64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return static_cast<int64_t>(__builtin_ia32_rdtsc());
#else
  return steady_ns();
#endif
}
}  // namespace detail

#ifndef IMMUNIZER_SENSOR_DISABLED

class Sensor {
 public:
  // Starts the background producer thread. Throws std::invalid_argument / runtime_error on
  // bad configuration (never because the broker is unreachable: that only drops records).
  static std::shared_ptr<Sensor> create(SensorConfig config);
  // Flushes for at most config.shutdown_flush_timeout, then stops; leftovers count as
  // DropReason::kShutdown.
  ~Sensor();
  Sensor(const Sensor&) = delete;
  Sensor& operator=(const Sensor&) = delete;

  // Runtime switch: a disabled sensor costs one relaxed load per CallScope.
  void set_enabled(bool on) noexcept { enabled_.store(on, std::memory_order_relaxed); }
  bool enabled() const noexcept { return enabled_.load(std::memory_order_relaxed); }

  // Waits until every record so far is sent or dropped, at most `deadline`. True if none
  // is left in flight.
  bool flush(std::chrono::milliseconds deadline);
  SensorStats stats() const;
  // Exports immunizer_sensor_records_sent_total{app}, immunizer_sensor_records_dropped_total
  // {app,reason}, immunizer_sensor_records_recorded_total{app}, immunizer_sensor_inflight_bytes
  // {app}, immunizer_sensor_sample_rate{app} and immunizer_sensor_sampled_kept_total{app,reason}
  // (KeepReason); refreshed every 500 ms and by stats()/flush().
  void bind_metrics(prometheus::Registry& registry);
  const SensorConfig& config() const noexcept;
  // Consults `hook(context, user, session, ip)` for calls sampling leaves out (with
  // keep_flagged on): a watched principal's calls are recorded (KeepReason::kWatched).
  // nullptr: none. Meant for setup; `context` must outlive the sensor, or at least every
  // call recorded until set_watch is called again (earlier bindings are kept until ~Sensor,
  // so a call that read one concurrently stays safe; at most 16 bindings, further calls
  // are ignored and return false).
  bool set_watch(WatchHook hook, const void* context) noexcept;

  struct Impl;

 private:
  explicit Sensor(std::unique_ptr<Impl> impl);
  friend class CallScope;
  friend struct SensorTestAccess;  // tests only (sensor/tests)
  std::atomic<bool> enabled_{true};
  std::unique_ptr<Impl> impl_;
};

// One instrumented call. Construct at the start of the call, destroy at the end (the
// destructor measures the duration and enqueues the record without blocking). `call` is
// copied. The context is the chain of enclosing CallScopes on this thread.
class CallScope {
 public:
  CallScope(Sensor& sensor, std::string_view call) noexcept {
    if (sensor.enabled_.load(std::memory_order_relaxed)) begin(sensor, call);
  }
  ~CallScope() {
    if (state_ != kOff) end();
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

  // True when this call is being recorded (enabled and sampled in, or sampled out but kept
  // for checking: SensorConfig::keep_flagged): skip costly argument preparation when false.
  bool recording() const noexcept { return state_ == kRecording; }

  CallScope& principal(const Principal& p) noexcept {
    if (state_ == kRecording) put_principal(p.user, p.session, p.ip);
    return *this;
  }
  CallScope& principal(std::string_view user, std::string_view session = {},
                       std::string_view ip = {}) noexcept {
    if (state_ == kRecording) put_principal(user, session, ip);
    return *this;
  }
  template <class T>
  CallScope& arg(std::string_view name, const T& value) noexcept {
    return arg_with(name, [&value](ValueWriter& w) { w.value(value); });
  }
  // Writes a value with a lambda: arg_with("cart", [&](ValueWriter& w) { ... }).
  template <class F>
  CallScope& arg_with(std::string_view name, F&& write) noexcept {
    if (state_ == kRecording) {
      if (buf_->size >= buf_->max_record) [[unlikely]]
        return skip_part();
      const int64_t t0 = measured_ ? detail::ticks() : 0;
      const size_t at = detail::open_len(*buf_, 6);
      detail::put_capped_string_field(*buf_, 1, name);
      buf_->classes = 0;
      ValueWriter w(*buf_, 2);
      write(w);
      detail::close_len(*buf_, at);
      if (call_hash_) note_arg_name(name);
      if (measured_) [[unlikely]]
        own_ticks_ += detail::ticks() - t0;
    }
    return *this;
  }
  CallScope& label(std::string_view key, std::string_view value) noexcept {
    if (state_ == kRecording) put_label(key, value);
    return *this;
  }
  template <class T>
  void result(const T& value) noexcept {
    if (state_ == kRecording) {
      // Written even past the record cap (the outcome matters most): a string is capped, a
      // list or map past the cap stays empty.
      const int64_t t0 = measured_ ? detail::ticks() : 0;
      ValueWriter(*buf_, 7).value(value);
      if (measured_) [[unlikely]]
        own_ticks_ += detail::ticks() - t0;
    }
  }
  void error(std::string_view type, std::string_view message) noexcept {
    if (state_ == kRecording) put_error(type, message);
  }
  // (app, instance, seq) of this record; seq 0 when it is not recorded (disabled or
  // sampled out and, so far, not flagged: a call sampling left out may still be kept by
  // what comes later, e.g. a new argument name).
  RecordId id() const noexcept;

 private:
  enum : uint8_t { kOff = 0, kContextOnly = 1, kRecording = 2 };
  void begin(Sensor& sensor, std::string_view call) noexcept;
  void end() noexcept;
  void put_principal(std::string_view u, std::string_view s, std::string_view i) noexcept;
  void put_label(std::string_view k, std::string_view v) noexcept;
  void put_error(std::string_view type, std::string_view message) noexcept;
  // A {1: a, 2: b} message of two capped strings as CallRecord field `field` (label, error).
  void put_string_pair(uint32_t field, std::string_view a, std::string_view b) noexcept;
  // The record is past its cap (SensorConfig::max_record_bytes): the argument is left out,
  // counted, and the record marked truncated. (Lists and maps being written stop
  // taking items at the cap too, so a record exceeds the cap by at most one string.)
  CallScope& skip_part() noexcept;
  // Learns `name` for this call name and, for a call sampling left out, flags it if new or
  // if its value holds a character class rare for it (ArgNameTable::rare_classes).
  void note_arg_name(std::string_view name) noexcept;

  Sensor::Impl* impl_ = nullptr;
  detail::Buf* buf_ = nullptr;
  uint64_t seq_ = 0;
  int64_t start_ticks_ = 0;
  uint32_t ctx_len_ = 0;  // length of the thread's context string before this call
  uint8_t state_ = kOff;
  bool measured_ = false;   // this call's own cost is being timed (CPU budget)
  bool tentative_ = false;  // sampled out, encoded for the flag checks: kept only if flagged
  uint8_t keep_ = 0;        // 1 + KeepReason once flagged; 0: not flagged
  uint64_t call_hash_ = 0;  // hash of the call name (odd) when checks are on; 0: off
  int64_t own_ticks_ = 0;
};

#else  // IMMUNIZER_SENSOR_DISABLED: the same API, compiled away.

class Sensor {
 public:
  static std::shared_ptr<Sensor> create(SensorConfig) {
    return std::shared_ptr<Sensor>(new Sensor);
  }
  void set_enabled(bool) noexcept {}
  bool enabled() const noexcept { return false; }
  bool flush(std::chrono::milliseconds) { return true; }
  SensorStats stats() const { return {}; }
  void bind_metrics(prometheus::Registry&) {}
};

class CallScope {
 public:
  CallScope(Sensor&, std::string_view) noexcept {}
  bool recording() const noexcept { return false; }
  CallScope& principal(const Principal&) noexcept { return *this; }
  CallScope& principal(std::string_view, std::string_view = {}, std::string_view = {}) noexcept {
    return *this;
  }
  template <class T>
  CallScope& arg(std::string_view, const T&) noexcept {
    return *this;
  }
  template <class F>
  CallScope& arg_with(std::string_view, F&&) noexcept {
    return *this;
  }
  CallScope& label(std::string_view, std::string_view) noexcept { return *this; }
  template <class T>
  void result(const T&) noexcept {}
  void error(std::string_view, std::string_view) noexcept {}
  RecordId id() const noexcept { return {}; }
};

#endif

}  // namespace immunizer::sensor
