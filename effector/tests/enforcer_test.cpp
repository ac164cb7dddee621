// The decision core with an injected clock: each action kind, TTLs, revocation, and every
// way a directive can be refused (unsigned, forged, tampered, expired, replayed, invalid).
#include "enforcer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "immunizer/effector/directive_signing.hpp"
#include "rule_index.hpp"

namespace {

using immunizer::effector::Enforcer;
using immunizer::effector::EnforcerOptions;
using immunizer::effector::Outcome;
using immunizer::effector::PrincipalView;
using namespace immunizer::v1;

constexpr int64_t kSec = 1'000'000'000;
using immunizer::crypto::SigningKey;
const SigningKey& key_of(int n) {  // 0: execute's key, 1: a key the effector does not trust
  static const SigningKey k[2] = {
      SigningKey::from_pem(immunizer::crypto::generate_ed25519().private_pem),
      SigningKey::from_pem(immunizer::crypto::generate_ed25519().private_pem)};
  return k[n];
}
const SigningKey& kKey = key_of(0);
std::shared_ptr<const immunizer::crypto::KeyRing> trusted() {
  auto r = std::make_shared<immunizer::crypto::KeyRing>();
  r->add(immunizer::crypto::VerifyingKey::from_pem(kKey.public_pem()));
  return r;
}

class EnforcerTest : public ::testing::Test {
 protected:
  std::atomic<int64_t> now_{1'700'000'000 * kSec};
  Enforcer en_{EnforcerOptions{trusted(), 30 * kSec, 1000}, [this] { return now_.load(); }};
  int seq_ = 0;

  Directive make(ActionKind kind, PrincipalField f, const std::string& value,
                 const std::string& call = "", int64_t ttl_ms = 60000) {
    Directive d;
    d.set_id("d" + std::to_string(++seq_));
    d.set_issued_unix_nanos(now_);
    auto* a = d.mutable_action();
    a->set_id("a" + std::to_string(seq_));
    a->set_kind(kind);
    a->set_target_field(f);
    a->set_target_value(value);
    a->set_call(call);
    a->set_ttl_millis(ttl_ms);
    return d;
  }
  Outcome send(Directive d, const SigningKey& key = kKey) {
    immunizer::effector::sign(d, key);
    return en_.handle(d).outcome;
  }
};

TEST_F(EnforcerTest, BlockPrincipalByEachFieldUntilTtl) {
  EXPECT_TRUE(en_.allows({"alice", "s1", "1.1.1.1"}, "http.request"));
  EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP, "1.1.1.1")), Outcome::kApplied);
  EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "mallory", "", 120000)),
            Outcome::kApplied);
  EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_SESSION, "bad-session")),
            Outcome::kApplied);
  EXPECT_EQ(en_.active(), 3u);
  EXPECT_FALSE(en_.allows({"alice", "s1", "1.1.1.1"}, "http.request"));
  EXPECT_FALSE(en_.allows({"mallory", "", ""}, "anything"));
  EXPECT_FALSE(en_.allows({"", "bad-session", ""}, "x"));
  EXPECT_TRUE(en_.allows({"alice", "s1", "2.2.2.2"}, "http.request"));
  EXPECT_TRUE(en_.allows({"", "", ""}, "http.request"));

  now_ += 61 * kSec;  // the IP and session blocks (60 s) are over; the user block (120 s) is not
  EXPECT_TRUE(en_.allows({"alice", "s1", "1.1.1.1"}, "http.request"));
  EXPECT_FALSE(en_.allows({"mallory", "", ""}, "anything"));
  EXPECT_EQ(en_.expire(), 2u);
  EXPECT_EQ(en_.active(), 1u);
}

TEST_F(EnforcerTest, WatchDeniesNothingAndEndsWithItsTtl) {
  EXPECT_FALSE(en_.watched({"", "s1", "1.1.1.1"}));
  EXPECT_EQ(send(make(ACTION_WATCH_PRINCIPAL, PRINCIPAL_FIELD_SESSION, "s1", "", 300000)),
            Outcome::kApplied);
  EXPECT_EQ(send(make(ACTION_WATCH_PRINCIPAL, PRINCIPAL_FIELD_IP_PREFIX, "198.51.100.0/24")),
            Outcome::kApplied);
  EXPECT_EQ(send(make(ACTION_WATCH_PRINCIPAL, PRINCIPAL_FIELD_SESSION, "")),
            Outcome::kRejectedInvalid);
  EXPECT_TRUE(en_.watched({"", "s1", "1.1.1.1"}));
  EXPECT_TRUE(en_.watched({"", "other", "198.51.100.7"}));
  EXPECT_FALSE(en_.watched({"s1", "s2", "1.1.1.1"}));  // a user named s1 is not session s1
  EXPECT_TRUE(en_.allows({"", "s1", "1.1.1.1"}, "http.request"));
  EXPECT_TRUE(en_.allows({"", "x", "198.51.100.7"}, "http.request"));
  // A block next to a watch: each does its own thing.
  EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_SESSION, "s1")), Outcome::kApplied);
  EXPECT_FALSE(en_.allows({"", "s1", "1.1.1.1"}, "http.request"));
  EXPECT_FALSE(en_.watched({"", "s9", "1.1.1.1"}));

  now_ += 61 * kSec;  // the prefix watch (60 s) and the block are over, the session watch not
  EXPECT_TRUE(en_.allows({"", "s1", "1.1.1.1"}, "http.request"));
  EXPECT_TRUE(en_.watched({"", "s1", "1.1.1.1"}));
  EXPECT_FALSE(en_.watched({"", "other", "198.51.100.7"}));
  now_ += 240 * kSec;
  EXPECT_FALSE(en_.watched({"", "s1", "1.1.1.1"}));
  EXPECT_EQ(en_.expire(), 3u);
  EXPECT_EQ(en_.active(), 0u);
}

TEST_F(EnforcerTest, AbortCallAndDisableCall) {
  EXPECT_EQ(send(make(ACTION_ABORT_CALL, PRINCIPAL_FIELD_USER, "bob", "checkout")),
            Outcome::kApplied);
  EXPECT_FALSE(en_.allows({"bob", "", ""}, "checkout"));
  EXPECT_TRUE(en_.allows({"bob", "", ""}, "browse"));
  EXPECT_TRUE(en_.allows({"carol", "", ""}, "checkout"));

  EXPECT_EQ(send(make(ACTION_DISABLE_CALL, PRINCIPAL_FIELD_UNSPECIFIED, "", "admin.export")),
            Outcome::kApplied);
  EXPECT_FALSE(en_.allows({"carol", "", ""}, "admin.export"));
  EXPECT_FALSE(en_.allows({}, "admin.export"));
  EXPECT_TRUE(en_.allows({}, "admin.import"));
}

TEST_F(EnforcerTest, PrefixBlockDeniesEveryAddressOfItsNetworkOnly) {
  EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP_PREFIX, "198.51.100.0/24")),
            Outcome::kApplied);
  EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP_PREFIX, "2001:db8:1:2::/64")),
            Outcome::kApplied);
  for (const char* ip : {"198.51.100.0", "198.51.100.7", "198.51.100.255", "::ffff:198.51.100.9",
                         "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"})
    EXPECT_FALSE(en_.allows({"", "s", ip}, "http.request")) << ip;
  for (const char* ip : {"198.51.101.7", "198.51.99.255", "2001:db8:1:3::1", "10.0.0.1",
                         "not-an-address", "", "198.51.100.7:80"})
    EXPECT_TRUE(en_.allows({"", "s", ip}, "http.request")) << ip;
  // A second length in the same family is matched too; a prefix abort only its call.
  EXPECT_EQ(send(make(ACTION_ABORT_CALL, PRINCIPAL_FIELD_IP_PREFIX, "10.8.0.0/16", "checkout")),
            Outcome::kApplied);
  EXPECT_FALSE(en_.allows({"", "", "10.8.200.1"}, "checkout"));
  EXPECT_TRUE(en_.allows({"", "", "10.8.200.1"}, "browse"));
  // Only canonical networks: host bits set, a bare address or garbage are refused.
  for (const char* bad : {"198.51.100.7/24", "198.51.100.0", "198.51.100.0/33", "x/24",
                          "2001:DB8:1:2::/64", "10.0.0.0/+8"})
    EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP_PREFIX, bad)),
              Outcome::kRejectedInvalid)
        << bad;
  now_ += 61 * kSec;
  EXPECT_TRUE(en_.allows({"", "", "198.51.100.7"}, "http.request"));
  EXPECT_EQ(en_.expire(), 3u);
}

TEST_F(EnforcerTest, ThrottleIsATokenBucket) {
  auto d = make(ACTION_THROTTLE_PRINCIPAL, PRINCIPAL_FIELD_IP, "9.9.9.9");
  d.mutable_action()->set_rate_per_second(2);
  d.mutable_action()->set_burst(3);
  EXPECT_EQ(send(d), Outcome::kApplied);
  int allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += en_.allows({"", "", "9.9.9.9"}, "x");
  EXPECT_EQ(allowed, 3);  // the burst
  now_ += kSec;           // two more tokens
  allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += en_.allows({"", "", "9.9.9.9"}, "x");
  EXPECT_EQ(allowed, 2);
  EXPECT_TRUE(en_.allows({"", "", "8.8.8.8"}, "x"));
}

TEST_F(EnforcerTest, RevokeLiftsAndCannotBeUndoneByReplay) {
  auto block = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "eve");
  immunizer::effector::sign(block, kKey);
  EXPECT_EQ(en_.handle(block).outcome, Outcome::kApplied);
  EXPECT_EQ(en_.handle(block).outcome, Outcome::kDuplicate);  // execute replays on reconnect
  EXPECT_FALSE(en_.allows({"eve", "", ""}, "x"));

  Directive revoke;
  revoke.set_id("r1");
  revoke.set_revoke(true);
  revoke.set_issued_unix_nanos(now_);
  revoke.mutable_action()->set_id(block.action().id());
  immunizer::effector::sign(revoke, kKey);
  EXPECT_EQ(en_.handle(revoke).outcome, Outcome::kRevoked);
  EXPECT_TRUE(en_.allows({"eve", "", ""}, "x"));

  // An attacker replaying the captured block must not re-block eve; same for a fresh
  // directive id carrying the revoked action.
  EXPECT_EQ(en_.handle(block).outcome, Outcome::kRejectedReplay);
  auto again = block;
  again.set_id("d-new");
  immunizer::effector::sign(again, kKey);
  EXPECT_EQ(en_.handle(again).outcome, Outcome::kRejectedReplay);
  EXPECT_TRUE(en_.allows({"eve", "", ""}, "x"));
  EXPECT_EQ(en_.count(Outcome::kRejectedReplay), 2u);
}

TEST_F(EnforcerTest, RejectsUnsignedForgedTamperedExpiredInvalid) {
  auto unsigned_d = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "u1");
  EXPECT_EQ(en_.handle(unsigned_d).outcome, Outcome::kRejectedSignature);

  EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "u2"), key_of(1)),
            Outcome::kRejectedSignature);

  auto tampered = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "u3");
  immunizer::effector::sign(tampered, kKey);
  tampered.mutable_action()->set_target_value("admin");
  EXPECT_EQ(en_.handle(tampered).outcome, Outcome::kRejectedSignature);

  auto expired = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "u4");
  expired.set_expires_unix_nanos(now_ - 1);
  EXPECT_EQ(send(expired), Outcome::kRejectedExpired);
  auto old_ttl = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "u5", "", 1000);
  old_ttl.set_issued_unix_nanos(now_ - 5 * kSec);
  EXPECT_EQ(send(old_ttl), Outcome::kRejectedExpired);
  auto future = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "u6");
  future.set_issued_unix_nanos(now_ + 3600 * kSec);
  EXPECT_EQ(send(future), Outcome::kRejectedExpired);

  EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_UNSPECIFIED, "u7")),
            Outcome::kRejectedInvalid);
  EXPECT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "")),
            Outcome::kRejectedInvalid);
  EXPECT_EQ(send(make(ACTION_DISABLE_CALL, PRINCIPAL_FIELD_UNSPECIFIED, "", "")),
            Outcome::kRejectedInvalid);
  EXPECT_EQ(send(make(ACTION_LOG, PRINCIPAL_FIELD_USER, "u8")), Outcome::kIgnored);

  // A reused id with different content is a replay, whatever the signature says.
  auto first = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "u9");
  EXPECT_EQ(send(first), Outcome::kApplied);
  auto reuse = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "u10");
  reuse.set_id(first.id());
  EXPECT_EQ(send(reuse), Outcome::kRejectedReplay);

  EXPECT_EQ(en_.count(Outcome::kRejectedSignature), 3u);
  EXPECT_EQ(en_.count(Outcome::kRejectedExpired), 3u);
  EXPECT_EQ(en_.count(Outcome::kRejectedInvalid), 3u);
  EXPECT_EQ(en_.active(), 1u);  // only u9
  EXPECT_TRUE(en_.allows({"u1", "", ""}, "x"));
  EXPECT_TRUE(en_.allows({"admin", "", ""}, "x"));
  EXPECT_FALSE(en_.allows({"u9", "", ""}, "x"));
}

TEST_F(EnforcerTest, ResyncDropsActionsNotReplayed) {
  auto keep = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "keep");
  auto gone = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "gone");
  immunizer::effector::sign(keep, kKey);
  immunizer::effector::sign(gone, kKey);
  en_.handle(keep);
  en_.handle(gone);
  en_.begin_resync();
  EXPECT_EQ(en_.handle(keep).outcome, Outcome::kDuplicate);
  EXPECT_EQ(en_.end_resync(), 1u);
  EXPECT_FALSE(en_.allows({"keep", "", ""}, "x"));
  EXPECT_TRUE(en_.allows({"gone", "", ""}, "x"));
  // execute's replay arrived late (after the window): it is still active there, apply again.
  EXPECT_EQ(en_.handle(gone).outcome, Outcome::kApplied);
  EXPECT_FALSE(en_.allows({"gone", "", ""}, "x"));
}

// Readers race a writer that keeps publishing and retiring snapshots (run under TSan/ASan).
TEST_F(EnforcerTest, ConcurrentReadersAndWriter) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        en_.allows({"user7", "s", "10.0.0.7"}, "x");
        en_.allows({"nobody", "", ""}, "y");
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  while (reads.load() < 4) std::this_thread::yield();  // readers are running
  for (int i = 0; i < 100; ++i) {
    auto d = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "user" + std::to_string(i % 10));
    EXPECT_EQ(send(d), Outcome::kApplied);
    if (i % 3 == 0) en_.expire();
  }
  EXPECT_FALSE(en_.allows({"user7", "", ""}, "x"));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(reads.load(), 0u);
}

// The persistent index against a std::map under random inserts and removes, with enough keys
// that paths split and collapse at several depths; old versions stay as they were.
TEST(RuleIndex, MatchesAMapUnderRandomInsertsAndRemoves) {
  using immunizer::effector::Rule;
  using immunizer::effector::RuleIndex;
  std::mt19937_64 rng(7);
  RuleIndex index;
  std::map<std::string, std::vector<std::shared_ptr<const Rule>>> model;
  std::vector<std::pair<RuleIndex, size_t>> versions;  // a few old versions and their key count
  for (int step = 0; step < 30000; ++step) {
    const std::string key = "10." + std::to_string(rng() % 64) + "." + std::to_string(rng() % 97);
    auto& rules = model[key];
    if (rules.empty() || rng() % 3 != 0) {
      auto r = std::make_shared<Rule>();
      r->value = key;
      rules.push_back(r);
      index = index.with(key, r);
    } else {
      const size_t i = rng() % rules.size();
      index = index.without(key, rules[i].get());
      rules.erase(rules.begin() + static_cast<ptrdiff_t>(i));
    }
    const RuleIndex::Set* got = index.find(key);
    if (rules.empty()) {
      ASSERT_EQ(got, nullptr) << key;
      model.erase(key);
    } else {
      ASSERT_NE(got, nullptr) << key;
      ASSERT_EQ(got->rules.size(), rules.size()) << key;
      for (size_t i = 0; i < rules.size(); ++i) ASSERT_EQ(got->rules[i], rules[i]) << key;
    }
    if (step % 5000 == 0) versions.emplace_back(index, model.size());
  }
  for (const auto& [key, rules] : model) {
    const RuleIndex::Set* got = index.find(key);
    ASSERT_NE(got, nullptr) << key;
    EXPECT_EQ(got->key, key);
    EXPECT_EQ(got->rules.size(), rules.size());
  }
  EXPECT_EQ(index.find("10.999.1"), nullptr);
  EXPECT_EQ(index.find(""), nullptr);
  // Removing a rule that is not there leaves the very same version.
  Rule stranger;
  const RuleIndex same = index.without(model.begin()->first, &stranger);
  EXPECT_EQ(same.find(model.begin()->first), index.find(model.begin()->first));
  // Old versions are untouched by later changes: count their keys.
  for (const auto& [old, keys] : versions) {
    size_t n = 0;
    for (int a = 0; a < 64; ++a)
      for (int b = 0; b < 97; ++b)
        n += old.find("10." + std::to_string(a) + "." + std::to_string(b)) != nullptr;
    EXPECT_EQ(n, keys);
  }
  // Removing everything empties the index.
  for (const auto& [key, rules] : model)
    for (const auto& r : rules) index = index.without(key, r.get());
  EXPECT_TRUE(index.empty());
}

// Incremental apply, revoke, expiry and resync against a reference model that evaluates
// every active action linearly (the semantics of the rebuild-per-directive enforcer).
TEST_F(EnforcerTest, IncrementalChangesMatchAReferenceModel) {
  struct Model {
    ActionKind kind;
    int field;  // 0 user, 1 session, 2 ip, -1 none
    std::string value, call;
    int64_t end;
  };
  std::map<std::string, Model> model;  // by action id
  std::set<std::string> revoked;
  std::mt19937_64 rng(11);
  const std::string calls[] = {"login", "checkout", "search"};
  auto value_of = [&](uint64_t i) { return "p" + std::to_string(i % 40); };
  auto expected_allows = [&](const std::string v[3], const std::string& call) {
    for (const auto& [id, m] : model) {
      if (m.end <= now_.load()) continue;
      if (m.kind == ACTION_DISABLE_CALL) {
        if (m.call == call) return false;
      } else if (v[m.field] == m.value && (m.call.empty() || m.call == call)) {
        return false;
      }
    }
    return true;
  };
  std::vector<Directive> sent;  // for revokes and resends
  for (int step = 0; step < 3000; ++step) {
    const uint64_t op = rng() % 10;
    if (op < 6) {  // a new action
      const int field = static_cast<int>(rng() % 4) - 1;
      const ActionKind kind = field < 0        ? ACTION_DISABLE_CALL
                              : rng() % 2 == 0 ? ACTION_BLOCK_PRINCIPAL
                                               : ACTION_ABORT_CALL;
      const PrincipalField pf = field == 0   ? PRINCIPAL_FIELD_USER
                                : field == 1 ? PRINCIPAL_FIELD_SESSION
                                : field == 2 ? PRINCIPAL_FIELD_IP
                                             : PRINCIPAL_FIELD_UNSPECIFIED;
      const std::string call = kind == ACTION_BLOCK_PRINCIPAL && rng() % 2 ? "" : calls[rng() % 3];
      const int64_t ttl_ms = 1000 + static_cast<int64_t>(rng() % 20000);
      auto d = make(kind, pf, field < 0 ? "" : value_of(rng()), call, ttl_ms);
      immunizer::effector::sign(d, kKey);
      ASSERT_EQ(en_.handle(d).outcome, Outcome::kApplied);
      model[d.action().id()] =
          Model{kind, field, d.action().target_value(), call, now_.load() + ttl_ms * 1'000'000};
      sent.push_back(d);
    } else if (op < 8 && !sent.empty()) {  // revoke one sent before
      const Directive& target = sent[rng() % sent.size()];
      Directive r;
      r.set_id("r" + std::to_string(step));
      r.set_revoke(true);
      r.set_issued_unix_nanos(now_);
      r.mutable_action()->set_id(target.action().id());
      immunizer::effector::sign(r, kKey);
      ASSERT_EQ(en_.handle(r).outcome, Outcome::kRevoked);
      model.erase(target.action().id());
      revoked.insert(target.action().id());
    } else if (op == 8 && !sent.empty()) {  // execute resends one: a duplicate or refused
      const Directive& again = sent[rng() % sent.size()];
      const Outcome o = en_.handle(again).outcome;
      if (revoked.count(again.action().id())) {
        EXPECT_EQ(o, Outcome::kRejectedReplay);
      } else if (model.count(again.action().id())) {
        EXPECT_EQ(o, Outcome::kDuplicate);
      }
    } else {  // time passes, the janitor expires
      now_ += static_cast<int64_t>(rng() % 3000) * 1'000'000;
      size_t due = 0;
      for (auto it = model.begin(); it != model.end();)
        if (it->second.end <= now_.load()) {
          it = model.erase(it);
          ++due;
        } else {
          ++it;
        }
      ASSERT_EQ(en_.expire(), due);
    }
    for (int probe = 0; probe < 8; ++probe) {
      const std::string v[3] = {value_of(rng()), value_of(rng()), value_of(rng())};
      const std::string& call = calls[rng() % 3];
      ASSERT_EQ(en_.allows({v[0], v[1], v[2]}, call), expected_allows(v, call))
          << "step " << step << " " << v[0] << "/" << v[1] << "/" << v[2] << " " << call;
    }
  }
  EXPECT_GT(model.size(), 0u);
  // A resync keeps exactly what execute sent again.
  en_.begin_resync();
  size_t kept = 0;
  for (const Directive& d : sent) {
    if (model.count(d.action().id()) && kept < model.size() / 2) {
      ASSERT_EQ(en_.handle(d).outcome, Outcome::kDuplicate);
      ++kept;
    }
  }
  EXPECT_EQ(en_.end_resync(), model.size() - kept);
  EXPECT_EQ(en_.active(), kept);
}

// A directive seen before skips the Ed25519 check only when its bytes are exactly those
// verified: the same id and signature over changed content is still a bad signature.
TEST_F(EnforcerTest, SeenDirectiveWithOtherContentIsStillVerified) {
  auto d = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "eve");
  immunizer::effector::sign(d, kKey);
  ASSERT_EQ(en_.handle(d).outcome, Outcome::kApplied);
  EXPECT_EQ(en_.handle(d).outcome, Outcome::kDuplicate);
  auto forged = d;
  forged.mutable_action()->set_target_value("admin");
  EXPECT_EQ(en_.handle(forged).outcome, Outcome::kRejectedSignature);
  forged = d;
  forged.mutable_action()->set_ttl_millis(86'400'000);
  EXPECT_EQ(en_.handle(forged).outcome, Outcome::kRejectedSignature);
  EXPECT_TRUE(en_.allows({"admin", "", ""}, "x"));
  EXPECT_FALSE(en_.allows({"eve", "", ""}, "x"));
  EXPECT_EQ(en_.count(Outcome::kRejectedSignature), 2u);
}

// An action re-sent under a new directive replaces the old one (its old target is lifted), in
// the flat base as in the recent changes, before and after the housekeeping tick folds them.
TEST_F(EnforcerTest, ReplacedActionLiftsItsOldTarget) {
  for (int i = 0; i < 300; ++i)  // enough to fold the changes into a new base on the way
    ASSERT_EQ(send(make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP, "10.0.0." + std::to_string(i))),
              Outcome::kApplied);
  auto first = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "old-target");
  ASSERT_EQ(send(first), Outcome::kApplied);
  EXPECT_EQ(en_.expire(), 0u);  // the tick: everything is in the base now
  EXPECT_FALSE(en_.allows({"old-target", "", ""}, "x"));
  auto second = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "new-target");
  second.mutable_action()->set_id(first.action().id());
  ASSERT_EQ(send(second), Outcome::kApplied);
  EXPECT_TRUE(en_.allows({"old-target", "", ""}, "x"));
  EXPECT_FALSE(en_.allows({"new-target", "", ""}, "x"));
  EXPECT_EQ(en_.active(), 301u);
  EXPECT_EQ(en_.expire(), 0u);
  EXPECT_TRUE(en_.allows({"old-target", "", ""}, "x"));
  EXPECT_FALSE(en_.allows({"new-target", "", ""}, "x"));
  EXPECT_FALSE(en_.allows({"", "", "10.0.0.299"}, "x"));
  now_ += 61 * kSec;  // everything ends
  EXPECT_EQ(en_.expire(), 301u);
  EXPECT_EQ(en_.active(), 0u);
  EXPECT_TRUE(en_.allows({"new-target", "", "10.0.0.1"}, "x"));
}

// Execute's replay in batches (issue 11, item 6): one Ed25519 verification per batch covers
// every directive's exact bytes, instead of one per directive.
class EnforcerBatchTest : public EnforcerTest {
 protected:
  // `n` IP blocks 10.1.x.y, each signed by `key`, in one batch signed by `batch_key`.
  DirectiveBatch batch(int n, const SigningKey& key = kKey, const SigningKey& batch_key = kKey) {
    DirectiveBatch b;
    for (int i = 0; i < n; ++i) {
      auto d = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP, ip(i));
      immunizer::effector::sign(d, key);
      *b.add_directives() = d;
    }
    immunizer::effector::sign(b, batch_key);
    return b;
  }
  static std::string ip(int i) {
    return "10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256);
  }
  static std::vector<Outcome> outcomes(const std::vector<immunizer::effector::HandleResult>& r) {
    std::vector<Outcome> o;
    for (const auto& x : r) o.push_back(x.outcome);
    return o;
  }
};

TEST_F(EnforcerBatchTest, ABatchIsVerifiedOnceAndAppliedAtOnce) {
  bool verified = false;
  const auto r = en_.handle(batch(300), &verified);
  EXPECT_TRUE(verified);
  EXPECT_EQ(outcomes(r), std::vector<Outcome>(300, Outcome::kApplied));
  EXPECT_EQ(en_.verifications(), 1u);  // one by one: 300
  EXPECT_EQ(en_.active(), 300u);
  for (int i = 0; i < 300; ++i) EXPECT_FALSE(en_.allows({"", "", ip(i)}, "x")) << ip(i);
  EXPECT_TRUE(en_.allows({"", "", "10.2.0.1"}, "x"));
  EXPECT_TRUE(en_.handle(batch(0)).empty());  // an empty batch changes nothing
  EXPECT_EQ(en_.active(), 300u);
}

TEST_F(EnforcerBatchTest, TheSameBatchAgainIsDuplicates) {
  const auto b = batch(20);
  ASSERT_EQ(outcomes(en_.handle(b)), std::vector<Outcome>(20, Outcome::kApplied));
  EXPECT_EQ(outcomes(en_.handle(b)), std::vector<Outcome>(20, Outcome::kDuplicate));
  EXPECT_EQ(en_.active(), 20u);
  EXPECT_EQ(en_.verifications(), 2u);
}

// A directive altered after execute signed the batch: the batch signature fails, each
// directive is then verified alone: the altered one is refused, the others apply.
TEST_F(EnforcerBatchTest, AnAlteredDirectiveFailsTheBatchAndIsRefusedAlone) {
  auto b = batch(10);
  b.mutable_directives(3)->mutable_action()->set_target_value("192.0.2.66");  // the victim
  bool verified = true;
  const auto r = en_.handle(b, &verified);
  EXPECT_FALSE(verified);
  ASSERT_EQ(r.size(), 10u);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(r[static_cast<size_t>(i)].outcome,
              i == 3 ? Outcome::kRejectedSignature : Outcome::kApplied)
        << i;
  EXPECT_TRUE(en_.allows({"", "", "192.0.2.66"}, "x"));
  EXPECT_TRUE(en_.allows({"", "", ip(3)}, "x"));
  EXPECT_FALSE(en_.allows({"", "", ip(4)}, "x"));
  EXPECT_EQ(en_.verifications(), 11u);  // the batch, then each of the 10
  EXPECT_EQ(en_.count(Outcome::kRejectedSignature), 1u);
}

// A forged directive slipped into a genuine batch, and a batch re-signed by an attacker's key
// over forged directives: nothing forged applies.
TEST_F(EnforcerBatchTest, ForgedDirectivesInABatchNeverApply) {
  auto b = batch(5);
  auto forged = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP, "192.0.2.10");
  immunizer::effector::sign(forged, key_of(1));
  forged.set_key_id(kKey.key_id());  // claims execute's key
  *b.add_directives() = forged;
  EXPECT_EQ(
      outcomes(en_.handle(b)),
      (std::vector<Outcome>{Outcome::kApplied, Outcome::kApplied, Outcome::kApplied,
                            Outcome::kApplied, Outcome::kApplied, Outcome::kRejectedSignature}));
  EXPECT_TRUE(en_.allows({"", "", "192.0.2.10"}, "x"));

  auto evil = batch(4, key_of(1), key_of(1));  // everything by a key the effector does not trust
  EXPECT_EQ(outcomes(en_.handle(evil)), std::vector<Outcome>(4, Outcome::kRejectedSignature));
  // The attacker's batch signature over forged directives that claim execute's key id.
  DirectiveBatch claim;
  for (int i = 0; i < 3; ++i) {
    auto d = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP, "192.0.2." + std::to_string(20 + i));
    immunizer::effector::sign(d, key_of(1));
    d.set_key_id(kKey.key_id());
    *claim.add_directives() = d;
  }
  immunizer::effector::sign(claim, key_of(1));
  claim.set_key_id(kKey.key_id());
  bool verified = true;
  EXPECT_EQ(outcomes(en_.handle(claim, &verified)),
            std::vector<Outcome>(3, Outcome::kRejectedSignature));
  EXPECT_FALSE(verified);
  EXPECT_EQ(en_.active(), 5u);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(en_.allows({"", "", "192.0.2." + std::to_string(20 + i)}, "x"));
}

// A batch vouches for its directives' bytes, not for their keys: each must still name a key
// the effector trusts, and the rest of the checks (expiry, replay) apply one by one.
TEST_F(EnforcerBatchTest, EachDirectiveOfAVerifiedBatchIsStillChecked) {
  DirectiveBatch b;
  auto ok = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP, "198.51.100.1");
  auto other_key = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP, "198.51.100.2");
  auto expired = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP, "198.51.100.3");
  expired.set_expires_unix_nanos(now_ - kSec);
  auto unsigned_d = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_IP, "198.51.100.4");
  immunizer::effector::sign(ok, kKey);
  immunizer::effector::sign(other_key, key_of(1));
  immunizer::effector::sign(expired, kKey);
  auto reused = ok;  // the id of `ok` with other content
  reused.mutable_action()->set_target_value("198.51.100.5");
  immunizer::effector::sign(reused, kKey);
  for (const auto* d : {&ok, &other_key, &expired, &unsigned_d, &reused}) *b.add_directives() = *d;
  immunizer::effector::sign(b, kKey);
  bool verified = false;
  EXPECT_EQ(outcomes(en_.handle(b, &verified)),
            (std::vector<Outcome>{Outcome::kApplied, Outcome::kRejectedSignature,
                                  Outcome::kRejectedExpired, Outcome::kRejectedSignature,
                                  Outcome::kRejectedReplay}));
  EXPECT_TRUE(verified);
  EXPECT_EQ(en_.active(), 1u);
  EXPECT_TRUE(en_.allows({"", "", "198.51.100.5"}, "x"));
}

// Readers see a batch all at once, and the whole batch when it returns; a directive handed in
// from another thread meanwhile is not lost.
TEST_F(EnforcerBatchTest, ConcurrentBatchAndSingleDirective) {
  const auto b = batch(256);
  auto single = make(ACTION_BLOCK_PRINCIPAL, PRINCIPAL_FIELD_USER, "mallory");
  immunizer::effector::sign(single, kKey);
  std::thread t([&] { EXPECT_EQ(en_.handle(single).outcome, Outcome::kApplied); });
  EXPECT_EQ(outcomes(en_.handle(b)), std::vector<Outcome>(256, Outcome::kApplied));
  t.join();
  EXPECT_EQ(en_.active(), 257u);
  EXPECT_FALSE(en_.allows({"mallory", "", ""}, "x"));
  EXPECT_FALSE(en_.allows({"", "", ip(255)}, "x"));
}

}  // namespace
