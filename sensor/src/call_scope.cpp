// Caller side of the sensor: thread-local context chain, encoding buffers, sampling and the
// non-blocking hand-off to the producer thread.
#ifndef IMMUNIZER_SENSOR_DISABLED

#include <time.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "sensor_impl.hpp"
#include "tick_clock.hpp"

namespace immunizer::sensor {
namespace detail {

int64_t steady_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Buf::~Buf() { std::free(data); }

void Buf::grow(size_t extra) {
  size_t cap2 = cap ? cap * 2 : 512;
  while (cap2 < size + extra) cap2 *= 2;
  char* p = static_cast<char*>(std::realloc(data, cap2));
  if (!p) throw std::bad_alloc();
  data = p;
  cap = cap2;
}

void close_len_slow(Buf& b, size_t pos, size_t len) {
  const size_t k = varint_size(len);
  b.reserve(k - 1);
  std::memmove(b.data + pos + k, b.data + pos + 1, len);
  put_varint(b.data + pos, len);
  b.size += k - 1;
}

uint64_t mix64(uint64_t x) noexcept {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::atomic<uint32_t>* ArgNameTable::quota(uint64_t call) noexcept {
  const uint64_t fp = call | 1;  // 0 marks an empty slot
  size_t i = static_cast<size_t>(mix64(fp)) & (kCallSlots - 1);
  for (size_t n = 0; n < kCallSlots; ++n, i = (i + 1) & (kCallSlots - 1)) {
    uint64_t v = calls_[i].load(std::memory_order_acquire);
    if (v == fp) return &names_[i];
    if (v != 0) continue;
    if (call_count_.fetch_add(1, std::memory_order_relaxed) >= kMaxCalls) {
      call_count_.fetch_sub(1, std::memory_order_relaxed);
      return nullptr;
    }
    if (calls_[i].compare_exchange_strong(v, fp, std::memory_order_acq_rel)) return &names_[i];
    call_count_.fetch_sub(1, std::memory_order_relaxed);
    if (v == fp) return &names_[i];  // another thread added it
  }
  return nullptr;
}

ArgNameTable::Seen ArgNameTable::see(uint64_t call, uint64_t name, size_t* slot) noexcept {
  const uint64_t fp = mix64(call ^ mix64(name)) | 1;
  size_t i = static_cast<size_t>(fp >> 17) & (kPairSlots - 1);
  size_t ignored = 0;
  size_t& at = slot ? *slot : ignored;
  for (size_t n = 0; n < kMaxProbe; ++n, i = (i + 1) & (kPairSlots - 1)) {
    at = i;
    uint64_t v = pairs_[i].load(std::memory_order_acquire);
    if (v == fp) return Seen::kKnown;
    if (v != 0) continue;
    std::atomic<uint32_t>* q = quota(call);
    if (!q) return Seen::kFull;
    if (q->fetch_add(1, std::memory_order_relaxed) >= kMaxNamesPerCall) {
      q->fetch_sub(1, std::memory_order_relaxed);
      return Seen::kFull;
    }
    if (pairs_[i].compare_exchange_strong(v, fp, std::memory_order_acq_rel)) return Seen::kNew;
    q->fetch_sub(1, std::memory_order_relaxed);
    if (v == fp) return Seen::kKnown;  // another thread added it
  }
  return Seen::kFull;
}

bool ArgNameTable::rare_classes(size_t slot, uint8_t classes) noexcept {
  std::atomic<uint32_t>* counts = class_counts_[slot];
  const uint32_t n = values_[slot].load(std::memory_order_relaxed);
  if (n >= kLearnValues)
    for (uint8_t m = classes; m; m &= static_cast<uint8_t>(m - 1)) {
      const uint32_t c = counts[std::countr_zero(m)].load(std::memory_order_relaxed);
      if (static_cast<uint64_t>(c) * kRareShare < n) return true;
    }
  if (n < kMaxValues) {
    values_[slot].fetch_add(1, std::memory_order_relaxed);
    for (uint8_t m = classes; m; m &= static_cast<uint8_t>(m - 1))
      counts[std::countr_zero(m)].fetch_add(1, std::memory_order_relaxed);
  }
  return false;
}

}  // namespace detail

namespace {

constexpr uint32_t kMeasureEvery = 64;  // one call in 64 per thread is timed (CPU budget)
constexpr uint64_t kSeqBlock = 1024;

std::atomic<uint32_t> g_next_stripe{0};

struct ThreadState {
  std::string ctx;  // context chain of the enclosing scopes, then this thread's current call
  std::vector<std::unique_ptr<detail::Buf>> bufs;  // one per nesting depth of recording scopes
  uint32_t depth = 0;
  uint32_t stripe = g_next_stripe.fetch_add(1, std::memory_order_relaxed) %
                    detail::StripedCounter::kProducerStripe;
  uint32_t measure_countdown = 1 + (stripe % kMeasureEvery);
  uint32_t rng = 0x9E3779B9u ^ (stripe * 0x85EBCA6Bu) ^ static_cast<uint32_t>(detail::steady_ns());
  // Cached block of sequence numbers, valid for the sensor with this tag.
  uint32_t seq_tag = 0;
  uint64_t seq_next = 0;
  uint64_t seq_end = 0;

  uint32_t next_random() {
    uint32_t x = rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng = x ? x : 1;
    return x;
  }
};

thread_local ThreadState tl;

// A block for `need` bytes: a recycled one when it fits (no malloc in steady state, and no
// cross-thread free contention), else a new one rounded up so that it can be reused.
detail::Record* obtain_record(Sensor::Impl& im, size_t need) noexcept {
  if (detail::Record* r = im.recycle_.try_pop_mc()) {
    if (r->capacity >= need) return r;
    std::free(r);
  }
  const size_t cap = (need + 255) & ~size_t{255};
  auto* r = static_cast<detail::Record*>(std::malloc(sizeof(detail::Record) + cap));
  if (r) r->capacity = static_cast<uint32_t>(cap);
  return r;
}

// Adds a timed call's own caller-side time, scaled to the calls not timed, to the CPU budget.
void add_own_time(Sensor::Impl& im, uint32_t stripe, int64_t own_ticks) noexcept {
  im.own_ns_.add(stripe, static_cast<uint64_t>(detail::TickClock::instance().to_ns(own_ticks)) *
                             kMeasureEvery);
}

// The record's last fields: its duration and, for a record cut to its caps, how.
void put_trailer(detail::Buf& b, int64_t elapsed_ticks) noexcept {
  detail::put_varint_field(
      b, 9, static_cast<uint64_t>(detail::TickClock::instance().to_ns(elapsed_ticks)));
  if (b.truncated) [[unlikely]] {
    // Bytes cut from strings are known exactly; parts left out are not encoded at all,
    // so original_size is a lower bound when dropped_arguments > 0.
    const uint64_t original = b.size + b.cut_bytes;
    detail::put_varint_field(b, 11, 1);         // truncated
    detail::put_varint_field(b, 12, original);  // original_size
    if (b.dropped_parts) detail::put_varint_field(b, 13, b.dropped_parts);
  }
}

// Model key "<app>|<call>|<context>" after the sensor's "<app>|" prefix: the thread's context
// string holds both parts, each cut like the record's fields when over the string cap.
class ModelKey {
 public:
  ModelKey(const std::string& chain, size_t ctx_len, size_t cap) noexcept
      : ctx_(chain.data(), ctx_len),
        call_(chain.data() + (ctx_len ? ctx_len + 1 : 0),
              chain.size() - (ctx_len ? ctx_len + 1 : 0)),
        cap_(cap) {}
  size_t size() const noexcept { return cut_size(call_) + 1 + cut_size(ctx_); }
  char* write(char* k) const noexcept {
    k = put_cut(k, call_);
    *k++ = '|';
    return put_cut(k, ctx_);
  }

 private:
  size_t cut_size(std::string_view s) const noexcept { return s.size() > cap_ ? cap_ : s.size(); }
  char* put_cut(char* k, std::string_view s) const noexcept {
    if (s.size() <= cap_) {
      std::memcpy(k, s.data(), s.size());
      return k + s.size();
    }
    const size_t head = cap_ / 2, tail = cap_ - head;  // as put_capped_string_field
    std::memcpy(k, s.data(), head);
    std::memcpy(k + head, s.data() + s.size() - tail, tail);
    return k + cap_;
  }

  std::string_view ctx_, call_;
  size_t cap_;
};

// Copies the encoded record and its key into a block and queues it for the producer thread,
// never waiting: over the byte budget, without memory or with the queue full, it is dropped
// and counted by reason.
void hand_off(Sensor::Impl& im, uint32_t stripe, const detail::Buf& b,
              const ModelKey& key) noexcept {
  const std::string& kp = im.key_prefix_;
  const size_t key_len = kp.size() + key.size();
  const size_t total = sizeof(detail::Record) + key_len + b.size;
  const uint64_t before = im.inflight_bytes_.fetch_add(total, std::memory_order_relaxed);
  detail::Record* r = nullptr;
  if (before + total > im.cfg_.max_inflight_bytes || total > UINT32_MAX ||
      (r = obtain_record(im, total - sizeof(detail::Record))) == nullptr) {
    im.release_bytes(total);
    im.count_drop(DropReason::kBudget, stripe);
    return;
  }
  r->key_len = static_cast<uint32_t>(key_len);
  r->payload_len = static_cast<uint32_t>(b.size);
  r->accounted = static_cast<uint32_t>(total);
  std::memcpy(r->key(), kp.data(), kp.size());
  key.write(r->key() + kp.size());
  std::memcpy(r->payload(), b.data, b.size);
  if (!im.ring_.try_push(r)) {
    if (!im.recycle_.try_push(r)) std::free(r);
    im.release_bytes(total);
    im.count_drop(DropReason::kQueueFull, stripe);
  }
}

}  // namespace

void CallScope::begin(Sensor& sensor, std::string_view call) noexcept {
  ThreadState& t = tl;
  Sensor::Impl* im = sensor.impl_.get();
  measured_ = --t.measure_countdown == 0;
  const int64_t t0 = measured_ ? detail::ticks() : 0;
  if (measured_) t.measure_countdown = kMeasureEvery;

  ctx_len_ = static_cast<uint32_t>(t.ctx.size());
  try {
    if (ctx_len_) t.ctx.push_back('>');
    t.ctx.append(call);
  } catch (...) {
    t.ctx.resize(ctx_len_);
    return;  // stays kOff: nothing recorded, nothing counted
  }
  impl_ = im;

  const bool sampled_out = static_cast<uint64_t>(t.next_random()) >=
                           im->sample_threshold_.load(std::memory_order_relaxed);
  if (sampled_out && !im->cfg_.keep_flagged) {
    state_ = kContextOnly;
    im->count_drop(DropReason::kSampledOut, t.stripe);
    if (measured_) add_own_time(*im, t.stripe, detail::ticks() - t0);
    measured_ = false;
    return;
  }

  try {
    if (t.depth == t.bufs.size()) t.bufs.push_back(std::make_unique<detail::Buf>());
  } catch (...) {
    state_ = kContextOnly;
    im->count_drop(DropReason::kSampledOut, t.stripe);
    measured_ = false;
    return;
  }
  buf_ = t.bufs[t.depth++].get();
  buf_->size = 0;
  buf_->reset_caps(im->cfg_.max_string_bytes, im->cfg_.max_record_bytes);
  state_ = kRecording;
  tentative_ = sampled_out;
  buf_->check_utf8 = sampled_out;
  if (im->cfg_.keep_flagged) call_hash_ = std::hash<std::string_view>{}(call) | 1;

  if (t.seq_tag != im->instance_tag_ || t.seq_next == t.seq_end) {
    t.seq_next = im->next_seq_block_.fetch_add(kSeqBlock, std::memory_order_relaxed);
    t.seq_end = t.seq_next + kSeqBlock;
    t.seq_tag = im->instance_tag_;
  }
  seq_ = t.seq_next++;

  // Header fields of CallRecord; field order on the wire does not matter to parsers.
  detail::Buf& b = *buf_;
  const std::string& idp = im->id_prefix_;
  const size_t id_len = idp.size() + 1 + detail::varint_size(seq_);
  char* p = b.reserve(2 + 10 + id_len + 11);
  *p++ = detail::tag(1, detail::kLen);
  p = detail::put_varint(p, id_len);
  p = std::copy(idp.begin(), idp.end(), p);
  *p++ = detail::tag(3, detail::kVarint);
  p = detail::put_varint(p, seq_);
  b.size = static_cast<size_t>(p - b.data);
  detail::put_capped_string_field(b, 3, call);
  if (ctx_len_) detail::put_capped_string_field(b, 4, std::string_view(t.ctx.data(), ctx_len_));

  start_ticks_ = detail::ticks();
  detail::put_varint_field(
      b, 2, static_cast<uint64_t>(detail::TickClock::instance().wall_ns(start_ticks_)));
  if (measured_) own_ticks_ += detail::ticks() - t0;
}

void CallScope::put_principal(std::string_view u, std::string_view s, std::string_view i) noexcept {
  const int64_t t0 = measured_ ? detail::ticks() : 0;
  const size_t at = detail::open_len(*buf_, 5);
  if (!u.empty()) detail::put_capped_string_field(*buf_, 1, u);
  if (!s.empty()) detail::put_capped_string_field(*buf_, 2, s);
  if (!i.empty()) detail::put_capped_string_field(*buf_, 3, i);
  detail::close_len(*buf_, at);
  if (tentative_ && !keep_)
    if (const auto* w = impl_->watch_.load(std::memory_order_acquire);
        w && w->hook(w->context, u, s, i)) {
      keep_ = 1 + static_cast<uint8_t>(KeepReason::kWatched);
      buf_->check_utf8 = false;
    }
  if (measured_) own_ticks_ += detail::ticks() - t0;
}

void CallScope::put_string_pair(uint32_t field, std::string_view a, std::string_view b) noexcept {
  const int64_t t0 = measured_ ? detail::ticks() : 0;
  const size_t at = detail::open_len(*buf_, field);
  detail::put_capped_string_field(*buf_, 1, a);
  detail::put_capped_string_field(*buf_, 2, b);
  detail::close_len(*buf_, at);
  if (measured_) own_ticks_ += detail::ticks() - t0;
}

void CallScope::put_label(std::string_view k, std::string_view v) noexcept {
  put_string_pair(10, k, v);
}

void CallScope::put_error(std::string_view type, std::string_view message) noexcept {
  put_string_pair(8, type, message);
}

CallScope& CallScope::skip_part() noexcept {
  buf_->drop_part();
  return *this;
}

void CallScope::note_arg_name(std::string_view name) noexcept {
  using Seen = detail::ArgNameTable::Seen;
  size_t slot = 0;
  const Seen seen = impl_->arg_names_.see(call_hash_, std::hash<std::string_view>{}(name), &slot);
  if (!tentative_ || keep_) return;
  if (seen == Seen::kNew)
    keep_ = 1 + static_cast<uint8_t>(KeepReason::kNewArgName);
  else if (seen == Seen::kFull)
    keep_ = 1 + static_cast<uint8_t>(KeepReason::kNameTableFull);
  else if (!detail::valid_utf8(name))
    keep_ = 1 + static_cast<uint8_t>(KeepReason::kInvalidUtf8);
  // A value that was cut or is not UTF-8 is kept by end(), and its classes were not all seen.
  else if (!buf_->truncated && !buf_->bad_utf8 &&
           impl_->arg_names_.rare_classes(slot, buf_->classes))
    keep_ = 1 + static_cast<uint8_t>(KeepReason::kRareCharacters);
  if (keep_) buf_->check_utf8 = false;  // flagged: the record is kept, no more checks
}

RecordId CallScope::id() const noexcept {
  // A sampled-out call is recorded only if flagged: as end() will decide from what is known now.
  if (!impl_ || (tentative_ && !keep_ && !buf_->truncated && !buf_->bad_utf8)) return {};
  return RecordId{impl_->cfg_.app, impl_->cfg_.instance, seq_};
}

void CallScope::end() noexcept {
  ThreadState& t = tl;
  if (state_ == kRecording) {
    const int64_t now = detail::ticks();
    Sensor::Impl& im = *impl_;
    detail::Buf& b = *buf_;
    if (tentative_) {
      if (!keep_ && b.truncated) keep_ = 1 + static_cast<uint8_t>(KeepReason::kTooLong);
      if (!keep_ && b.bad_utf8) keep_ = 1 + static_cast<uint8_t>(KeepReason::kInvalidUtf8);
      if (keep_)
        im.kept_[keep_ - 1].add(t.stripe, 1);
      else  // nothing flagged: left out as sampling decided
        im.count_drop(DropReason::kSampledOut, t.stripe);
    }
    if (!tentative_ || keep_) {
      put_trailer(b, now > start_ticks_ ? now - start_ticks_ : 0);  // thread may migrate
      im.sampled_in_.add(t.stripe, 1);
      hand_off(im, t.stripe, b, ModelKey(t.ctx, ctx_len_, b.max_string));
    }
    --t.depth;
    if (measured_) add_own_time(im, t.stripe, own_ticks_ + detail::ticks() - now);
  }
  t.ctx.resize(ctx_len_);
}

}  // namespace immunizer::sensor

#endif  // IMMUNIZER_SENSOR_DISABLED
