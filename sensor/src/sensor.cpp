// Producer side of the sensor: one background thread drains the hand-off ring into
// librdkafka (never blocking: RD_KAFKA_MSG_F_COPY, no F_BLOCK), serves delivery reports,
// runs the CPU-budget controller and refreshes metrics.
#ifndef IMMUNIZER_SENSOR_DISABLED

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <time.h>
#include <unistd.h>
#include "immunizer/agent/logging.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include "sensor_impl.hpp"
#include "tick_clock.hpp"

namespace immunizer::sensor {
namespace {

std::atomic<uint32_t> g_next_instance_tag{1};

std::shared_ptr<spdlog::logger> logger() {
  static const std::shared_ptr<spdlog::logger> log =
      agent::make_logger("immunizer.sensor", spdlog::level::warn);
  return log;
}

// At most one line per `period` for a hot error path.
class Throttle {
 public:
  bool allow(int64_t now, int64_t period_ns) {
    int64_t last = last_.load(std::memory_order_relaxed);
    if (now - last < period_ns) return false;
    return last_.compare_exchange_strong(last, now, std::memory_order_relaxed);
  }

 private:
  std::atomic<int64_t> last_{INT64_MIN / 2};
};
Throttle g_error_throttle, g_log_throttle;

int64_t cpu_ns(clockid_t clk) {
  timespec ts;
  if (clock_gettime(clk, &ts) != 0) return 0;
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string default_instance() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  return std::string(host) + "-" + std::to_string(getpid());
}

void set_conf(rd_kafka_conf_t* conf, const std::string& k, const std::string& v) {
  char err[512];
  if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    throw std::invalid_argument("sensor: kafka property '" + k + "': " + err);
  }
}

// A message's opaque: its records (high 24 bits) and budget bytes (low 40 bits).
constexpr unsigned kOpaqueBytesBits = 40;
void* message_opaque(uint32_t records, uint64_t accounted) {
  return reinterpret_cast<void*>(
      static_cast<uintptr_t>((static_cast<uint64_t>(records) << kOpaqueBytesBits) | accounted));
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* im = static_cast<Sensor::Impl*>(opaque);
  const auto tag = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(m->_private));
  const uint64_t records = tag >> kOpaqueBytesBits;
  if ((m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) &&
      im->purge_reason_ == DropReason::kShutdown) {
    im->pending_purged_ += records;  // purged at stop: counted as shutdown
  } else if (m->err) {
    im->pending_failed_ += records;
    const int64_t now = detail::steady_ns();
    if (g_error_throttle.allow(now, 10'000'000'000)) {
      logger()->warn(
          "sensor: delivery failed: {} (further errors in the next 10 s are counted only)",
          rd_kafka_err2str(m->err));
    }
  } else {
    im->pending_sent_ += records;
  }
  // Given back in one step after the poll (keeps the callers' cache line quiet).
  im->pending_release_ += tag & ((uint64_t{1} << kOpaqueBytesBits) - 1);
}

void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  if (err == RD_KAFKA_RESP_ERR__FATAL)
    static_cast<Sensor::Impl*>(opaque)->fatal_.store(true, std::memory_order_relaxed);
  if (g_log_throttle.allow(detail::steady_ns(), 10'000'000'000))
    logger()->warn("sensor: kafka: {} ({})", reason,
                   rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)));
}

void on_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 3 && g_log_throttle.allow(detail::steady_ns(), 10'000'000'000))
    logger()->warn("sensor: kafka {}: {}", fac, buf);
}

rd_kafka_resp_err_t on_kafka_thread_start(rd_kafka_t*, rd_kafka_thread_type_t, const char*,
                                          void* opaque) {
  static_cast<Sensor::Impl*>(opaque)->kafka_thread_started();
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}
rd_kafka_resp_err_t on_kafka_thread_exit(rd_kafka_t*, rd_kafka_thread_type_t, const char*,
                                         void* opaque) {
  static_cast<Sensor::Impl*>(opaque)->kafka_thread_exiting();
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}
rd_kafka_resp_err_t on_kafka_new(rd_kafka_t* rk, const rd_kafka_conf_t*, void* opaque, char*,
                                 size_t) {
  rd_kafka_interceptor_add_on_thread_start(rk, "immunizer-sensor", on_kafka_thread_start, opaque);
  rd_kafka_interceptor_add_on_thread_exit(rk, "immunizer-sensor", on_kafka_thread_exit, opaque);
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

// Registers counter family `name` {app, reason} and one child per reason (0..N) into `into`.
template <typename Reason, size_t N>
void by_reason(prometheus::Registry& registry, const char* name, const char* help,
               const std::string& app, std::array<prometheus::Counter*, N>& into) {
  auto& family = prometheus::BuildCounter().Name(name).Help(help).Register(registry);
  for (size_t i = 0; i < N; ++i)
    into[i] =
        &family.Add({{"app", app}, {"reason", std::string(to_string(static_cast<Reason>(i)))}});
}

}  // namespace

void Sensor::Impl::kafka_thread_started() {
  clockid_t cid;
  if (pthread_getcpuclockid(pthread_self(), &cid) != 0) return;
  std::lock_guard lk(kafka_threads_mu_);
  kafka_threads_.emplace_back(pthread_self(), cid);
}

void Sensor::Impl::kafka_thread_exiting() {
  const int64_t spent = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
  std::lock_guard lk(kafka_threads_mu_);
  for (size_t i = 0; i < kafka_threads_.size(); ++i) {
    if (pthread_equal(kafka_threads_[i].first, pthread_self())) {
      kafka_threads_exited_ns_ += spent;
      kafka_threads_[i] = kafka_threads_.back();
      kafka_threads_.pop_back();
      return;
    }
  }
}

int64_t Sensor::Impl::kafka_threads_cpu_ns() {
  std::lock_guard lk(kafka_threads_mu_);
  int64_t total = kafka_threads_exited_ns_;
  for (const auto& [thread, cid] : kafka_threads_) total += cpu_ns(cid);
  return total;
}

struct MetricsBinding {
  prometheus::Counter* sent;
  prometheus::Counter* recorded;
  std::array<prometheus::Counter*, kDropReasons> dropped;
  std::array<prometheus::Counter*, kKeepReasons> kept;
  prometheus::Gauge* inflight_bytes;
  prometheus::Gauge* sample_rate;
  prometheus::Gauge* overhead_share;
  uint64_t last_sent = 0, last_recorded = 0;
  std::array<uint64_t, kDropReasons> last_dropped{};
  std::array<uint64_t, kKeepReasons> last_kept{};
};

Sensor::Impl::Impl(SensorConfig cfg)
    : cfg_(std::move(cfg)),
      ring_(std::max<size_t>(cfg_.queue_capacity, 16)),
      recycle_(std::min<size_t>(std::max<size_t>(cfg_.queue_capacity, 16), 4096)) {
  if (cfg_.app.empty()) throw std::invalid_argument("sensor: app must not be empty");
  if (cfg_.app.find('|') != std::string::npos)
    throw std::invalid_argument("sensor: app must not contain '|'");
  if (cfg_.instance.empty()) cfg_.instance = default_instance();
  if (!(cfg_.sample_rate >= 0.0 && cfg_.sample_rate <= 1.0))
    throw std::invalid_argument("sensor: sample_rate must be in [0, 1]");
  if (!(cfg_.min_sample_rate >= 0.0 && cfg_.min_sample_rate <= 1.0))
    throw std::invalid_argument("sensor: min_sample_rate must be in [0, 1]");
  if (cfg_.max_inflight_bytes < 4096)
    throw std::invalid_argument("sensor: max_inflight_bytes must be >= 4096");
  if (cfg_.max_batch_records < 1)
    throw std::invalid_argument("sensor: max_batch_records must be >= 1");
  if (cfg_.max_batch_bytes < 1024)
    throw std::invalid_argument("sensor: max_batch_bytes must be >= 1024");
  if (cfg_.max_string_bytes < 16)
    throw std::invalid_argument("sensor: max_string_bytes must be >= 16");
  if (cfg_.max_record_bytes < 1024 || cfg_.max_record_bytes > cfg_.max_batch_bytes)
    throw std::invalid_argument("sensor: max_record_bytes must be in [1024, max_batch_bytes]");
  if (cfg_.max_string_bytes > cfg_.max_record_bytes)
    throw std::invalid_argument("sensor: max_string_bytes must be <= max_record_bytes");
  if (cfg_.delivery_timeout_ms <= 0)
    throw std::invalid_argument("sensor: delivery_timeout_ms must be > 0");
  instance_tag_ = g_next_instance_tag.fetch_add(1);

  // RecordId.app (1) and RecordId.instance (2), then seq (3) is appended per record.
  detail::Buf b;
  detail::put_string_field(b, 1, cfg_.app);
  detail::put_string_field(b, 2, cfg_.instance);
  id_prefix_.assign(b.data, b.size);
  key_prefix_ = cfg_.app + "|";

  detail::TickClock::instance();  // calibrates once per process (~2 ms), before any call
  effective_rate_.store(cfg_.sample_rate);
  sample_threshold_.store(static_cast<uint64_t>(cfg_.sample_rate * 4294967296.0));
}

void Sensor::Impl::start() {
  create_producer();
  last_tick_ns_ = detail::steady_ns();
  last_proc_cpu_ns_ = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
  last_kafka_cpu_ns_ = kafka_threads_cpu_ns();
  thread_ = std::thread([this] { pump(); });
}

void Sensor::Impl::create_producer() {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  set_conf(conf, "bootstrap.servers", cfg_.bootstrap);
  set_conf(conf, "client.id", "immunizer-sensor-" + cfg_.app);
  set_conf(conf, "enable.idempotence", cfg_.idempotence ? "true" : "false");
  if (!cfg_.idempotence) set_conf(conf, "acks", "all");
  set_conf(conf, "linger.ms", std::to_string(cfg_.linger_ms));
  set_conf(conf, "message.timeout.ms", std::to_string(cfg_.delivery_timeout_ms));
  set_conf(conf, "compression.type", cfg_.compression);
  // Reconnect within 2 s of the broker coming back (librdkafka's default ceiling is 10 s).
  set_conf(conf, "reconnect.backoff.max.ms", "2000");
  // A produce request the broker never answers (a connection gone dead without a reset) is
  // retried on a new connection after 10 s instead of librdkafka's 30 s, which equals the default
  // delivery timeout: the records would time out with it.
  set_conf(conf, "request.timeout.ms", "10000");
  set_conf(conf, "socket.timeout.ms", "10000");
  // librdkafka's own limits sit above ours so that the byte budget decides first and
  // produce() returns QUEUE_FULL instead of blocking (we never pass RD_KAFKA_MSG_F_BLOCK).
  const size_t kbytes = std::min<size_t>(cfg_.max_inflight_bytes / 1024 + 1024, 2097151);
  set_conf(conf, "queue.buffering.max.kbytes", std::to_string(kbytes));
  set_conf(
      conf, "queue.buffering.max.messages",
      std::to_string(std::min<size_t>(std::max<size_t>(ring_.capacity() * 4, 100000), 10000000)));
  for (const auto& [k, v] : cfg_.kafka_properties) set_conf(conf, k, v);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_log_cb(conf, on_log);
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_interceptor_add_on_new(conf, "immunizer-sensor", on_kafka_new, this);

  char err[512];
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk_) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("sensor: cannot create kafka producer: ") + err);
  }
  rkt_ = rd_kafka_topic_new(rk_, (cfg_.topic_prefix + "calls").c_str(), nullptr);
  if (!rkt_) {
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
    throw std::runtime_error("sensor: cannot create topic handle");
  }
}

// An idempotent producer can fail fatally (e.g. the broker lost its state); it then rejects
// everything. Replace it: what it still held is counted as delivery failures.
void Sensor::Impl::recover_from_fatal() {
  char why[512] = {0};
  rd_kafka_fatal_error(rk_, why, sizeof why);
  logger()->error("sensor: kafka producer failed fatally ({}); replacing it", why);
  purge_reason_ = DropReason::kDeliveryFailed;
  rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  const int64_t until = detail::steady_ns() + 1'000'000'000;
  while (rd_kafka_outq_len(rk_) > 0 && detail::steady_ns() < until) poll(10);
  poll(0);
  purge_reason_ = DropReason::kShutdown;
  rd_kafka_topic_destroy(rkt_);
  rd_kafka_destroy(rk_);
  rkt_ = nullptr;
  rk_ = nullptr;
  fatal_.store(false, std::memory_order_relaxed);
  try {
    create_producer();
    producer_restarts_.fetch_add(1, std::memory_order_relaxed);
  } catch (const std::exception& e) {
    // Same configuration as at start, so this should not happen; keep trying later.
    logger()->error("sensor: cannot recreate the kafka producer: {}", e.what());
    fatal_.store(true, std::memory_order_relaxed);
  }
}

void Sensor::Impl::poll(int timeout_ms) {
  rd_kafka_poll(rk_, timeout_ms);
  if (pending_release_) {
    release_bytes(pending_release_);
    pending_release_ = 0;
  }
  constexpr size_t kP = detail::StripedCounter::kProducerStripe;
  if (pending_sent_) sent_.add(kP, std::exchange(pending_sent_, 0));
  if (pending_failed_)
    dropped_[static_cast<size_t>(DropReason::kDeliveryFailed)].add(
        kP, std::exchange(pending_failed_, 0));
  if (pending_purged_)
    dropped_[static_cast<size_t>(DropReason::kShutdown)].add(kP, std::exchange(pending_purged_, 0));
}

void Sensor::Impl::pump() {
  pthread_setname_np(pthread_self(), "imm-sensor");  // <= 15 chars
  last_pump_cpu_ns_ = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
  while (!stop_.load(std::memory_order_acquire)) {
    if (fatal_.load(std::memory_order_relaxed)) [[unlikely]] {
      if (rk_) {
        recover_from_fatal();
      } else {
        try {
          create_producer();
          fatal_.store(false, std::memory_order_relaxed);
          producer_restarts_.fetch_add(1, std::memory_order_relaxed);
        } catch (...) {
        }
      }
      if (!rk_) {  // no producer for now: the ring fills up and callers count queue_full
        std::unique_lock lk(wake_mu_);
        drained_cv_.wait_for(lk, std::chrono::milliseconds(500));
        continue;
      }
    }
    size_t n = 0;
    while (detail::Record* r = ring_.try_pop()) {
      ++n;
      if (cfg_.max_batch_records > 1) {
        batch_record(r);
      } else {
        produce_message(std::string_view(r->key(), r->key_len),
                        std::string_view(r->payload(), r->payload_len), 1, r->accounted);
        if (!recycle_.try_push(r)) std::free(r);
      }
      if ((n & 1023) == 0) {
        produce_all_batches();
        poll(0);
      }
    }
    produce_all_batches();
    // Someone waits in flush(): send what lingers now rather than after linger.ms. librdkafka
    // ignores linger.ms only while a flush is in progress, so this one lasts a few ms (it
    // serves delivery reports meanwhile, as poll() does).
    if (flush_waiters_.load(std::memory_order_relaxed) > 0) rd_kafka_flush(rk_, 5);
    // Serves delivery reports; doubles as the wait (callers never wake this thread). Waiting
    // a little even while records trickle in lets them accumulate into batches: one wake-up
    // per millisecond instead of a thread spinning on the ring, which on a busy host costs
    // the application more in context switches than the records themselves. A full batch
    // (the ring filling up) goes round again at once.
    const size_t busy_batch = ring_.capacity() / 16;
    const int gather_ms = std::clamp(cfg_.linger_ms, 1, 10);
    poll(n >= busy_batch ? 0 : n > 0 ? gather_ms : 10);
    if (flush_waiters_.load(std::memory_order_relaxed) > 0) drained_cv_.notify_all();
    const int64_t now = detail::steady_ns();
    // The controller looks every 100 ms: a burst of load after an idle spell (when the rate
    // has climbed back to the configured one) is recorded in full for at most that long.
    if (now - last_tick_ns_ >= 100'000'000) controller_tick(now);
    if (now - last_recalibration_ns_ >= 250'000'000) {
      last_recalibration_ns_ = now;
      detail::TickClock::instance().recalibrate();
    }
    if (now - last_metrics_ns_ >= 500'000'000) {
      last_metrics_ns_ = now;
      sync_metrics();
    }
  }
}

void Sensor::Impl::produce_message(std::string_view key, std::string_view value, uint32_t records,
                                   uint64_t accounted) {
  const rd_kafka_resp_err_t e =
      rd_kafka_producev(rk_, RD_KAFKA_V_RKT(rkt_), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_KEY(key.data(), key.size()),
                        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                        RD_KAFKA_V_OPAQUE(message_opaque(records, accounted)), RD_KAFKA_V_END);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    release_bytes(accounted);
    count_drop(
        e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? DropReason::kQueueFull : DropReason::kDeliveryFailed,
        detail::StripedCounter::kProducerStripe, records);
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL &&
        g_error_throttle.allow(detail::steady_ns(), 10'000'000'000))
      logger()->warn("sensor: produce failed: {}", rd_kafka_err2str(e));
  }
}

// Records of one key gathered in this round go out as one CallRecordBatch: batch_format
// first, then each record as field 2 (the record's bytes are already a CallRecord).
void Sensor::Impl::batch_record(detail::Record* r) {
  const std::string_view key(r->key(), r->key_len);
  KeyBatch* b = nullptr;
  KeyBatch* free_slot = nullptr;  // an empty batch to reuse if the key has none
  for (auto& kb : batches_) {
    if (kb.records == 0) {
      if (free_slot == nullptr) free_slot = &kb;
    } else if (kb.key == key) {
      b = &kb;
      break;
    }
  }
  if (b == nullptr) {
    b = free_slot;
    if (b == nullptr) {
      if (batches_.size() >= 64) {  // many keys in one round: send what there is
        produce_all_batches();
        b = &batches_.front();
      } else {
        b = &batches_.emplace_back();
      }
    }
    b->key.assign(key);
  }
  const size_t entry = 1 + detail::varint_size(r->payload_len) + r->payload_len;
  if (b->records > 0 && b->payload.size() + entry > cfg_.max_batch_bytes) {
    produce_batch(*b);
    b->key.assign(key);
  }
  if (b->records == 0) b->payload.assign("\x08\x01", 2);  // batch_format (field 1) = 1
  char hdr[11];
  hdr[0] = detail::tag(2, detail::kLen);  // records (field 2)
  char* end = detail::put_varint(hdr + 1, r->payload_len);
  b->payload.append(hdr, static_cast<size_t>(end - hdr));
  b->payload.append(r->payload(), r->payload_len);
  ++b->records;
  b->accounted += r->accounted;
  if (!recycle_.try_push(r)) std::free(r);
  if (b->records >= cfg_.max_batch_records) produce_batch(*b);
}

void Sensor::Impl::produce_batch(KeyBatch& b) {
  if (b.records == 0) return;
  produce_message(b.key, b.payload, b.records, b.accounted);
  b.records = 0;
  b.accounted = 0;
  b.payload.clear();
}

void Sensor::Impl::produce_all_batches() {
  for (auto& b : batches_) produce_batch(b);
}

// Lowers the sampling rate when the sensor's estimated share of process CPU exceeds the
// budget; raises it back gently when there is room. Sensor time = caller-side time (timed on
// one call in 64, extrapolated) + this thread's CPU time + librdkafka's threads' CPU time.
// The budget is about load: while the process is nearly idle (under 10% of one core over the
// tick) nothing is lowered and the rate climbs back towards the configured one, since a
// sensor's fixed background cost would otherwise look like a large share of almost nothing.
void Sensor::Impl::controller_tick(int64_t now) {
  const int64_t proc = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
  const int64_t pump_cpu = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
  const int64_t kafka_cpu = kafka_threads_cpu_ns();
  const uint64_t own = own_ns_.sum();
  const double d_wall = static_cast<double>(now - last_tick_ns_);
  const double d_proc = static_cast<double>(proc - last_proc_cpu_ns_);
  const double d_own = static_cast<double>(own - last_own_ns_) +
                       static_cast<double>(pump_cpu - last_pump_cpu_ns_) +
                       static_cast<double>(kafka_cpu - last_kafka_cpu_ns_);
  last_tick_ns_ = now;
  last_proc_cpu_ns_ = proc;
  last_pump_cpu_ns_ = pump_cpu;
  last_kafka_cpu_ns_ = kafka_cpu;
  last_own_ns_ = own;
  const double budget = cfg_.cpu_budget;
  double rate = effective_rate_.load(std::memory_order_relaxed);
  if (d_proc < 0.1 * d_wall) {  // nearly idle: nothing to judge, room to record
    overhead_share_.store(0.0, std::memory_order_relaxed);
    smoothed_share_ = -1;
    if (budget <= 0.0 || budget >= 1.0 || rate >= cfg_.sample_rate) return;
    rate = std::min(cfg_.sample_rate, rate * 1.25);
  } else {
    // Smoothed over ticks: one timed call preempted on a busy host is extrapolated 64-fold
    // and would otherwise cut the rate several-fold at once, while raising is gradual.
    const double tick_share = std::min(1.0, d_own / d_proc);
    smoothed_share_ = smoothed_share_ < 0 ? tick_share : 0.7 * smoothed_share_ + 0.3 * tick_share;
    const double share = smoothed_share_;
    overhead_share_.store(share, std::memory_order_relaxed);
    if (budget <= 0.0 || budget >= 1.0) return;
    if (share > budget) {
      rate = std::max(cfg_.min_sample_rate, rate * std::max(0.5, budget / share * 0.9));
    } else if (rate < cfg_.sample_rate && share < budget * 0.7) {
      rate = std::min(cfg_.sample_rate, rate * 1.25);
    } else {
      return;
    }
  }
  effective_rate_.store(rate, std::memory_order_relaxed);
  sample_threshold_.store(static_cast<uint64_t>(rate * 4294967296.0), std::memory_order_relaxed);
}

uint64_t Sensor::Impl::inflight_records() const {
  // Outcomes first, then records: an outcome is always counted after its record, so this
  // never underflows.
  uint64_t done = sent_.sum();
  for (size_t i = 0; i < kDropReasons; ++i)
    if (i != static_cast<size_t>(DropReason::kSampledOut)) done += dropped_[i].sum();
  const uint64_t in = sampled_in_.sum();
  return in > done ? in - done : 0;
}

SensorStats Sensor::Impl::stats() const {
  SensorStats s;
  s.sent = sent_.sum();
  for (size_t i = 0; i < kDropReasons; ++i) s.dropped[i] = dropped_[i].sum();
  const uint64_t in = sampled_in_.sum();
  uint64_t done = s.sent;
  for (size_t i = 0; i < kDropReasons; ++i)
    if (i != static_cast<size_t>(DropReason::kSampledOut)) done += s.dropped[i];
  s.inflight = in > done ? in - done : 0;
  s.recorded = in + s.dropped[static_cast<size_t>(DropReason::kSampledOut)];
  s.inflight_bytes = inflight_bytes_.load(std::memory_order_relaxed);
  s.sample_rate = effective_rate_.load(std::memory_order_relaxed);
  s.overhead_share = overhead_share_.load(std::memory_order_relaxed);
  s.producer_restarts = producer_restarts_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kKeepReasons; ++i) s.kept[i] = kept_[i].sum();
  return s;
}

bool Sensor::Impl::flush(std::chrono::milliseconds deadline) {
  // Delivery reports are served by the producer thread only; here we just wait for it.
  const auto until = std::chrono::steady_clock::now() + deadline;
  flush_waiters_.fetch_add(1, std::memory_order_relaxed);
  {
    std::unique_lock lk(wake_mu_);
    while (inflight_records() != 0 && std::chrono::steady_clock::now() < until)
      drained_cv_.wait_until(
          lk, std::min(until, std::chrono::steady_clock::now() + std::chrono::milliseconds(5)));
  }
  flush_waiters_.fetch_sub(1, std::memory_order_relaxed);
  sync_metrics();
  return inflight_records() == 0;
}

void Sensor::Impl::stop_and_drain() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  thread_.join();
  if (!rk_) {
    while (detail::Record* r = ring_.try_pop()) {
      release_bytes(r->accounted);
      count_drop(DropReason::kShutdown, detail::StripedCounter::kProducerStripe);
      std::free(r);
    }
    return;
  }
  // Whatever is left was not delivered before the deadline: count it, free it.
  while (detail::Record* r = ring_.try_pop()) {
    release_bytes(r->accounted);
    count_drop(DropReason::kShutdown, detail::StripedCounter::kProducerStripe);
    std::free(r);
  }
  while (detail::Record* r = recycle_.try_pop_mc()) std::free(r);
  rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  // Purged messages come back through delivery reports (counted as delivery failures),
  // so serve them before destroying the handle.
  const int64_t until = detail::steady_ns() + 1'000'000'000;
  while (inflight_records() > 0 && detail::steady_ns() < until) poll(10);
  poll(0);
  sync_metrics();
}

Sensor::Impl::~Impl() {
  stop_and_drain();
  if (rkt_) rd_kafka_topic_destroy(rkt_);
  if (rk_) rd_kafka_destroy(rk_);
}

void Sensor::Impl::sync_metrics() {
  std::lock_guard lk(metrics_mu_);
  if (!metrics_) return;
  auto& m = *metrics_;
  const SensorStats s = stats();
  if (s.sent > m.last_sent) m.sent->Increment(static_cast<double>(s.sent - m.last_sent));
  m.last_sent = s.sent;
  if (s.recorded > m.last_recorded)
    m.recorded->Increment(static_cast<double>(s.recorded - m.last_recorded));
  m.last_recorded = s.recorded;
  for (size_t i = 0; i < kDropReasons; ++i) {
    if (s.dropped[i] > m.last_dropped[i])
      m.dropped[i]->Increment(static_cast<double>(s.dropped[i] - m.last_dropped[i]));
    m.last_dropped[i] = s.dropped[i];
  }
  for (size_t i = 0; i < kKeepReasons; ++i) {
    if (s.kept[i] > m.last_kept[i])
      m.kept[i]->Increment(static_cast<double>(s.kept[i] - m.last_kept[i]));
    m.last_kept[i] = s.kept[i];
  }
  m.inflight_bytes->Set(static_cast<double>(s.inflight_bytes));
  m.sample_rate->Set(s.sample_rate);
  m.overhead_share->Set(s.overhead_share);
}

// ---- Sensor ----

Sensor::Sensor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  enabled_.store(impl_->cfg_.enabled, std::memory_order_relaxed);
}

std::shared_ptr<Sensor> Sensor::create(SensorConfig config) {
  auto impl = std::make_unique<Impl>(std::move(config));
  impl->start();
  return std::shared_ptr<Sensor>(new Sensor(std::move(impl)));
}

Sensor::~Sensor() {
  enabled_.store(false, std::memory_order_relaxed);
  try {
    impl_->flush(impl_->cfg_.shutdown_flush_timeout);
  } catch (...) {
  }
}

bool Sensor::flush(std::chrono::milliseconds deadline) { return impl_->flush(deadline); }

SensorStats Sensor::stats() const {
  impl_->sync_metrics();
  return impl_->stats();
}

const SensorConfig& Sensor::config() const noexcept { return impl_->cfg_; }

bool Sensor::set_watch(WatchHook hook, const void* context) noexcept {
  if (hook == nullptr) {
    impl_->watch_.store(nullptr, std::memory_order_release);
    return true;
  }
  const size_t i = impl_->watch_bindings_used_.fetch_add(1, std::memory_order_relaxed);
  if (i >= Impl::kMaxWatchBindings) return false;
  impl_->watch_bindings_[i] = Impl::WatchBinding{hook, context};
  impl_->watch_.store(&impl_->watch_bindings_[i], std::memory_order_release);
  return true;
}

void Sensor::bind_metrics(prometheus::Registry& registry) {
  const std::map<std::string, std::string> app{{"app", impl_->cfg_.app}};
  auto m = std::make_unique<MetricsBinding>();
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add(app);
  };
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(app);
  };
  m->sent =
      counter("immunizer_sensor_records_sent_total", "Call records acknowledged by the broker");
  m->recorded = counter("immunizer_sensor_records_recorded_total",
                        "Calls completed while the sensor was enabled (sampled in or out)");
  by_reason<DropReason>(registry, "immunizer_sensor_records_dropped_total",
                        "Call records not delivered, by reason", impl_->cfg_.app, m->dropped);
  by_reason<KeepReason>(
      registry, "immunizer_sensor_sampled_kept_total",
      "Calls sampling left out but recorded anyway, flagged by a cheap check, by reason",
      impl_->cfg_.app, m->kept);
  m->inflight_bytes =
      gauge("immunizer_sensor_inflight_bytes", "Bytes of records encoded but not yet acknowledged");
  m->sample_rate = gauge("immunizer_sensor_sample_rate",
                         "Effective sampling rate (configured, lowered by the CPU budget)");
  m->overhead_share = gauge("immunizer_sensor_overhead_share",
                            "Measured share of process CPU spent in the sensor (callers, its "
                            "thread, librdkafka's threads)");
  {
    std::lock_guard lk(impl_->metrics_mu_);
    impl_->metrics_ = std::move(m);
  }
  impl_->sync_metrics();
}

}  // namespace immunizer::sensor

#endif  // IMMUNIZER_SENSOR_DISABLED
