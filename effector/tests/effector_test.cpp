// The effector against an in-process fake execute (EffectorControl server on 127.0.0.1,
// port 0) that signs directives with the real signing code: hello, apply, ack with time,
// rejection of forged/tampered/expired/replayed directives over the wire, execute down
// (fail-open and fail-closed), reconnect with replay of the active set, metrics.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "immunizer/common/grpc_tls.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/effector/effector.hpp"
#include "immunizer/tools/pki.hpp"
#include "immunizer/v1/control.grpc.pb.h"

namespace {

using namespace std::chrono_literals;
using immunizer::effector::Effector;
using immunizer::effector::EffectorConfig;
using immunizer::effector::PrincipalView;
using namespace immunizer::v1;

using immunizer::crypto::SigningKey;
const SigningKey& key_of(int n) {  // 0: execute's key, 1: a key the effector does not trust
  static const SigningKey k[2] = {
      SigningKey::from_pem(immunizer::crypto::generate_ed25519().private_pem),
      SigningKey::from_pem(immunizer::crypto::generate_ed25519().private_pem)};
  return k[n];
}
const SigningKey& kKey = key_of(0);

// Certificates for the fake execute and the effector "shop", made once per run.
const immunizer::tools::pki::Layout& test_pki() {
  // Never destroyed: the clean-up at exit reads it (a static object would be destroyed before
  // a handler registered while it was being made runs: ASan's heap-use-after-free at exit).
  static const immunizer::tools::pki::Layout& l = *[] {
    auto* x =
        new immunizer::tools::pki::Layout{(std::filesystem::temp_directory_path() /
                                           ("immunizer-effector-test-" + std::to_string(getpid())))
                                              .string()};
    immunizer::tools::pki::init(*x, {.effectors = {"shop", "other"}});
    std::atexit([] { std::filesystem::remove_all(test_pki().dir); });
    return x;
  }();
  return l;
}
constexpr auto kNeverBlocks = 100ms;

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds deadline = 20s) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::yield();
  }
  return pred();
}

int64_t unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A stand-in for the execute service: replays `active` directives on connect (then, unless
// told to behave like an older execute, the end-of-replay marker), then pushes whatever push()
// is given to every connected stream, and collects hellos and acks.
class FakeExecute final : public EffectorControl::Service {
 public:
  grpc::Status Connect(grpc::ServerContext* ctx,
                       grpc::ServerReaderWriter<ExecuteMessage, EffectorMessage>* stream) override {
    EffectorMessage first;
    if (!stream->Read(&first) || !first.has_hello())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello first");
    std::vector<Directive> replay;
    bool marker = false;
    {
      std::lock_guard lk(mu_);
      hellos_.push_back(first.hello());
      for (const auto& [id, d] : active_) replay.push_back(d);
      marker = replay_marker_;
    }
    cv_.notify_all();
    const auto& caps = first.hello().capabilities();
    if (batches_ &&
        std::find(caps.begin(), caps.end(), immunizer::effector::kBatchCapability) != caps.end()) {
      // As execute replays: runs of kReplayBatch, each signed once.
      for (size_t i = 0; i < replay.size(); i += immunizer::effector::kReplayBatch) {
        ExecuteMessage m;
        auto* b = m.mutable_batch();
        for (size_t k = i; k < std::min(replay.size(), i + immunizer::effector::kReplayBatch); ++k)
          *b->add_directives() = replay[k];
        immunizer::effector::sign(*b, kKey);
        if (tamper_batch_ && b->directives_size() > 1)  // altered after signing, in transit
          b->mutable_directives(1)->mutable_action()->set_target_value("192.0.2.99");
        stream->Write(m);
      }
    } else {
      for (const auto& d : replay) {
        ExecuteMessage m;
        *m.mutable_directive() = d;
        stream->Write(m);
      }
    }
    if (marker) {
      ExecuteMessage m;
      m.mutable_replay_complete()->set_directives(static_cast<uint32_t>(replay.size()));
      stream->Write(m);
    }
    std::thread reader([&] {
      EffectorMessage m;
      while (stream->Read(&m)) {
        if (!m.has_ack()) continue;
        std::lock_guard lk(mu_);
        acks_[m.ack().directive_id()] = m.ack();
        ack_order_.push_back(m.ack().directive_id());
        cv_.notify_all();
      }
    });
    std::unique_lock lk(mu_);
    while (!ctx->IsCancelled() && !closing_) {
      while (cursor_ < log_.size()) {
        ExecuteMessage m;
        *m.mutable_directive() = log_[cursor_++];
        lk.unlock();
        stream->Write(m);
        lk.lock();
      }
      cv_.wait_for(lk, 20ms);
    }
    lk.unlock();
    ctx->TryCancel();
    reader.join();
    return grpc::Status::OK;
  }

  void push(const Directive& d, bool keep_active = true) {
    std::lock_guard lk(mu_);
    log_.push_back(d);
    if (keep_active && !d.revoke()) active_[d.action().id()] = d;
    if (d.revoke()) active_.erase(d.action().id());
    cv_.notify_all();
  }
  // Lifts an action on this "execute" without telling anyone: no longer replayed, and not
  // pushed either if no stream took it yet (a stream can end before pushing its log).
  void forget(const std::string& action_id) {
    std::lock_guard lk(mu_);
    active_.erase(action_id);
    log_.erase(std::remove_if(log_.begin() + static_cast<std::ptrdiff_t>(cursor_), log_.end(),
                              [&](const Directive& d) { return d.action().id() == action_id; }),
               log_.end());
  }
  std::optional<DirectiveAck> ack(const std::string& id) {
    std::lock_guard lk(mu_);
    auto it = acks_.find(id);
    if (it == acks_.end()) return std::nullopt;
    return it->second;
  }
  size_t hellos() {
    std::lock_guard lk(mu_);
    return hellos_.size();
  }
  EffectorHello hello(size_t i) {
    std::lock_guard lk(mu_);
    return hellos_.at(i);
  }
  void close_streams() {
    std::lock_guard lk(mu_);
    closing_ = true;
    cv_.notify_all();
  }
  void reopen() {
    std::lock_guard lk(mu_);
    closing_ = false;
  }
  void send_replay_marker(bool on) {
    std::lock_guard lk(mu_);
    replay_marker_ = on;
  }
  // Replays in signed batches to an effector that takes them (as execute does); `tamper`
  // alters the second directive of each batch after signing it.
  void replay_in_batches(bool on, bool tamper = false) {
    std::lock_guard lk(mu_);
    batches_ = on;
    tamper_batch_ = tamper;
  }
  // Active on this "execute" (replayed on connect) without being pushed to a stream.
  void activate(const Directive& d) {
    std::lock_guard lk(mu_);
    active_[d.action().id()] = d;
  }
  size_t acks() {
    std::lock_guard lk(mu_);
    return acks_.size();
  }
  // Directive ids in the order their acks arrived.
  std::vector<std::string> ack_order() {
    std::lock_guard lk(mu_);
    return ack_order_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Directive> log_;
  size_t cursor_ = 0;  // next directive of log_ to push (to whichever stream is up)
  std::map<std::string, Directive> active_;
  std::map<std::string, DirectiveAck> acks_;
  std::vector<std::string> ack_order_;
  std::vector<EffectorHello> hellos_;
  bool closing_ = false;
  bool replay_marker_ = true;
  bool batches_ = false;
  bool tamper_batch_ = false;
};

class Server {
 public:
  explicit Server(FakeExecute& svc, int port = 0) {
    grpc::ServerBuilder b;
    b.AddListeningPort(
        "127.0.0.1:" + std::to_string(port),
        immunizer::common::server_credentials(
            test_pki().tls(immunizer::common::Role::kExecute, "execute"), "test server"),
        &port_);
    b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
    b.RegisterService(&svc);
    svc.reopen();
    server_ = b.BuildAndStart();
    svc_ = &svc;
  }
  ~Server() { stop(); }
  void stop() {
    if (!server_) return;
    svc_->close_streams();
    server_->Shutdown(std::chrono::system_clock::now() + 1s);
    server_->Wait();
    server_.reset();
  }
  int port() const { return port_; }

 private:
  int port_ = 0;
  FakeExecute* svc_;
  std::unique_ptr<grpc::Server> server_;
};

int dead_port() {
  FakeExecute svc;
  Server s(svc);
  return s.port();  // closed when `s` goes away
}

int seq = 0;
Directive block(PrincipalField f, const std::string& value, const SigningKey& key = kKey) {
  Directive d;
  d.set_id("dir-" + std::to_string(++seq));
  d.set_issued_unix_nanos(unix_ns());
  d.set_plan_id("plan-1");
  auto* a = d.mutable_action();
  a->set_id("act-" + std::to_string(seq));
  a->set_kind(ACTION_BLOCK_PRINCIPAL);
  a->set_target_field(f);
  a->set_target_value(value);
  a->set_ttl_millis(600000);
  immunizer::effector::sign(d, key);
  return d;
}

EffectorConfig config(int port) {
  EffectorConfig c;
  c.app = "shop";
  c.instance = "i1";
  c.execute_address = "127.0.0.1:" + std::to_string(port);
  c.directive_public_keys = {kKey.public_pem()};
  const auto tls = test_pki().tls(immunizer::common::Role::kEffector, "shop");
  c.tls_ca_file = tls.ca_file;
  c.tls_cert_file = tls.cert_file;
  c.tls_key_file = tls.key_file;
  c.backoff_initial = 20ms;
  c.backoff_max = 200ms;
  c.connect_timeout = 500ms;
  c.resync_window = 5s;
  return c;
}

// allows() never waits on anything; each call is bounded even while execute is down.
void expect_fast_allows(const Effector& e, const PrincipalView& p, bool expected) {
  for (int i = 0; i < 1000; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = e.allows(p, "http.request");
    ASSERT_LT(std::chrono::steady_clock::now() - t0, kNeverBlocks);
    ASSERT_EQ(ok, expected);
  }
}

struct Principal {  // any struct with user/session/ip converts (like sensor::Principal)
  std::string user, session, ip;
};

TEST(Effector, HelloApplyAckAndRevoke) {
  FakeExecute svc;
  Server server(svc);
  auto e = Effector::create(config(server.port()));
  e->start();
  ASSERT_TRUE(eventually([&] { return e->connected() && svc.hellos() == 1; }));
  EXPECT_EQ(svc.hello(0).app(), "shop");
  EXPECT_EQ(svc.hello(0).instance(), "i1");

  const Principal p{"alice", "s1", "10.1.1.1"};
  EXPECT_TRUE(e->allows(p, "http.request"));
  const auto d = block(PRINCIPAL_FIELD_IP, "10.1.1.1");
  const int64_t before = unix_ns();
  svc.push(d);
  ASSERT_TRUE(eventually([&] { return !e->allows(p, "http.request"); }));
  ASSERT_TRUE(eventually([&] { return svc.ack(d.id()).has_value(); }));
  const auto ack = *svc.ack(d.id());
  EXPECT_TRUE(ack.applied());
  EXPECT_GE(ack.applied_unix_nanos(), before);
  EXPECT_TRUE(e->allows(Principal{"alice", "s1", "10.1.1.2"}, "http.request"));

  Directive revoke;
  revoke.set_id("rev-1");
  revoke.set_revoke(true);
  revoke.set_issued_unix_nanos(unix_ns());
  revoke.mutable_action()->set_id(d.action().id());
  immunizer::effector::sign(revoke, kKey);
  svc.push(revoke);
  ASSERT_TRUE(eventually([&] { return e->allows(p, "http.request"); }));
  ASSERT_TRUE(eventually([&] { return e->stats().revoked == 1; }));
  const auto st = e->stats();
  EXPECT_EQ(st.applied, 1u);
  EXPECT_GE(st.denied, 1u);
  e->stop();
}

TEST(Effector, RejectsForgedTamperedExpiredAndReplayedOverTheWire) {
  FakeExecute svc;
  Server server(svc);
  prometheus::Registry reg;
  auto e = Effector::create(config(server.port()));
  e->bind_metrics(reg);
  e->start();
  ASSERT_TRUE(eventually([&] { return e->connected(); }));

  Directive forged = block(PRINCIPAL_FIELD_USER, "victim1", key_of(1));
  auto tampered = block(PRINCIPAL_FIELD_USER, "victim2");
  tampered.mutable_action()->set_target_value("victim3");
  Directive expired = block(PRINCIPAL_FIELD_USER, "victim4");
  expired.set_expires_unix_nanos(unix_ns() - 1'000'000'000);
  immunizer::effector::sign(expired, kKey);
  Directive unsigned_d = block(PRINCIPAL_FIELD_USER, "victim5");
  unsigned_d.clear_signature();
  Directive good = block(PRINCIPAL_FIELD_USER, "mallory");
  auto replay = block(PRINCIPAL_FIELD_USER, "victim6");
  replay.set_id(good.id());  // reuses an id already applied
  immunizer::effector::sign(replay, kKey);

  for (const Directive* d : {&forged, &tampered, &expired, &unsigned_d, &good}) svc.push(*d, false);
  ASSERT_TRUE(eventually([&] { return svc.ack(good.id()).has_value(); }));
  svc.push(replay, false);
  ASSERT_TRUE(eventually([&] { return e->stats().rejected_replay == 1; }))
      << "replay " << e->stats().rejected_replay << " dirs " << e->stats().directives
      << " connects " << e->stats().connects;

  for (const Directive* d : {&forged, &tampered, &expired, &unsigned_d}) {
    auto a = svc.ack(d->id());
    ASSERT_TRUE(a.has_value()) << d->id();
    EXPECT_FALSE(a->applied()) << d->id();
  }
  EXPECT_NE(svc.ack(forged.id())->reason().find("rejected_signature"), std::string::npos);
  EXPECT_NE(svc.ack(expired.id())->reason().find("rejected_expired"), std::string::npos);
  for (const char* v : {"victim1", "victim2", "victim3", "victim4", "victim5", "victim6"})
    EXPECT_TRUE(e->allows(Principal{v, "", ""}, "x")) << v;
  EXPECT_FALSE(e->allows(Principal{"mallory", "", ""}, "x"));

  const auto st = e->stats();
  EXPECT_EQ(st.rejected_signature, 3u);
  EXPECT_EQ(st.rejected_expired, 1u);
  EXPECT_EQ(st.rejected_replay, 1u);
  EXPECT_EQ(st.applied, 1u);
  double sig = -1, denied = -1;
  for (const auto& fam : reg.Collect())
    for (const auto& m : fam.metric) {
      std::map<std::string, std::string> l;
      for (const auto& x : m.label) l[x.name] = x.value;
      if (fam.name == "immunizer_effector_directives_total" && l["result"] == "rejected_signature")
        sig = m.counter.value;
      if (fam.name == "immunizer_effector_denied_total" && l["app"] == "shop")
        denied = m.counter.value;
    }
  EXPECT_EQ(sig, 3);
  EXPECT_EQ(denied, 1);
  e->stop();
}

TEST(Effector, ExecuteDownFailOpenKeepsKnownDirectivesAndRecovers) {
  FakeExecute svc;
  auto server = std::make_unique<Server>(svc);
  const int port = server->port();
  auto e = Effector::create(config(port));
  e->start();
  ASSERT_TRUE(eventually([&] { return e->connected(); }));
  const auto d = block(PRINCIPAL_FIELD_USER, "mallory");
  svc.push(d);
  ASSERT_TRUE(eventually([&] { return !e->allows(Principal{"mallory", "", ""}, "x"); }));

  server->stop();  // execute goes down
  ASSERT_TRUE(eventually([&] { return !e->connected(); }));
  expect_fast_allows(*e, Principal{"alice", "", ""}, true);  // fail-open: unknown principals pass
  expect_fast_allows(*e, Principal{"mallory", "", ""}, false);  // known directive still enforced

  server = std::make_unique<Server>(svc, port);  // back, replays the active set
  ASSERT_TRUE(eventually([&] { return e->connected() && e->stats().connects >= 2; }));
  ASSERT_TRUE(eventually([&] { return e->stats().duplicates >= 1; }));
  EXPECT_FALSE(e->allows(Principal{"mallory", "", ""}, "x"));
  e->stop();
}

TEST(Effector, ExecuteDownFailClosedDeniesUntilConnected) {
  const int port = dead_port();
  auto cfg = config(port);
  cfg.fail_closed = true;
  auto e = Effector::create(cfg);
  e->start();
  expect_fast_allows(*e, Principal{"alice", "", ""}, false);
  EXPECT_FALSE(e->connected());
  ASSERT_TRUE(eventually([&] { return e->stats().connect_failures >= 1; }));

  FakeExecute svc;
  Server server(svc, port);
  ASSERT_TRUE(eventually([&] { return e->connected(); }));
  EXPECT_TRUE(e->allows(Principal{"alice", "", ""}, "x"));
  e->stop();
}

// Two blocks in force; execute goes down and, meanwhile, lifts one of them; it comes back and
// replays the other. The effector must drop the lifted one and keep enforcing the other.
void revoked_while_away(bool replay_marker, std::chrono::milliseconds resync_window,
                        std::chrono::milliseconds deadline) {
  FakeExecute svc;
  svc.send_replay_marker(replay_marker);
  auto server = std::make_unique<Server>(svc);
  const int port = server->port();
  auto cfg = config(port);
  cfg.resync_window = resync_window;
  auto e = Effector::create(cfg);
  e->start();
  ASSERT_TRUE(eventually([&] { return e->connected(); }));
  const auto keep = block(PRINCIPAL_FIELD_USER, "keep");
  const auto lifted = block(PRINCIPAL_FIELD_USER, "lifted");
  svc.push(keep);
  svc.push(lifted);
  ASSERT_TRUE(eventually([&] { return e->stats().active_actions == 2; }));
  EXPECT_EQ(e->stats().stale_actions, 0u);  // the first connect's resync dropped nothing

  server->stop();
  ASSERT_TRUE(eventually([&] { return !e->connected(); }));
  EXPECT_FALSE(e->allows(Principal{"lifted", "", ""}, "x"));  // still held while away
  svc.forget(lifted.action().id());  // revoked on execute while this app was away
  server = std::make_unique<Server>(svc, port);
  ASSERT_TRUE(eventually([&] { return e->stats().stale_actions == 1; }, deadline))
      << "connects " << e->stats().connects << " dup " << e->stats().duplicates << " active "
      << e->stats().active_actions << " connected " << e->connected();
  EXPECT_TRUE(e->allows(Principal{"lifted", "", ""}, "x"));
  EXPECT_FALSE(e->allows(Principal{"keep", "", ""}, "x"));
  EXPECT_EQ(e->stats().active_actions, 1u);
  e->stop();
}

// An execute without the end-of-replay marker: the resync window decides.
TEST(Effector, ActionsRevokedWhileDisconnectedAreDroppedAfterResync) {
  revoked_while_away(false, 300ms, 20s);
}

// With the end-of-replay marker the effector drops what execute revoked meanwhile at once,
// not after its (here very long) resync window.
TEST(Effector, EndOfReplayDropsRevokedActionsAtOnce) { revoked_while_away(true, 600s, 10s); }

// Issue 11, item 6: execute's replay of many active directives arrives in signed batches
// (one Ed25519 verification per batch); each directive is acknowledged on its own, and a batch
// altered in transit falls back to each directive's own signature.
void replay_in_batches(bool tamper) {
  FakeExecute svc;
  svc.replay_in_batches(true, tamper);
  std::vector<Directive> ds;
  for (int i = 0; i < 600; ++i) {
    ds.push_back(block(PRINCIPAL_FIELD_IP,
                       "10.9." + std::to_string(i / 256) + "." + std::to_string(i % 256)));
    svc.activate(ds.back());
  }
  Server server(svc);
  auto e = Effector::create(config(server.port()));
  e->start();
  ASSERT_TRUE(eventually([&] { return svc.acks() == 600; })) << svc.acks() << " acks";
  const auto caps = svc.hello(0).capabilities();
  EXPECT_NE(std::find(caps.begin(), caps.end(), "DIRECTIVE_BATCH"), caps.end());
  const auto s = e->stats();
  EXPECT_EQ(s.batches, 3u);  // 256 + 256 + 88
  EXPECT_EQ(s.batches_unverified, tamper ? 3u : 0u);
  EXPECT_EQ(s.signatures_verified, tamper ? 3u + 600u : 3u);
  EXPECT_EQ(s.applied, tamper ? 597u : 600u);
  EXPECT_EQ(s.rejected_signature, tamper ? 3u : 0u);
  size_t refused = 0;
  for (size_t i = 0; i < ds.size(); ++i) {
    const auto ack = svc.ack(ds[i].id());
    ASSERT_TRUE(ack.has_value()) << i;
    if (!ack->applied()) {
      ++refused;
      EXPECT_EQ(ack->reason(), "rejected_signature: bad signature");
    }
    // Enforced exactly when acknowledged as applied.
    EXPECT_EQ(e->allows(PrincipalView("", "", ds[i].action().target_value()), "x"), !ack->applied())
        << i;
  }
  EXPECT_EQ(refused, tamper ? 3u : 0u);
  EXPECT_TRUE(e->allows(PrincipalView("", "", "192.0.2.99"), "x"));  // the altered target
  e->stop();
}

TEST(Effector, ReplayArrivesInBatchesVerifiedOnceEach) { replay_in_batches(false); }
TEST(Effector, ABatchAlteredInTransitFallsBackToEachSignature) { replay_in_batches(true); }

// Issue 11, item 6: a new block that execute queues behind a long replay is enforced before
// the replay's remaining batches are handled (the effector reads the stream ahead), and a
// replayed copy of an action older than its live directive does not replace it.
TEST(Effector, ALiveDirectiveQueuedBehindAReplayIsHandledBeforeItsRest) {
  FakeExecute svc;
  svc.replay_in_batches(true);
  constexpr int kReplay = 40 * 256;  // 40 batches: tens of ms to handle, far more than to read
  std::vector<Directive> ds;
  for (int i = 0; i < kReplay; ++i) {
    ds.push_back(block(PRINCIPAL_FIELD_IP,
                       "10.8." + std::to_string(i / 256) + "." + std::to_string(i % 256)));
    svc.activate(ds.back());
  }
  // The fake replays by action id: `last` is the replay's last directive.
  const Directive last = *std::max_element(ds.begin(), ds.end(), [](const auto& a, const auto& b) {
    return a.action().id() < b.action().id();
  });
  // A live directive re-issues that action (a longer TTL, issued later): the replayed copy,
  // older, must not replace it when handled after it.
  Directive renewed = last;
  renewed.set_id("dir-renewed");
  renewed.set_issued_unix_nanos(unix_ns() + 1'000'000);
  renewed.mutable_action()->set_ttl_millis(1'200'000);
  immunizer::effector::sign(renewed, kKey);
  const Directive live = block(PRINCIPAL_FIELD_IP, "192.0.2.55");
  svc.push(renewed, false);
  svc.push(live, false);  // queued behind the replay, as execute queues it
  Server server(svc);
  auto e = Effector::create(config(server.port()));
  e->start();
  ASSERT_TRUE(eventually([&] { return svc.acks() == kReplay + 2; }, 60s)) << svc.acks();
  const auto order = svc.ack_order();
  const auto pos = [&](const std::string& id) {
    return std::find(order.begin(), order.end(), id) - order.begin();
  };
  // Before the last replayed directive: not after the whole replay, as in the stream's order.
  EXPECT_LT(pos(live.id()), pos(last.id()));
  EXPECT_LT(pos(renewed.id()), pos(last.id()));
  EXPECT_TRUE(svc.ack(live.id())->applied());
  EXPECT_FALSE(e->allows(PrincipalView("", "", "192.0.2.55"), "x"));
  const auto replayed_copy = svc.ack(last.id());
  ASSERT_TRUE(replayed_copy.has_value());
  EXPECT_EQ(replayed_copy->reason(), "duplicate: superseded by a newer directive");
  EXPECT_EQ(e->stats().applied, static_cast<uint64_t>(kReplay + 1));  // the copy: a duplicate
  e->stop();
}

TEST(Effector, ConfigurationErrors) {
  EffectorConfig c;
  EXPECT_THROW(Effector::create(c), std::invalid_argument);  // no directive public key
  c.directive_public_keys = {kKey.public_pem()};
  EXPECT_THROW(Effector::create(c), std::invalid_argument);  // mutual TLS by default: no files
  c.tls = "plaintext";
  EXPECT_THROW(Effector::create(c), std::invalid_argument);  // only mtls or none
  c.tls = "none";
  EXPECT_NO_THROW(Effector::create(c));  // explicit plaintext (warned)
  c.directive_public_keys = {"not a key"};
  EXPECT_THROW(Effector::create(c), std::invalid_argument);
  c.directive_public_keys = {kKey.public_pem()};  // a private key is no public key
  c.directive_public_key_files = {test_pki().signing_key("execute")};
  EXPECT_THROW(Effector::create(c), std::invalid_argument);

  setenv("IMMUNIZER_EXECUTE_ADDRESS", "exec:7070", 1);
  setenv("IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS", "/a.pub, /b.pub", 1);
  setenv("IMMUNIZER_EFFECTOR_FAIL_CLOSED", "true", 1);
  setenv("IMMUNIZER_EFFECTOR_TLS_CERT_FILE", "/c.crt", 1);
  auto e = EffectorConfig::from_env();
  EXPECT_EQ(e.execute_address, "exec:7070");
  EXPECT_EQ(e.directive_public_key_files, (std::vector<std::string>{"/a.pub", "/b.pub"}));
  EXPECT_EQ(e.tls, "mtls");
  EXPECT_EQ(e.tls_cert_file, "/c.crt");
  EXPECT_TRUE(e.fail_closed);
  setenv("IMMUNIZER_EFFECTOR_FAIL_CLOSED", "maybe", 1);
  EXPECT_THROW(EffectorConfig::from_env(), std::invalid_argument);
  unsetenv("IMMUNIZER_EFFECTOR_FAIL_CLOSED");
  // The shared HMAC key of old releases is refused by name, not silently ignored.
  setenv("IMMUNIZER_SECURITY_SIGNING_KEY", "s", 1);
  EXPECT_THROW(EffectorConfig::from_env(), std::invalid_argument);
  unsetenv("IMMUNIZER_SECURITY_SIGNING_KEY");
  unsetenv("IMMUNIZER_EXECUTE_ADDRESS");
  unsetenv("IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS");
  unsetenv("IMMUNIZER_EFFECTOR_TLS_CERT_FILE");
}

// The effector's environment is as strict as the sensor's: whole decimal numbers only, and a
// misspelled IMMUNIZER_EFFECTOR_* variable is refused by name with a suggestion.
TEST(EffectorConfig, EnvironmentIsStrict) {
  setenv("IMMUNIZER_EFFECTOR_CONNECT_TIMEOUT_MS", "2500", 1);
  EXPECT_EQ(EffectorConfig::from_env().connect_timeout, 2500ms);
  for (const char* bad : {"0x10", " 5000", "+5000", "5000ms", "-1", "86400001"}) {
    setenv("IMMUNIZER_EFFECTOR_CONNECT_TIMEOUT_MS", bad, 1);
    EXPECT_THROW(EffectorConfig::from_env(), std::invalid_argument) << "'" << bad << "'";
  }
  unsetenv("IMMUNIZER_EFFECTOR_CONNECT_TIMEOUT_MS");
  setenv("IMMUNIZER_EFFECTOR_FAIL_CLOSSED", "true", 1);
  try {
    EffectorConfig::from_env();
    ADD_FAILURE() << "a misspelled variable was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("unknown environment variable IMMUNIZER_EFFECTOR_FAIL_CLOSSED"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("did you mean IMMUNIZER_EFFECTOR_FAIL_CLOSED?"), std::string::npos) << what;
  }
  unsetenv("IMMUNIZER_EFFECTOR_FAIL_CLOSSED");
  setenv("IMMUNIZER_SENSOR_SAMPLE_RATE", "0.5", 1);  // the sensor's: not the effector's business
  EXPECT_NO_THROW(EffectorConfig::from_env());
  unsetenv("IMMUNIZER_SENSOR_SAMPLE_RATE");
}

// The effector checks execute's certificate: a server whose certificate comes from another CA
// (a network peer posing as execute) never gets a stream, so it can push nothing.
TEST(Effector, RefusesAnExecuteWithoutACertificateFromItsCa) {
  immunizer::tools::pki::Layout rogue{test_pki().dir + "-rogue"};
  immunizer::tools::pki::init(rogue, {.effectors = {}, .operators = {}});
  FakeExecute svc;
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0",
                     immunizer::common::server_credentials(
                         rogue.tls(immunizer::common::Role::kExecute, "execute"), "rogue"),
                     &port);
  b.RegisterService(&svc);
  auto server = b.BuildAndStart();
  ASSERT_NE(port, 0);
  auto e = Effector::create(config(port));
  e->start();
  std::this_thread::sleep_for(1500ms);
  EXPECT_FALSE(e->connected());
  EXPECT_EQ(svc.hellos(), 0u);
  EXPECT_GE(e->stats().connect_failures, 1u);
  e->stop();
  svc.close_streams();
  server->Shutdown(std::chrono::system_clock::now() + 1s);
  std::filesystem::remove_all(rogue.dir);
}

}  // namespace
