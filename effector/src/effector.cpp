// Effector: the gRPC transport (EffectorControl.Connect with reconnect and backoff), the
// housekeeping thread (expiry, resync after reconnect, metrics) around the Enforcer.
#include "immunizer/effector/effector.hpp"

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <time.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "enforcer.hpp"
#include "immunizer/agent/env.hpp"
#include "immunizer/agent/logging.hpp"
#include "immunizer/common/grpc_tls.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/v1/control.grpc.pb.h"
#include "immunizer/v1/names.hpp"
#include "immunizer/version.hpp"

namespace immunizer::effector {
namespace {

std::shared_ptr<spdlog::logger> logger() {
  static const std::shared_ptr<spdlog::logger> log =
      agent::make_logger("immunizer.effector", spdlog::level::info);
  return log;
}

int64_t unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// For TTL checks on the allows() path: a few ms of resolution, a fraction of the cost.
int64_t coarse_unix_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string default_instance() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  return std::string(host) + "-" + std::to_string(getpid());
}

// What execute sent on one stream, read ahead of its handling by the stream's reader thread
// (issue 11, item 6): a live directive (a new block) that execute queued behind a long replay
// is handled before the replay's remaining batches, not after them (123 ms median behind a
// 10,000-directive replay before, effector_replay_bench). The replay's batches and its end
// marker keep their order; live directives keep theirs. Bounded: the reader waits (and gRPC's
// flow control holds execute back) once kReadAhead messages wait, so memory stays bounded and
// a live directive waits behind at most that many. Safe to reorder: a revoke is remembered
// (a replayed copy of a revoked action is refused), and a replayed copy older than the
// live directive of its action is not applied over it (Enforcer::apply_locked).
class Inbox {
 public:
  static constexpr size_t kReadAhead = 128;  // messages (a batch holds up to kReplayBatch)

  // Reader side. False once the handler has gone (stop reading).
  bool push(immunizer::v1::ExecuteMessage&& m) {
    std::unique_lock lk(mu_);
    space_.wait(lk, [&] { return closed_ || live_.size() + replay_.size() < kReadAhead; });
    if (closed_) return false;
    (m.has_directive() ? live_ : replay_).push_back(std::move(m));
    ready_.notify_one();
    return true;
  }
  void end() {  // the stream ended: pop() returns what is left, then nothing
    std::lock_guard lk(mu_);
    ended_ = true;
    ready_.notify_one();
  }
  // Handler side: the next message, live directives first; nothing once the stream ended
  // and everything was handled.
  std::optional<immunizer::v1::ExecuteMessage> pop() {
    std::unique_lock lk(mu_);
    ready_.wait(lk, [&] { return ended_ || !live_.empty() || !replay_.empty(); });
    auto& q = !live_.empty() ? live_ : replay_;
    if (q.empty()) return std::nullopt;
    std::optional<immunizer::v1::ExecuteMessage> m(std::move(q.front()));
    q.pop_front();
    space_.notify_one();
    return m;
  }
  void close() {  // the handler stops: the reader's push() returns false
    std::lock_guard lk(mu_);
    closed_ = true;
    space_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<immunizer::v1::ExecuteMessage> live_, replay_;
  bool ended_ = false, closed_ = false;
};

}  // namespace

struct EffectorMetrics {
  prometheus::Counter* denied;
  std::array<prometheus::Counter*, kOutcomes> directives;
  prometheus::Gauge* connected;
  prometheus::Gauge* active;
  uint64_t last_denied = 0;
  std::array<uint64_t, kOutcomes> last{};
};

struct Effector::Impl {
  Impl(Effector& owner, EffectorConfig cfg, std::shared_ptr<const crypto::KeyRing> trusted)
      : owner_(owner),
        cfg_(std::move(cfg)),
        enforcer_(
            EnforcerOptions{
                std::move(trusted),
                std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.max_clock_skew).count(),
                cfg_.replay_cache_size},
            coarse_unix_ns) {}

  static std::shared_ptr<const crypto::KeyRing> trusted_keys(const EffectorConfig& c) {
    auto ring = std::make_shared<crypto::KeyRing>();
    try {
      for (const auto& pem : c.directive_public_keys)
        ring->add(crypto::VerifyingKey::from_pem(pem));
      for (const auto& path : c.directive_public_key_files)
        ring->add(crypto::VerifyingKey::load(path));
    } catch (const std::exception& e) {
      throw std::invalid_argument(std::string("effector: directive public keys: ") + e.what());
    }
    return ring;
  }

  // Called after every change of the active set or the connection; serialised so that the
  // last store always reflects the latest state.
  void update_mode() {
    std::lock_guard lk(mode_mu_);
    uint32_t m = 0;
    if (enforcer_.active() > 0) m |= 1;
    if (cfg_.fail_closed && !link_up_.load(std::memory_order_acquire)) m |= 2;
    owner_.mode_.store(m, std::memory_order_release);
  }

  // The stream's state changes: the enforcement mode first, then what connected() reports, so
  // that an observer who sees connected() == true also sees allows() out of fail-closed mode
  // (and the other way round on a disconnect).
  void set_link(bool up) {
    link_up_.store(up, std::memory_order_release);
    update_mode();
    connected_.store(up, std::memory_order_release);
  }

  bool wait_stop(std::chrono::milliseconds d) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, d, [&] { return stopping_; });
  }
  bool stopping() {
    std::lock_guard lk(mu_);
    return stopping_;
  }

  // Ends a pending resync: drops every action execute did not send again since the reconnect.
  // `deadline` (when not 0) is the resync the caller judged due: a newer one, begun by a
  // reconnect meanwhile, is left alone.
  void finish_resync(const char* why, int64_t deadline = 0) {
    {
      std::lock_guard lk(mu_);
      if (resync_deadline_ns_ == 0 || (deadline != 0 && resync_deadline_ns_ != deadline)) return;
      resync_deadline_ns_ = 0;
    }
    if (const size_t n = enforcer_.end_resync()) {
      stale_.fetch_add(n, std::memory_order_relaxed);
      logger()->info("effector: dropped {} action(s) not replayed by execute after reconnect ({})",
                     n, why);
    }
    update_mode();
  }

  using Stream =
      grpc::ClientReaderWriter<immunizer::v1::EffectorMessage, immunizer::v1::ExecuteMessage>;
  std::shared_ptr<grpc::Channel> open_channel();
  bool wait_connected(grpc::Channel& channel, int64_t& last_warn);
  bool say_hello(Stream& stream);
  bool on_message(const immunizer::v1::ExecuteMessage& in, Stream& stream);
  bool on_batch(const immunizer::v1::DirectiveBatch& b, Stream& stream);
  std::vector<HandleResult> handle_batch(const immunizer::v1::DirectiveBatch& b);
  bool run_session(immunizer::v1::EffectorControl::Stub& stub, std::chrono::milliseconds& backoff);
  void run_stream();
  void run_janitor();
  void sync_metrics();

  Effector& owner_;
  EffectorConfig cfg_;
  Enforcer enforcer_;
  common::TlsFiles tls_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;  // read once in create(): bad files fail early
  std::atomic<bool> link_up_{false};                 // drives the enforcement mode
  std::atomic<bool> connected_{false};               // what connected() reports; set after the mode
  std::atomic<uint64_t> connects_{0}, connect_failures_{0}, directives_{0}, expired_{0}, stale_{0},
      batches_{0}, batches_unverified_{0};
  mutable std::atomic<uint64_t> denied_{0};

  std::mutex mode_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool started_ = false;
  grpc::ClientContext* active_ctx_ = nullptr;  // guarded by mu_, for TryCancel
  int64_t resync_deadline_ns_ = 0;             // guarded by mu_; 0: no resync pending
  std::thread stream_thread_, janitor_thread_;

  std::mutex metrics_mu_;
  std::unique_ptr<EffectorMetrics> metrics_;
};

std::shared_ptr<grpc::Channel> Effector::Impl::open_channel() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(cfg_.backoff_initial.count()));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(cfg_.backoff_initial.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(cfg_.backoff_max.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  common::apply_channel_args(tls_, args);
  return grpc::CreateCustomChannel(cfg_.execute_address, creds_, args);
}

bool Effector::Impl::wait_connected(grpc::Channel& channel, int64_t& last_warn) {
  // gRPC reconnects with its own backoff (bounded by the channel args); wait in short slices
  // so that stop() is prompt.
  bool up = false;
  const auto until = std::chrono::steady_clock::now() + cfg_.connect_timeout;
  while (!up && !stopping() && std::chrono::steady_clock::now() < until)
    up =
        channel.WaitForConnected(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  if (up || stopping()) return up;
  connect_failures_.fetch_add(1, std::memory_order_relaxed);
  if (unix_ns() - last_warn > 30'000'000'000) {
    last_warn = unix_ns();
    logger()->warn("effector: execute at {} unreachable; {} while disconnected",
                   cfg_.execute_address,
                   cfg_.fail_closed ? "denying every call" : "applying known directives only");
  }
  return false;
}

bool Effector::Impl::say_hello(Stream& stream) {
  immunizer::v1::EffectorMessage hello;
  hello.mutable_hello()->set_app(cfg_.app);
  hello.mutable_hello()->set_instance(cfg_.instance);
  hello.mutable_hello()->set_version(IMMUNIZER_VERSION);
  for (auto k : {immunizer::v1::ACTION_BLOCK_PRINCIPAL, immunizer::v1::ACTION_ABORT_CALL,
                 immunizer::v1::ACTION_THROTTLE_PRINCIPAL, immunizer::v1::ACTION_DISABLE_CALL,
                 immunizer::v1::ACTION_WATCH_PRINCIPAL})
    hello.mutable_hello()->add_capabilities(std::string(immunizer::v1::name_of(k)));
  hello.mutable_hello()->add_capabilities(std::string(kBatchCapability));  // replay in batches
  if (!stream.Write(hello)) return false;
  connects_.fetch_add(1, std::memory_order_relaxed);
  if (cfg_.resync_window.count() > 0) {
    enforcer_.begin_resync();
    std::lock_guard lk(mu_);
    resync_deadline_ns_ =
        unix_ns() +
        std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.resync_window).count();
  }
  set_link(true);
  logger()->info("effector: connected to execute at {}", cfg_.execute_address);
  return true;
}

namespace {
std::string reason_of(const HandleResult& r) {
  return r.reason.empty() ? std::string(to_string(r.outcome))
                          : std::string(to_string(r.outcome)) + ": " + r.reason;
}

// Acknowledges one directive; `more` (more acks follow at once) lets gRPC coalesce the writes.
bool write_ack(Effector::Impl::Stream& stream, const immunizer::v1::Directive& d,
               const HandleResult& r, bool more) {
  if (!accepted(r.outcome))
    logger()->warn("effector: directive {} rejected: {} ({})", d.id(), to_string(r.outcome),
                   r.reason);
  immunizer::v1::EffectorMessage ack;
  auto* a = ack.mutable_ack();
  a->set_directive_id(d.id());
  a->set_applied(accepted(r.outcome));
  a->set_reason(reason_of(r));
  a->set_applied_unix_nanos(unix_ns());
  grpc::WriteOptions opts;
  if (more) opts.set_buffer_hint();
  return stream.Write(ack, opts);
}
}  // namespace

std::vector<HandleResult> Effector::Impl::handle_batch(const immunizer::v1::DirectiveBatch& b) {
  batches_.fetch_add(1, std::memory_order_relaxed);
  directives_.fetch_add(static_cast<uint64_t>(b.directives_size()), std::memory_order_relaxed);
  bool verified = false;
  std::vector<HandleResult> r = enforcer_.handle(b, &verified);
  update_mode();
  if (!verified && b.directives_size() > 0) {
    batches_unverified_.fetch_add(1, std::memory_order_relaxed);
    logger()->warn(
        "effector: a batch of {} directive(s) failed its signature (key id '{}'): each directive "
        "verified alone",
        b.directives_size(), b.key_id().substr(0, 64));
  }
  return r;
}

bool Effector::Impl::on_batch(const immunizer::v1::DirectiveBatch& b, Stream& stream) {
  const std::vector<HandleResult> r = handle_batch(b);
  for (size_t i = 0; i < r.size(); ++i)
    if (!write_ack(stream, b.directives(static_cast<int>(i)), r[i], i + 1 < r.size())) return false;
  return true;
}

// One message from execute; false when the stream cannot take the ack.
bool Effector::Impl::on_message(const immunizer::v1::ExecuteMessage& in, Stream& stream) {
  if (in.has_replay_complete()) {
    finish_resync("end of replay");
    return true;
  }
  if (in.has_batch()) return on_batch(in.batch(), stream);
  if (!in.has_directive()) return true;  // a message kind from a newer execute
  directives_.fetch_add(1, std::memory_order_relaxed);
  const HandleResult r = enforcer_.handle(in.directive());
  update_mode();
  return write_ack(stream, in.directive(), r, false);
}

// One stream: hello, then directives until it ends. False when stop() was called.
bool Effector::Impl::run_session(immunizer::v1::EffectorControl::Stub& stub,
                                 std::chrono::milliseconds& backoff) {
  grpc::ClientContext ctx;
  {
    std::lock_guard lk(mu_);
    if (stopping_) return false;
    active_ctx_ = &ctx;
  }
  auto stream = stub.Connect(&ctx);
  if (say_hello(*stream)) {
    backoff = cfg_.backoff_initial;
    // One thread reads (gRPC allows one reader beside one writer), this one handles and acks.
    Inbox inbox;
    std::thread reader([&] {
      immunizer::v1::ExecuteMessage in;
      while (stream->Read(&in))
        if (!inbox.push(std::move(in))) break;
      inbox.end();
    });
    while (auto in = inbox.pop())
      if (!on_message(*in, *stream)) break;
    inbox.close();
    ctx.TryCancel();  // a reader still in Read() returns
    reader.join();
    set_link(false);
    logger()->warn("effector: stream to execute closed");
  } else {
    connect_failures_.fetch_add(1, std::memory_order_relaxed);
  }
  ctx.TryCancel();
  const grpc::Status st = stream->Finish();
  (void)st;
  {
    std::lock_guard lk(mu_);
    active_ctx_ = nullptr;
  }
  return true;
}

void Effector::Impl::run_stream() {
  auto channel = open_channel();
  auto stub = immunizer::v1::EffectorControl::NewStub(channel);
  std::mt19937_64 rng(std::random_device{}());
  auto backoff = cfg_.backoff_initial;
  int64_t last_warn = 0;
  while (!stopping()) {
    if (!wait_connected(*channel, last_warn)) continue;
    if (!run_session(*stub, backoff)) break;
    // Jittered backoff before reopening the stream (the server may be restarting).
    const double jitter = 0.8 + 0.4 * std::uniform_real_distribution<double>(0, 1)(rng);
    if (wait_stop(std::chrono::milliseconds(
            static_cast<int64_t>(static_cast<double>(backoff.count()) * jitter))))
      break;
    backoff = std::min(cfg_.backoff_max, backoff * 2);
  }
  set_link(false);
}

void Effector::Impl::run_janitor() {
  while (!wait_stop(std::chrono::milliseconds(200))) {
    if (const size_t n = enforcer_.expire()) expired_.fetch_add(n, std::memory_order_relaxed);
    // Fallback for an execute that does not mark the end of its replay: the window elapsed.
    // A window that ran out while disconnected is abandoned (the next connect begins anew).
    int64_t due = 0;
    {
      std::lock_guard lk(mu_);
      if (resync_deadline_ns_ != 0 && unix_ns() >= resync_deadline_ns_) {
        if (connected_.load(std::memory_order_acquire))
          due = resync_deadline_ns_;
        else
          resync_deadline_ns_ = 0;
      }
    }
    if (due != 0) finish_resync("resync window elapsed", due);
    update_mode();
    sync_metrics();
  }
}

void Effector::Impl::sync_metrics() {
  std::lock_guard lk(metrics_mu_);
  if (!metrics_) return;
  auto& m = *metrics_;
  const uint64_t d = denied_.load(std::memory_order_relaxed);
  if (d > m.last_denied) m.denied->Increment(static_cast<double>(d - m.last_denied));
  m.last_denied = d;
  for (size_t i = 0; i < kOutcomes; ++i) {
    const uint64_t v = enforcer_.count(static_cast<Outcome>(i));
    if (v > m.last[i]) m.directives[i]->Increment(static_cast<double>(v - m.last[i]));
    m.last[i] = v;
  }
  m.connected->Set(connected_.load() ? 1 : 0);
  m.active->Set(static_cast<double>(enforcer_.active()));
}

// ---- Effector ----

Effector::Effector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::shared_ptr<Effector> Effector::create(EffectorConfig config) {
  if (config.directive_public_keys.empty() && config.directive_public_key_files.empty())
    throw std::invalid_argument(
        "effector: no directive public key: set IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS to "
        "execute's public key "
        "file(s) (keys/execute.pub in the state folder of 'immunizer up' or 'immunizer pki init')");
  common::TlsFiles tls;
  tls.enabled = common::parse_tls_mode(config.tls, "effector: tls (IMMUNIZER_EFFECTOR_TLS)");
  tls.ca_file = config.tls_ca_file;
  tls.cert_file = config.tls_cert_file;
  tls.key_file = config.tls_key_file;
  tls.server_name = config.tls_server_name;
  std::shared_ptr<grpc::ChannelCredentials> creds;
  try {
    creds =
        common::client_credentials(tls, "effector: TLS to execute (IMMUNIZER_EFFECTOR_TLS_*_FILE)");
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());
  }
  if (!tls.enabled)
    logger()->warn(
        "effector: IMMUNIZER_EFFECTOR_TLS=none: the stream to execute is plaintext and "
        "unauthenticated");
  if (config.execute_address.empty())
    throw std::invalid_argument("effector: execute_address is required");
  if (config.instance.empty()) config.instance = default_instance();
  if (config.backoff_initial.count() <= 0 || config.backoff_max < config.backoff_initial)
    throw std::invalid_argument("effector: backoff_initial must be > 0 and <= backoff_max");
  if (config.connect_timeout.count() <= 0)
    throw std::invalid_argument("effector: connect_timeout must be > 0");
  auto trusted = Impl::trusted_keys(config);
  std::shared_ptr<Effector> e(new Effector(nullptr));
  e->impl_ = std::make_unique<Impl>(*e, std::move(config), std::move(trusted));
  e->impl_->tls_ = std::move(tls);
  e->impl_->creds_ = std::move(creds);
  e->impl_->update_mode();
  return e;
}

Effector::~Effector() {
  if (impl_) stop();
}

void Effector::start() {
  std::lock_guard lk(impl_->mu_);
  if (impl_->started_) return;
  impl_->started_ = true;
  impl_->stopping_ = false;
  impl_->stream_thread_ = std::thread([this] { impl_->run_stream(); });
  impl_->janitor_thread_ = std::thread([this] { impl_->run_janitor(); });
}

void Effector::stop() {
  {
    std::lock_guard lk(impl_->mu_);
    if (!impl_->started_) return;
    impl_->stopping_ = true;
    if (impl_->active_ctx_) impl_->active_ctx_->TryCancel();
  }
  impl_->cv_.notify_all();
  if (impl_->stream_thread_.joinable()) impl_->stream_thread_.join();
  if (impl_->janitor_thread_.joinable()) impl_->janitor_thread_.join();
  std::lock_guard lk(impl_->mu_);
  impl_->started_ = false;
  impl_->sync_metrics();
}

bool Effector::allows_slow(const PrincipalView& p, std::string_view call,
                           uint32_t mode) const noexcept {
  const bool ok = (mode & 2) == 0 && impl_->enforcer_.allows(p, call);
  if (!ok) impl_->denied_.fetch_add(1, std::memory_order_relaxed);
  return ok;
}

bool Effector::watched_slow(const PrincipalView& p) const noexcept {
  return impl_->enforcer_.watched(p);
}

bool Effector::apply(const immunizer::v1::Directive& directive, std::string* reason) {
  impl_->directives_.fetch_add(1, std::memory_order_relaxed);
  const HandleResult r = impl_->enforcer_.handle(directive);
  impl_->update_mode();
  if (reason) *reason = reason_of(r);
  return accepted(r.outcome);
}

size_t Effector::apply(const immunizer::v1::DirectiveBatch& batch,
                       std::vector<std::string>* reasons) {
  const std::vector<HandleResult> r = impl_->handle_batch(batch);
  size_t n = 0;
  if (reasons) reasons->clear();
  for (const auto& x : r) {
    n += accepted(x.outcome) ? 1 : 0;
    if (reasons) reasons->push_back(reason_of(x));
  }
  return n;
}

bool Effector::connected() const noexcept {
  return impl_->connected_.load(std::memory_order_acquire);
}

EffectorStats Effector::stats() const {
  impl_->sync_metrics();
  const auto& en = impl_->enforcer_;
  EffectorStats s;
  s.connected = connected();
  s.connects = impl_->connects_.load();
  s.connect_failures = impl_->connect_failures_.load();
  s.directives = impl_->directives_.load();
  s.applied = en.count(Outcome::kApplied);
  s.revoked = en.count(Outcome::kRevoked);
  s.duplicates = en.count(Outcome::kDuplicate);
  s.ignored = en.count(Outcome::kIgnored);
  s.rejected_signature = en.count(Outcome::kRejectedSignature);
  s.rejected_expired = en.count(Outcome::kRejectedExpired);
  s.rejected_replay = en.count(Outcome::kRejectedReplay);
  s.rejected_invalid = en.count(Outcome::kRejectedInvalid);
  s.expired_actions = impl_->expired_.load();
  s.stale_actions = impl_->stale_.load();
  s.denied = impl_->denied_.load();
  s.batches = impl_->batches_.load();
  s.batches_unverified = impl_->batches_unverified_.load();
  s.signatures_verified = en.verifications();
  s.active_actions = en.active();
  return s;
}

const EffectorConfig& Effector::config() const noexcept { return impl_->cfg_; }

void Effector::bind_metrics(prometheus::Registry& registry) {
  const std::string& app = impl_->cfg_.app;
  auto m = std::make_unique<EffectorMetrics>();
  m->denied = &prometheus::BuildCounter()
                   .Name("immunizer_effector_denied_total")
                   .Help("Calls denied by the effector")
                   .Register(registry)
                   .Add({{"app", app}});
  auto& dirs = prometheus::BuildCounter()
                   .Name("immunizer_effector_directives_total")
                   .Help("Directives received, by result")
                   .Register(registry);
  for (size_t i = 0; i < kOutcomes; ++i)
    m->directives[i] =
        &dirs.Add({{"app", app}, {"result", std::string(to_string(static_cast<Outcome>(i)))}});
  m->connected = &prometheus::BuildGauge()
                      .Name("immunizer_effector_connected")
                      .Help("1 while the stream to execute is up")
                      .Register(registry)
                      .Add({{"app", app}});
  m->active = &prometheus::BuildGauge()
                   .Name("immunizer_effector_active_actions")
                   .Help("Actions currently enforced")
                   .Register(registry)
                   .Add({{"app", app}});
  {
    std::lock_guard lk(impl_->metrics_mu_);
    impl_->metrics_ = std::move(m);
  }
  impl_->sync_metrics();
}

// ---- configuration ----

EffectorConfig EffectorConfig::from_env() {
  // The effector's own namespace is strict, like the sensor's: a misspelled
  // IMMUNIZER_EFFECTOR_* variable is an error, not silently ignored.
  const agent::EnvReader env(
      "effector", "IMMUNIZER_EFFECTOR_",
      {"IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS", "IMMUNIZER_EFFECTOR_FAIL_CLOSED",
       "IMMUNIZER_EFFECTOR_TLS", "IMMUNIZER_EFFECTOR_TLS_CA_FILE",
       "IMMUNIZER_EFFECTOR_TLS_CERT_FILE", "IMMUNIZER_EFFECTOR_TLS_KEY_FILE",
       "IMMUNIZER_EFFECTOR_TLS_SERVER_NAME", "IMMUNIZER_EFFECTOR_CONNECT_TIMEOUT_MS",
       "IMMUNIZER_EFFECTOR_BACKOFF_INITIAL_MS", "IMMUNIZER_EFFECTOR_BACKOFF_MAX_MS",
       "IMMUNIZER_EFFECTOR_MAX_CLOCK_SKEW_MS", "IMMUNIZER_EFFECTOR_RESYNC_WINDOW_MS"});
  auto ms = [&](const char* name, std::chrono::milliseconds def) {
    return std::chrono::milliseconds(env.integer(name, def.count(), 0, 86'400'000));
  };
  EffectorConfig c;
  env.string("IMMUNIZER_APP", &c.app);
  env.string("IMMUNIZER_INSTANCE", &c.instance);
  env.string("IMMUNIZER_EXECUTE_ADDRESS", &c.execute_address);
  // The shared HMAC key is gone: an effector that could verify with it could also forge.
  for (const char* old : {"IMMUNIZER_SECURITY_SIGNING_KEY", "IMMUNIZER_SECURITY_SIGNING_KEY_FILE",
                          "IMMUNIZER_SECURITY_KEY_ID"})
    if (env.raw(old))
      env.bad(old, "(not shown)",
              "no longer used: directives are signed with Ed25519; give execute's public key(s) "
              "in IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS");
  c.directive_public_key_files = env.list("IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS");
  c.fail_closed = env.boolean("IMMUNIZER_EFFECTOR_FAIL_CLOSED", c.fail_closed);
  env.string("IMMUNIZER_EFFECTOR_TLS", &c.tls);
  env.string("IMMUNIZER_EFFECTOR_TLS_CA_FILE", &c.tls_ca_file);
  env.string("IMMUNIZER_EFFECTOR_TLS_CERT_FILE", &c.tls_cert_file);
  env.string("IMMUNIZER_EFFECTOR_TLS_KEY_FILE", &c.tls_key_file);
  env.string("IMMUNIZER_EFFECTOR_TLS_SERVER_NAME", &c.tls_server_name);
  c.connect_timeout = ms("IMMUNIZER_EFFECTOR_CONNECT_TIMEOUT_MS", c.connect_timeout);
  c.backoff_initial = ms("IMMUNIZER_EFFECTOR_BACKOFF_INITIAL_MS", c.backoff_initial);
  c.backoff_max = ms("IMMUNIZER_EFFECTOR_BACKOFF_MAX_MS", c.backoff_max);
  c.max_clock_skew = ms("IMMUNIZER_EFFECTOR_MAX_CLOCK_SKEW_MS", c.max_clock_skew);
  c.resync_window = ms("IMMUNIZER_EFFECTOR_RESYNC_WINDOW_MS", c.resync_window);
  return c;
}

}  // namespace immunizer::effector
