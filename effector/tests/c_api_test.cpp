// The effector's C API (immunizer/effector.h): configuration errors, NULL handling, and a
// signed directive applied through it changes what allows answers.
#include "immunizer/effector.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/v1/control.pb.h"
#include "immunizer/version.hpp"

namespace {

const immunizer::crypto::SigningKey& test_key() {
  static const auto k =
      immunizer::crypto::SigningKey::from_pem(immunizer::crypto::generate_ed25519().private_pem);
  return k;
}
const immunizer::crypto::SigningKey& other_key() {
  static const auto k =
      immunizer::crypto::SigningKey::from_pem(immunizer::crypto::generate_ed25519().private_pem);
  return k;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string block_user(const std::string& id, const std::string& user,
                       const immunizer::crypto::SigningKey& key = test_key()) {
  immunizer::v1::Directive d;
  d.set_id(id);
  d.mutable_action()->set_id("act-" + id);
  d.mutable_action()->set_kind(immunizer::v1::ACTION_BLOCK_PRINCIPAL);
  d.mutable_action()->set_target_field(immunizer::v1::PRINCIPAL_FIELD_USER);
  d.mutable_action()->set_target_value(user);
  d.set_issued_unix_nanos(now_ns());
  d.set_expires_unix_nanos(now_ns() + 60'000'000'000);
  immunizer::effector::sign(d, key);
  return d.SerializeAsString();
}

struct CEffector {
  immunizer_effector* e = nullptr;
  CEffector() {
    char err[256] = "";
    // Nothing listens on port 1: the effector stays disconnected and fails open.
    ::setenv("IMMUNIZER_EFFECTOR_TLS", "none", 1);  // never connects
    e = immunizer_effector_new("c-test", "127.0.0.1:1", test_key().public_pem().c_str(), err,
                               sizeof err);
    ::unsetenv("IMMUNIZER_EFFECTOR_TLS");
  }
  ~CEffector() { immunizer_effector_free(e); }
};

}  // namespace

TEST(EffectorCApi, VersionIsTheProjectVersion) {
  EXPECT_STREQ(immunizer_effector_version(), IMMUNIZER_VERSION);
}

TEST(EffectorCApi, MissingSigningKeyIsAnErrorWithAReason) {
  ::unsetenv("IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS");
  char err[256] = "";
  immunizer_effector* e = immunizer_effector_new_from_env("c-test", err, sizeof err);
  EXPECT_EQ(e, nullptr);
  EXPECT_NE(std::string(err).find("public key"), std::string::npos) << err;
  immunizer_effector_free(e);  // NULL is fine
}

TEST(EffectorCApi, NullEffectorAllowsAndReportsZeros) {
  EXPECT_EQ(immunizer_effector_allows_z(nullptr, "u", "s", "1.2.3.4", "call"), 1);
  EXPECT_EQ(immunizer_effector_allows(nullptr, nullptr, 0, nullptr, 0, nullptr, 0, nullptr, 0), 1);
  EXPECT_EQ(immunizer_effector_connected(nullptr), 0);
  immunizer_effector_stats st;
  st.denied = 42;
  immunizer_effector_get_stats(nullptr, &st);
  EXPECT_EQ(st.denied, 0u);
  char reason[64] = "";
  EXPECT_EQ(immunizer_effector_apply(nullptr, "x", 1, reason, sizeof reason), 0);
  immunizer_effector_start(nullptr);
  immunizer_effector_stop(nullptr);
}

TEST(EffectorCApi, SignedBlockAppliedThroughTheCApiDeniesOnlyThatUser) {
  CEffector c;
  ASSERT_NE(c.e, nullptr);
  EXPECT_EQ(immunizer_effector_allows_z(c.e, "mallory", "", "", "GET /"), 1);

  const std::string d = block_user("d1", "mallory");
  char reason[256] = "";
  ASSERT_EQ(immunizer_effector_apply(c.e, d.data(), d.size(), reason, sizeof reason), 1) << reason;

  EXPECT_EQ(immunizer_effector_allows_z(c.e, "mallory", "", "", "GET /"), 0);
  const std::string user = "mallory-and-more";
  EXPECT_EQ(immunizer_effector_allows(c.e, user.data(), 7, nullptr, 0, nullptr, 0, "GET /", 5), 0)
      << "lengths, not NUL terminators, delimit the strings";
  EXPECT_EQ(immunizer_effector_allows_z(c.e, "alice", nullptr, nullptr, "GET /"), 1);

  immunizer_effector_stats st;
  immunizer_effector_get_stats(c.e, &st);
  EXPECT_EQ(st.applied, 1u);
  EXPECT_EQ(st.active_actions, 1u);
  EXPECT_EQ(st.denied, 2u);
  EXPECT_EQ(st.connected, 0);
}

TEST(EffectorCApi, ForgedOrMalformedDirectivesAreRejectedWithAReason) {
  CEffector c;
  ASSERT_NE(c.e, nullptr);
  const std::string forged = block_user("d2", "mallory", other_key());
  char reason[256] = "";
  EXPECT_EQ(immunizer_effector_apply(c.e, forged.data(), forged.size(), reason, sizeof reason), 0);
  EXPECT_STRNE(reason, "");
  EXPECT_EQ(immunizer_effector_allows_z(c.e, "mallory", "", "", "GET /"), 1);

  const char garbage[] = "\xff\xff\xff\xff not a protobuf";
  reason[0] = '\0';
  EXPECT_EQ(immunizer_effector_apply(c.e, garbage, sizeof garbage, reason, sizeof reason), 0);
  EXPECT_STRNE(reason, "");
  EXPECT_EQ(immunizer_effector_apply(c.e, nullptr, 5, nullptr, 0),
            0);  // NULL reason buffer is fine

  immunizer_effector_stats st;
  immunizer_effector_get_stats(c.e, &st);
  EXPECT_EQ(st.rejected_signature, 1u);
  EXPECT_EQ(st.applied, 0u);
}
