// Effector under a replay (issue 11, item 6): execute replays every active directive when an
// effector connects, so a plan of 10,000 actions arrives as 10,000 directives at once. Each is
// signed as execute signs them; by default they are grouped as execute's replay groups them
// (DirectiveBatch of kReplayBatch, each batch signed once) and applied through
// Effector::apply(batch), verified exactly as a batch from the stream; --per-directive applies
// them one by one (one Ed25519 verification each: execute's replay to an older effector).
// Prints:
//   - cold replay: a fresh effector applies them all;
//   - warm replay: the same directives again (a reconnect: duplicates, already verified);
//   - a new block during a cold replay, applied from another thread halfway through: the time
//     from its apply() call until allows() denies the principal;
//   - a new block queued behind the replay (the stream's order: execute queues it after the
//     replay): from halfway through the replay until allows() denies it;
//   - the longest allows() seen by an app thread while the replay was applied;
//   - over a real stream (a stand-in execute on 127.0.0.1, plaintext gRPC): the replay in
//     batches, and a new block issued when half of the replay is written, queued behind the
//     rest as execute queues it: from its issue until allows() denies it (the effector reads
//     ahead and handles a live directive before the replay's remaining batches).
// Targets: replay < 1 s, new block < 100 ms. A plain program: figures, never pass/fail.
//   effector_replay_bench [--directives N] [--rounds R] [--per-directive]
#include <grpcpp/grpcpp.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/effector/effector.hpp"
#include "immunizer/v1/control.grpc.pb.h"
#include "immunizer/v1/control.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using immunizer::effector::Effector;
using immunizer::effector::PrincipalView;

double thread_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int64_t unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const immunizer::crypto::SigningKey& execute_key() {
  static const auto k =
      immunizer::crypto::SigningKey::from_pem(immunizer::crypto::generate_ed25519().private_pem);
  return k;
}

std::shared_ptr<Effector> make_effector() {
  immunizer::effector::EffectorConfig c;
  c.app = "bench";
  c.directive_public_keys = {execute_key().public_pem()};
  c.tls = "none";  // execute is never there: directives come through apply()
  c.execute_address = "127.0.0.1:1";
  auto e = Effector::create(c);
  e->start();  // the housekeeping thread runs as in an app (expiry, folding changes)
  return e;
}

std::string ip_of(int i) {
  return "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." +
         std::to_string(i & 255);
}

// What execute sends: a signed directive per action, mostly IPs, some users and sessions.
immunizer::v1::Directive block(const std::string& id, int i, int64_t issued) {
  immunizer::v1::Directive d;
  d.set_id("dir-" + id);
  d.set_issued_unix_nanos(issued);
  d.set_plan_id("plan-bench");
  auto* a = d.mutable_action();
  a->set_id("act-" + id);
  a->set_kind(immunizer::v1::ACTION_BLOCK_PRINCIPAL);
  const auto field = i % 5 == 0   ? immunizer::v1::PRINCIPAL_FIELD_USER
                     : i % 5 == 1 ? immunizer::v1::PRINCIPAL_FIELD_SESSION
                                  : immunizer::v1::PRINCIPAL_FIELD_IP;
  a->set_target_field(field);
  a->set_target_value(ip_of(i));
  a->set_ttl_millis(3'600'000);
  immunizer::effector::sign(d, execute_key());
  return d;
}

PrincipalView principal_of(int i, const std::string& v) {
  return i % 5 == 0   ? PrincipalView(v, "", "")
         : i % 5 == 1 ? PrincipalView("", v, "")
                      : PrincipalView("", "", v);
}

// The replay as execute sends it: runs of kReplayBatch, each signed once.
std::vector<immunizer::v1::DirectiveBatch> batches_of(
    const std::vector<immunizer::v1::Directive>& replay) {
  std::vector<immunizer::v1::DirectiveBatch> out;
  for (size_t i = 0; i < replay.size(); i += immunizer::effector::kReplayBatch) {
    auto& b = out.emplace_back();
    for (size_t k = i; k < std::min(replay.size(), i + immunizer::effector::kReplayBatch); ++k)
      *b.add_directives() = replay[k];
    immunizer::effector::sign(b, execute_key());
  }
  return out;
}

struct Round {
  double cold_ms = 0, cold_cpu_ms = 0, warm_ms = 0, warm_cpu_ms = 0, new_block_ms = 0,
         apply_new_ms = 0, behind_ms = 0, max_allows_us = 0;
  uint64_t verifications = 0;
  size_t active = 0;
  uint64_t rejected = 0;
  uint64_t allows_calls = 0;
  double allows_miss_ns = 0, allows_hit_ns = 0;  // CPU per call with the replay active
};

// CPU ns per allows() call for `p`, over `calls` calls.
double allows_cost_ns(const Effector& e, const PrincipalView& p, int calls) {
  const double c0 = thread_cpu_ms();
  int denied = 0;
  for (int i = 0; i < calls; ++i) denied += !e.allows(p, "http.request");
  const double ms = thread_cpu_ms() - c0;
  if (denied != 0 && denied != calls) std::fprintf(stderr, "BUG: allows() changed its answer\n");
  return ms * 1e6 / calls;
}

immunizer::v1::Directive fresh_block(const std::string& id, const std::string& ip) {
  auto d = block(id, 2, unix_ns());
  d.mutable_action()->set_target_value(ip);
  immunizer::effector::sign(d, execute_key());
  return d;
}

// Applies the replay (batched or one by one), counting applied directives in `applied`;
// `at_half` runs once when half of them are in.
template <class AtHalf>
void apply_replay(Effector& e, const std::vector<immunizer::v1::Directive>& replay,
                  const std::vector<immunizer::v1::DirectiveBatch>* batches,
                  std::atomic<int>& applied, AtHalf&& at_half) {
  const int n = static_cast<int>(replay.size());
  bool half = false;
  auto step = [&](int k) {
    applied.fetch_add(k, std::memory_order_release);
    if (!half && applied.load(std::memory_order_relaxed) >= n / 2) {
      half = true;
      at_half();
    }
  };
  if (batches) {
    for (const auto& b : *batches) {
      e.apply(b);
      step(b.directives_size());
    }
  } else {
    for (const auto& d : replay) {
      e.apply(d);
      step(1);
    }
  }
}

Round run_round(const std::vector<immunizer::v1::Directive>& replay,
                const std::vector<immunizer::v1::DirectiveBatch>* batches, int round) {
  Round r;
  const int n = static_cast<int>(replay.size());
  auto e = make_effector();
  // New blocks (principals no directive of the replay names), signed before the clock runs:
  // one from another thread, one queued behind the replay.
  const std::string fresh_ip = ip_of(2) + "-new", behind_ip = ip_of(2) + "-behind";
  const auto fresh_d = fresh_block("new-" + std::to_string(round), fresh_ip);
  const auto behind_d = fresh_block("behind-" + std::to_string(round), behind_ip);

  std::atomic<int> applied{0};
  std::atomic<bool> done{false};
  std::atomic<int64_t> max_allows_ns{0};
  // An app thread calling allows() all along (bursts of 100 calls, 100 us apart, so that it
  // does not take a core from the replay): the longest single call, preemption included.
  std::atomic<uint64_t> allows_calls{0};
  std::thread app([&] {
    const std::string probe = ip_of(7);
    while (!done.load(std::memory_order_relaxed)) {
      for (int k = 0; k < 100; ++k) {
        const auto t0 = Clock::now();
        (void)e->allows(PrincipalView("", "", probe), "http.request");
        const int64_t ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        if (ns > max_allows_ns.load(std::memory_order_relaxed))
          max_allows_ns.store(ns, std::memory_order_relaxed);
      }
      allows_calls.fetch_add(100, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  // The operator's block, halfway through the replay, from another thread.
  std::thread op([&] {
    while (applied.load(std::memory_order_acquire) < n / 2)
      std::this_thread::sleep_for(std::chrono::microseconds(20));  // not a core of the replay's
    const auto t0 = Clock::now();
    std::string why;
    if (!e->apply(fresh_d, &why)) std::fprintf(stderr, "new block refused: %s\n", why.c_str());
    r.apply_new_ms = ms_since(t0);
    while (e->allows(PrincipalView("", "", fresh_ip), "http.request")) std::this_thread::yield();
    r.new_block_ms = ms_since(t0);
  });
  const auto t0 = Clock::now();
  const double c0 = thread_cpu_ms();
  Clock::time_point half;
  apply_replay(*e, replay, batches, applied, [&] { half = Clock::now(); });
  r.cold_ms = ms_since(t0);
  r.cold_cpu_ms = thread_cpu_ms() - c0;
  // Queued behind the replay's second half: applied once the replay is through.
  e->apply(behind_d);
  if (e->allows(PrincipalView("", "", behind_ip), "http.request"))
    std::fprintf(stderr, "BUG: the block behind the replay is not enforced\n");
  r.behind_ms = ms_since(half);
  op.join();
  r.verifications = e->stats().signatures_verified;
  const auto t1 = Clock::now();
  const double c1 = thread_cpu_ms();
  std::atomic<int> again{0};  // a reconnect: execute replays the same set
  apply_replay(*e, replay, batches, again, [] {});
  r.warm_ms = ms_since(t1);
  r.warm_cpu_ms = thread_cpu_ms() - c1;
  done = true;
  app.join();
  r.max_allows_us = static_cast<double>(max_allows_ns.load()) / 1000.0;
  r.allows_calls = allows_calls.load();
  // After a housekeeping tick (200 ms), as an app's thread would see it a moment later.
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  const std::string miss = "192.0.2.77", hit_value = ip_of(7);
  r.allows_miss_ns = allows_cost_ns(*e, PrincipalView("alice", "s-123", miss), 2'000'000);
  r.allows_hit_ns = allows_cost_ns(*e, principal_of(7, hit_value), 2'000'000);
  const auto s = e->stats();
  r.active = s.active_actions;
  r.rejected = s.rejected();
  // Every replayed principal is denied, others are not.
  for (int i = 0; i < n; i += std::max(1, n / 100))
    if (e->allows(principal_of(i, ip_of(i)), "x"))
      std::fprintf(stderr, "BUG: directive %d is not enforced\n", i);
  if (!e->allows(PrincipalView("", "", "192.0.2.1"), "x"))
    std::fprintf(stderr, "BUG: an unlisted principal is denied\n");
  return r;
}

// A stand-in for execute: on Connect, the replay's batches, its end marker, then one live
// directive; `issued` is set when half of the batches are written (the live directive is
// issued then and queued behind the rest, as execute's link queues it).
class ReplayingExecute final : public immunizer::v1::EffectorControl::Service {
 public:
  ReplayingExecute(const std::vector<immunizer::v1::DirectiveBatch>& batches,
                   immunizer::v1::Directive live)
      : batches_(batches), live_(std::move(live)) {}
  grpc::Status Connect(grpc::ServerContext* ctx,
                       grpc::ServerReaderWriter<immunizer::v1::ExecuteMessage,
                                                immunizer::v1::EffectorMessage>* stream) override {
    immunizer::v1::EffectorMessage in;
    if (!stream->Read(&in)) return grpc::Status::CANCELLED;
    const auto t0 = Clock::now();
    std::thread reader([&] {
      immunizer::v1::EffectorMessage m;
      while (stream->Read(&m))
        if (m.has_ack()) acks.fetch_add(1, std::memory_order_release);
    });
    for (size_t i = 0; i < batches_.size(); ++i) {
      if (i == batches_.size() / 2) issued.store(Clock::now().time_since_epoch().count());
      immunizer::v1::ExecuteMessage m;
      *m.mutable_batch() = batches_[i];
      stream->Write(m);
    }
    immunizer::v1::ExecuteMessage end;
    end.mutable_replay_complete()->set_directives(0);
    stream->Write(end);
    immunizer::v1::ExecuteMessage live;
    *live.mutable_directive() = live_;
    stream->Write(live);
    written_ms = ms_since(t0);
    while (!ctx->IsCancelled() && !done.load())
      std::this_thread::sleep_for(Clock::duration(1'000'000));
    ctx->TryCancel();
    reader.join();
    return grpc::Status::OK;
  }
  std::atomic<int64_t> issued{0};
  std::atomic<int> acks{0};
  std::atomic<bool> done{false};
  double written_ms = 0;

 private:
  const std::vector<immunizer::v1::DirectiveBatch>& batches_;
  immunizer::v1::Directive live_;
};

struct StreamRound {
  double replay_ms = 0, live_ms = 0;
  int acks_at_live = 0;  // directives acknowledged when the live block was enforced
};

StreamRound run_stream_round(const std::vector<immunizer::v1::DirectiveBatch>& batches, int n,
                             int round) {
  StreamRound r;
  const std::string live_ip = ip_of(2) + "-live";
  ReplayingExecute svc(batches, fresh_block("live-" + std::to_string(round), live_ip));
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&svc);
  auto server = b.BuildAndStart();
  immunizer::effector::EffectorConfig c;
  c.app = "bench";
  c.directive_public_keys = {execute_key().public_pem()};
  c.tls = "none";
  c.execute_address = "127.0.0.1:" + std::to_string(port);
  auto e = Effector::create(c);
  const auto t0 = Clock::now();
  e->start();
  while (svc.issued.load() == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
  while (e->allows(PrincipalView("", "", live_ip), "http.request"))
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  r.live_ms =
      static_cast<double>(Clock::now().time_since_epoch().count() - svc.issued.load()) / 1e6;
  r.acks_at_live = svc.acks.load();
  while (svc.acks.load() < n + 1 && ms_since(t0) < 30'000)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  r.replay_ms = ms_since(t0);
  svc.done = true;
  e->stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int n = 10000, rounds = 3;
  bool per_directive = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--per-directive") == 0) per_directive = true;
    if (i + 1 >= argc) continue;
    if (std::strcmp(argv[i], "--directives") == 0) n = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::max(1, std::atoi(argv[i + 1]));
  }
  const int64_t issued = unix_ns();
  std::vector<immunizer::v1::Directive> replay;
  replay.reserve(static_cast<size_t>(n));
  const auto ts = Clock::now();
  for (int i = 0; i < n; ++i) replay.push_back(block(std::to_string(i), i, issued));
  const auto batches = batches_of(replay);
  std::printf(
      "signed %d directives as execute does in %.0f ms, and %zu batches of up to %zu (not "
      "counted below); applied %s\n",
      n, ms_since(ts), batches.size(), immunizer::effector::kReplayBatch,
      per_directive ? "one by one (--per-directive)" : "in batches, as execute replays them");
  std::vector<double> cold, cold_cpu, warm, fresh, behind, max_allows;
  for (int k = 0; k < rounds; ++k) {
    const Round r = run_round(replay, per_directive ? nullptr : &batches, k);
    std::printf(
        "round %d: cold replay %.0f ms wall, %.0f ms CPU (%.1f us CPU/directive, %llu Ed25519 "
        "verifications); warm replay %.0f ms wall, %.0f ms CPU; new block during the replay "
        "denied after %.3f ms (its apply %.3f ms), behind the replay's second half %.1f ms; "
        "longest of %llu allows() %.1f us; allows() with the replay active: %.1f ns CPU "
        "(principal not listed), %.1f ns (denied); active %zu, rejected %llu\n",
        k + 1, r.cold_ms, r.cold_cpu_ms, r.cold_cpu_ms * 1000.0 / n,
        static_cast<unsigned long long>(r.verifications), r.warm_ms, r.warm_cpu_ms, r.new_block_ms,
        r.apply_new_ms, r.behind_ms, static_cast<unsigned long long>(r.allows_calls),
        r.max_allows_us, r.allows_miss_ns, r.allows_hit_ns, r.active,
        static_cast<unsigned long long>(r.rejected));
    cold.push_back(r.cold_ms);
    cold_cpu.push_back(r.cold_cpu_ms);
    warm.push_back(r.warm_ms);
    fresh.push_back(r.new_block_ms);
    behind.push_back(r.behind_ms);
    max_allows.push_back(r.max_allows_us);
  }
  std::vector<double> stream_replay, stream_live;
  for (int k = 0; k < rounds; ++k) {
    const StreamRound r = run_stream_round(batches, n, k);
    std::printf(
        "stream round %d: replay of %d in %zu batches acknowledged in %.0f ms (connect "
        "included); a block issued halfway through the replay, queued behind it, denied after "
        "%.1f ms (%d of %d directives acknowledged by then)\n",
        k + 1, n, batches.size(), r.replay_ms, r.live_ms, r.acks_at_live, n + 1);
    stream_replay.push_back(r.replay_ms);
    stream_live.push_back(r.live_ms);
  }
  std::printf(
      "over a stream, median of %d: replay %.0f ms, block queued behind the replay's second "
      "half denied after %.1f ms (target < 100)\n",
      rounds, median(stream_replay), median(stream_live));
  std::printf(
      "effector replay of %d directives (%s), median of %d: cold %.0f ms wall / %.0f ms CPU "
      "(target < 1000), warm %.0f ms, new block during the replay %.3f ms from another "
      "thread, %.1f ms behind the replay's second half (target < 100), longest allows() "
      "%.1f us\n",
      n, per_directive ? "one by one" : "batched", rounds, median(cold), median(cold_cpu),
      median(warm), median(fresh), median(behind), median(max_allows));
  return 0;
}
