// sign/verify: every field is covered, wrong keys and tampering fail, the layout is stable.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "immunizer/effector/directive_signing.hpp"

namespace {

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

TEST(DirectiveSigning, SignedVerifiesWithSameKeyOnly) {
  auto d = sample();
  immunizer::effector::sign(d, "secret", "k1");
  EXPECT_EQ(d.key_id(), "k1");
  EXPECT_EQ(d.signature().size(), 32u);
  EXPECT_TRUE(immunizer::effector::verify(d, "secret"));
  EXPECT_FALSE(immunizer::effector::verify(d, "other"));
  EXPECT_FALSE(immunizer::effector::verify(d, ""));
  EXPECT_FALSE(immunizer::effector::verify(sample(), "secret"));  // unsigned
}

TEST(DirectiveSigning, EveryFieldIsCovered) {
  using D = immunizer::v1::Directive;
  const std::vector<std::function<void(D&)>> tamper = {
      [](D& d) { d.set_id("d-2"); },
      [](D& d) { d.set_plan_id("p-2"); },
      [](D& d) { d.set_issued_unix_nanos(1001); },
      [](D& d) { d.set_expires_unix_nanos(0); },
      [](D& d) { d.set_revoke(true); },
      [](D& d) { d.set_key_id("k2"); },
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
    immunizer::effector::sign(d, "secret", "k1");
    tamper[i](d);
    EXPECT_FALSE(immunizer::effector::verify(d, "secret")) << "field change " << i << " not covered";
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
  EXPECT_EQ(immunizer::effector::canonical_bytes(a).rfind(std::string("\0\0\0\x16immunizer.directive.v1", 26), 0), 0u);
  EXPECT_THROW(immunizer::effector::sign(a, ""), std::invalid_argument);
}

}  // namespace
