// The effector: holds a gRPC stream to execute (EffectorControl.Connect), verifies signed
// Directives, keeps the active blocklist, answers allows(principal, call) and acknowledges
// what it applied. Thread-safety: every method may be called from any thread; allows() is
// lock-free and allocation-free (an atomically published immutable snapshot guarded by an
// RCU-like epoch, and a single-load fast path when nothing is active). Owns one background
// thread for the stream and one for housekeeping (expiry, resync), both ended by stop().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace prometheus {
class Registry;
}
namespace immunizer::v1 {
class Directive;
class DirectiveBatch;
}  // namespace immunizer::v1

namespace immunizer::effector {

// Who makes a call, as three views. Any type with `user`, `session` and `ip` members
// convertible to std::string_view converts implicitly (e.g. immunizer::sensor::Principal),
// so the effector does not depend on the sensor.
struct PrincipalView {
  std::string_view user;
  std::string_view session;
  std::string_view ip;

  PrincipalView() = default;
  PrincipalView(std::string_view u, std::string_view s, std::string_view i)
      : user(u), session(s), ip(i) {}
  template <class P>
  requires requires(const P& p) {
    std::string_view(p.user);
    std::string_view(p.session);
    std::string_view(p.ip);
  }
  PrincipalView(const P& p)
      : user(p.user), session(p.session), ip(p.ip) {}  // NOLINT: implicit on purpose
};

struct EffectorConfig {
  std::string app = "app";                         // sent in the hello, labels metrics
  std::string instance;                            // empty: "<hostname>-<pid>"
  std::string execute_address = "127.0.0.1:7070";  // host:port of execute's gRPC
  // Execute's Ed25519 public keys (PEM text, or files holding one PEM each): only directives
  // signed by one of them are accepted; several during a key rotation. At least one is
  // required (create() throws otherwise). The effector holds no secret that can sign.
  std::vector<std::string> directive_public_keys;
  std::vector<std::string> directive_public_key_files;
  bool fail_closed = false;  // while disconnected: deny everything (true) or apply
                             // only the directives already known (false)
  // Mutual TLS to execute: "mtls" (default; ca, cert and key files required) or "none"
  // (plaintext, only when explicitly set; warned at start).
  std::string tls = "mtls";
  std::string tls_ca_file;    // CA bundle execute's certificate must chain to
  std::string tls_cert_file;  // this effector's certificate (SAN
                              // spiffe://immunizer/effector/<app>[/<instance>])
  std::string tls_key_file;
  std::string tls_server_name;  // name checked in execute's certificate (empty: the address's host)
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{10000};
  std::chrono::milliseconds max_clock_skew{30000};  // reject directives issued further ahead
  // After a reconnect execute replays every active directive; actions not replayed within
  // this window were lifted while we were away and are dropped. 0 disables.
  std::chrono::milliseconds resync_window{5000};
  size_t replay_cache_size = 100000;  // directive ids remembered for replay detection

  // Reads IMMUNIZER_* variables over the defaults (docs/effector.md); throws
  // std::invalid_argument naming the variable on a bad value.
  static EffectorConfig from_env();
};

struct EffectorStats {
  bool connected = false;
  uint64_t connects = 0;            // streams established
  uint64_t connect_failures = 0;    // attempts that did not reach a stream
  uint64_t directives = 0;          // received
  uint64_t applied = 0;             // new actions in force
  uint64_t revoked = 0;             // lifted by a revoke directive
  uint64_t duplicates = 0;          // same directive again (e.g. replay after reconnect)
  uint64_t ignored = 0;             // valid but nothing to enforce here (LOG, ESCALATE)
  uint64_t rejected_signature = 0;  // unsigned, forged or tampered
  uint64_t rejected_expired = 0;    // expired, or issued too far in the future
  uint64_t rejected_replay = 0;     // an id seen before with other content, or after revoke
  uint64_t rejected_invalid = 0;    // malformed (no id, unknown kind, missing target)
  uint64_t expired_actions = 0;     // actions removed when their TTL ran out
  uint64_t stale_actions = 0;       // dropped after a reconnect because not replayed
  uint64_t denied = 0;              // allows() == false
  uint64_t active_actions = 0;
  uint64_t batches = 0;              // DirectiveBatch messages (execute's replay)
  uint64_t batches_unverified = 0;   // of which the batch signature failed (each then verified)
  uint64_t signatures_verified = 0;  // Ed25519 verifications (directives and batches)
  uint64_t rejected() const {
    return rejected_signature + rejected_expired + rejected_replay + rejected_invalid;
  }
};

class Effector {
 public:
  static std::shared_ptr<Effector> create(EffectorConfig config);  // throws on bad config
  ~Effector();                                                     // stop()
  Effector(const Effector&) = delete;
  Effector& operator=(const Effector&) = delete;

  void start();  // connects in the background; returns at once
  void stop();   // closes the stream, joins the threads; allows() keeps answering

  // May `principal` make `call` now? Lock-free; never blocks, never allocates, never throws.
  // A throttled principal consumes one token per call.
  bool allows(const PrincipalView& principal, std::string_view call) const noexcept {
    const uint32_t m = mode_.load(std::memory_order_acquire);
    if (m == 0) [[likely]]
      return true;  // nothing active, and connected or failing open
    return allows_slow(principal, call, m);
  }

  // Is `principal` under watch (an ACTION_WATCH_PRINCIPAL in force on one of its fields)?
  // Lock-free, allocation-free, never throws; false at once while no action is active.
  bool watched(const PrincipalView& principal) const noexcept {
    if ((mode_.load(std::memory_order_acquire) & 1) == 0) [[likely]]
      return false;
    return watched_slow(principal);
  }
  // watched() with a plain signature, for the sensor's watch hook (immunizer::sensor::
  // WatchHook), so that the two agents share no header:
  //   sensor->set_watch(&Effector::watch_hook, effector.get());
  // `effector` is a const Effector*; it must outlive the sensor's calls.
  static bool watch_hook(const void* effector, std::string_view user, std::string_view session,
                         std::string_view ip) noexcept {
    return static_cast<const Effector*>(effector)->watched(PrincipalView(user, session, ip));
  }

  // Applies a directive that arrived out of band (e.g. a signed blocklist loaded at start),
  // verified exactly like one from execute. Returns true when accepted; `reason` says why not.
  bool apply(const immunizer::v1::Directive& directive, std::string* reason = nullptr);
  // Applies a batch as one from execute's stream (one signature for the batch; each directive
  // verified alone when it fails). Returns how many were accepted; `reasons`, one per directive.
  size_t apply(const immunizer::v1::DirectiveBatch& batch,
               std::vector<std::string>* reasons = nullptr);

  bool connected() const noexcept;
  EffectorStats stats() const;
  // Exports immunizer_effector_denied_total{app}, immunizer_effector_directives_total
  // {app,result}, immunizer_effector_connected{app}, immunizer_effector_active_actions{app}.
  void bind_metrics(prometheus::Registry& registry);
  const EffectorConfig& config() const noexcept;

  struct Impl;

 private:
  explicit Effector(std::unique_ptr<Impl> impl);
  bool allows_slow(const PrincipalView& p, std::string_view call, uint32_t mode) const noexcept;
  bool watched_slow(const PrincipalView& p) const noexcept;
  friend struct Impl;
  // Bit 0: some action is active; bit 1: deny everything (disconnected and fail-closed).
  std::atomic<uint32_t> mode_{0};
  std::unique_ptr<Impl> impl_;
};

}  // namespace immunizer::effector
