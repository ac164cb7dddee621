// sign/verify: every field is covered, untrusted keys and tampering fail, a key ring of several
// keys (rotation overlap) accepts each, the layout is stable.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "immunizer/effector/directive_signing.hpp"

namespace {

namespace crypto = immunizer::crypto;

struct Keys {
  crypto::SigningKey key = crypto::SigningKey::from_pem(crypto::generate_ed25519().private_pem);
  crypto::SigningKey other = crypto::SigningKey::from_pem(crypto::generate_ed25519().private_pem);
  crypto::KeyRing ring() const {
    crypto::KeyRing r;
    r.add(crypto::VerifyingKey::from_pem(key.public_pem()));
    return r;
  }
};
const Keys& keys() {
  static const Keys k;
  return k;
}

immunizer::v1::Directive sample() {
  immunizer::v1::Directive d;
  d.set_id("d-1");
  d.set_plan_id("p-1");
  d.set_issued_unix_nanos(1000);
  d.set_expires_unix_nanos(2000);
  auto* a = d.mutable_action();
  a->set_id("a-1");
  a->set_kind(immunizer::v1::ACTION_BLOCK_PRINCIPAL);
  a->set_target_field(immunizer::v1::PRINCIPAL_FIELD_IP);
  a->set_target_value("10.0.0.1");
  a->set_ttl_millis(60000);
  return d;
}

TEST(DirectiveSigning, SignedVerifiesWithTrustedKeyOnly) {
  auto d = sample();
  immunizer::effector::sign(d, keys().key);
  EXPECT_EQ(d.key_id(), keys().key.key_id());
  EXPECT_EQ(d.signature().size(), 64u);
  EXPECT_TRUE(immunizer::effector::verify(d, keys().ring()));
  EXPECT_FALSE(immunizer::effector::verify(d, crypto::KeyRing{}));     // nothing trusted
  EXPECT_FALSE(immunizer::effector::verify(sample(), keys().ring()));  // unsigned
}

TEST(DirectiveSigning, UntrustedKeyIsRejectedEvenWithATrustedKeyId) {
  // Signed by a key the ring does not hold: rejected whether it names itself or claims the
  // trusted key's id.
  auto d = sample();
  immunizer::effector::sign(d, keys().other);
  EXPECT_FALSE(immunizer::effector::verify(d, keys().ring()));
  d.set_key_id(keys().key.key_id());
  d.set_signature(keys().other.sign(immunizer::effector::canonical_bytes(d)));
  EXPECT_FALSE(immunizer::effector::verify(d, keys().ring()));
}

TEST(DirectiveSigning, RotationOverlapAcceptsOldAndNewKeys) {
  crypto::KeyRing both = keys().ring();
  both.add(crypto::VerifyingKey::from_pem(keys().other.public_pem()));
  auto old_d = sample(), new_d = sample();
  immunizer::effector::sign(old_d, keys().key);
  immunizer::effector::sign(new_d, keys().other);
  EXPECT_TRUE(immunizer::effector::verify(old_d, both));
  EXPECT_TRUE(immunizer::effector::verify(new_d, both));
  // After the overlap only the new key is trusted.
  crypto::KeyRing only_new;
  only_new.add(crypto::VerifyingKey::from_pem(keys().other.public_pem()));
  EXPECT_FALSE(immunizer::effector::verify(old_d, only_new));
  EXPECT_TRUE(immunizer::effector::verify(new_d, only_new));
}

TEST(DirectiveSigning, EveryFieldIsCovered) {
  using D = immunizer::v1::Directive;
  const std::vector<std::function<void(D&)>> tamper = {
      [](D& d) { d.set_id("d-2"); },
      [](D& d) { d.set_plan_id("p-2"); },
      [](D& d) { d.set_issued_unix_nanos(1001); },
      [](D& d) { d.set_expires_unix_nanos(0); },
      [](D& d) { d.set_revoke(true); },
      [](D& d) { d.set_key_id(d.key_id() + "0"); },
      [](D& d) { d.mutable_action()->set_id("a-2"); },
      [](D& d) { d.mutable_action()->set_kind(immunizer::v1::ACTION_LOG); },
      [](D& d) { d.mutable_action()->set_target_field(immunizer::v1::PRINCIPAL_FIELD_USER); },
      [](D& d) { d.mutable_action()->set_target_value("10.0.0.2"); },
      [](D& d) { d.mutable_action()->set_call("x"); },
      [](D& d) { d.mutable_action()->set_ttl_millis(1); },
      [](D& d) { d.mutable_action()->set_rate_per_second(1); },
      [](D& d) { d.mutable_action()->set_burst(1); },
  };
  for (size_t i = 0; i < tamper.size(); ++i) {
    auto d = sample();
    immunizer::effector::sign(d, keys().key);
    tamper[i](d);
    EXPECT_FALSE(immunizer::effector::verify(d, keys().ring()))
        << "field change " << i << " not covered";
  }
}

TEST(DirectiveSigning, CanonicalBytesAreUnambiguous) {
  // ("ab","c") and ("a","bc") must not collide: strings are length-prefixed.
  auto a = sample(), b = sample();
  a.set_id("ab");
  a.set_plan_id("c");
  b.set_id("a");
  b.set_plan_id("bc");
  EXPECT_NE(immunizer::effector::canonical_bytes(a), immunizer::effector::canonical_bytes(b));
  EXPECT_EQ(immunizer::effector::canonical_bytes(a).rfind(
                std::string("\0\0\0\x16immunizer.directive.v2", 26), 0),
            0u);
}

}  // namespace
