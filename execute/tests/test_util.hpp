// Helpers shared by the execute tests: plans, a recording effector link, metric readers.
#pragma once

#include <prometheus/registry.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "immunizer/common/grpc_tls.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/execute/dispatcher.hpp"
#include "immunizer/plan/plan_signing.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "immunizer/tools/pki.hpp"

namespace immunizer::execute::testing {

// Polls `pred` until it holds or `timeout` passes (a deadline, not a sleep-as-synchronisation).
template <class P>
bool eventually(P pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// execute's directive key pair in the tests, and the key ring effectors would trust.
inline const crypto::KeyPair& execute_key_pair() {
  static const crypto::KeyPair pair = crypto::generate_ed25519();
  return pair;
}
inline std::shared_ptr<const crypto::SigningKey> execute_key() {
  static const auto key = std::make_shared<const crypto::SigningKey>(
      crypto::SigningKey::from_pem(execute_key_pair().private_pem));
  return key;
}
inline const crypto::KeyRing& trusted_keys() {
  static const crypto::KeyRing ring = [] {
    crypto::KeyRing r;
    r.add(crypto::VerifyingKey::from_pem(execute_key_pair().public_pem));
    return r;
  }();
  return ring;
}

// A state folder made by the real PKI code once per test binary: execute's server
// certificate, operators "dashboard" and "cli", effectors "shop" (any instance) and
// "billing/b1" (one instance), and a "plan" identity (a role Operations refuses).
inline const tools::pki::Layout& test_pki() {
  // Never destroyed: the clean-up at exit reads it (a static object would be destroyed before
  // a handler registered while it was being made runs: ASan's heap-use-after-free at exit).
  static const tools::pki::Layout& l = *[] {
    auto* x = new tools::pki::Layout{(std::filesystem::temp_directory_path() /
                                      ("immunizer-execute-test-" + std::to_string(getpid())))
                                         .string()};
    tools::pki::init(*x, {.effectors = {"shop", "billing/b1"}});
    tools::pki::issue(*x, {common::Role::kPlan, "plan", {}, {}});
    std::atexit([] { std::filesystem::remove_all(test_pki().dir); });
    return x;
  }();
  return l;
}
inline common::TlsFiles client_tls(common::Role role, const std::string& name) {
  return test_pki().tls(role, name);
}

// plan's key pair in the tests (made once per test binary): test_config() trusts it.
inline const crypto::KeyPair& plan_key_pair() {
  static const crypto::KeyPair pair = crypto::generate_ed25519();
  return pair;
}
inline const crypto::SigningKey& plan_key() {
  static const crypto::SigningKey key = crypto::SigningKey::from_pem(plan_key_pair().private_pem);
  return key;
}
// `p` signed by plan's trusted key, as the plan service publishes it.
inline v1::Plan signed_plan(v1::Plan p) {
  plan::sign(p, plan_key());
  return p;
}

inline ExecuteConfig test_config() {
  ExecuteConfig c;
  c.grpc_listen = "127.0.0.1:0";
  c.plan_public_keys_pem = {plan_key_pair().public_pem};
  c.signing_key = execute_key();
  c.tls = test_pki().tls(common::Role::kExecute, "execute");
  return c;
}

inline v1::Plan block_plan(const std::string& plan_id, const std::string& action_id,
                           const std::string& session, int64_t ttl_ms, int64_t call_ts = 0,
                           v1::ActionKind kind = v1::ACTION_BLOCK_PRINCIPAL) {
  v1::Plan p;
  p.set_id(plan_id);
  p.set_alarm_id("alarm-" + plan_id);
  p.mutable_principal()->set_session(session);
  p.set_call_timestamp_unix_nanos(call_ts);
  auto* a = p.add_actions();
  a->set_id(action_id);
  a->set_kind(kind);
  a->set_target_field(v1::PRINCIPAL_FIELD_SESSION);
  a->set_target_value(session);
  a->set_ttl_millis(ttl_ms);
  if (kind == v1::ACTION_ABORT_CALL) a->set_call("http GET /x");
  return p;
}

// Records what the dispatcher pushes; can pretend to be full.
class RecordingLink final : public EffectorLink {
 public:
  bool send(const v1::Directive& d) override {
    std::lock_guard lk(mu);
    if (full) return false;
    got.push_back(d);
    return true;
  }
  bool send_batch(const v1::DirectiveBatch& b) override {
    std::lock_guard lk(mu);
    if (full) return false;
    batches.push_back(b);
    got.insert(got.end(), b.directives().begin(), b.directives().end());
    return true;
  }
  bool end_replay(uint32_t directives) override {
    std::lock_guard lk(mu);
    if (full) return false;
    replay_markers.push_back({got.size(), directives});
    return true;
  }
  void close(const std::string& reason) override {
    std::lock_guard lk(mu);
    closed = reason;
  }
  std::vector<v1::Directive> directives() {
    std::lock_guard lk(mu);
    return got;
  }
  std::mutex mu;
  std::vector<v1::Directive> got;           // every directive, alone or in a batch
  std::vector<v1::DirectiveBatch> batches;  // the batches among them
  std::vector<std::pair<size_t, uint32_t>>
      replay_markers;  // (directives received before it, its count)
  bool full = false;
  std::string closed;
};

inline std::vector<v1::ActionEvent> events(const common::FakeProducer& p,
                                           const std::string& topic) {
  std::vector<v1::ActionEvent> out;
  for (const auto& s : p.on(topic)) {
    v1::ActionEvent e;
    e.ParseFromString(s.payload);
    out.push_back(e);
  }
  return out;
}

inline std::vector<v1::ActionEvent> of_type(const std::vector<v1::ActionEvent>& ev,
                                            v1::ActionEventType t) {
  std::vector<v1::ActionEvent> out;
  for (const auto& e : ev)
    if (e.type() == t) out.push_back(e);
  return out;
}

// What read_snapshots() would return: the latest snapshot per model key on the models topic.
inline std::map<std::string, v1::ModelSnapshot> latest_snapshots(const common::FakeProducer& out,
                                                                 const std::string& topic) {
  std::map<std::string, v1::ModelSnapshot> m;
  for (const auto& s : out.on(topic)) {
    v1::ModelSnapshot snap;
    if (snap.ParseFromString(s.payload) && snap.kind() == kSnapshotKind) m[snap.model_key()] = snap;
  }
  return m;
}

// Value of a counter or gauge (summed over series matching `label`=`value`, or all).
inline double metric(prometheus::Registry& r, const std::string& name,
                     const std::string& label = "", const std::string& value = "") {
  double sum = 0;
  for (const auto& fam : r.Collect()) {
    if (fam.name != name) continue;
    for (const auto& m : fam.metric) {
      bool match = label.empty();
      for (const auto& l : m.label)
        if (l.name == label && l.value == value) match = true;
      if (!match) continue;
      sum += m.counter.value + m.gauge.value + static_cast<double>(m.histogram.sample_count);
    }
  }
  return sum;
}

}  // namespace immunizer::execute::testing
