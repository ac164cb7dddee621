#include "immunizer/plan/plan_signing.hpp"

#include <gtest/gtest.h>

#include <functional>

using namespace immunizer;

namespace {

v1::Plan sample() {
  v1::Plan p;
  p.set_id("p1");
  p.set_alarm_id("a1");
  p.mutable_record_id()->set_app("shop");
  p.mutable_record_id()->set_instance("i1");
  p.mutable_record_id()->set_seq(7);
  p.mutable_principal()->set_session("S1");
  p.mutable_principal()->set_ip("10.0.0.1");
  auto* a = p.add_actions();
  a->set_id("act1");
  a->set_kind(v1::ACTION_BLOCK_PRINCIPAL);
  a->set_target_field(v1::PRINCIPAL_FIELD_SESSION);
  a->set_target_value("S1");
  a->set_ttl_millis(60'000);
  p.set_policy_rule("severity>=3:block");
  p.set_created_unix_nanos(1'700'000'000'000'000'000);
  return p;
}

struct Keys {
  crypto::KeyPair pair = crypto::generate_ed25519();
  crypto::SigningKey key = crypto::SigningKey::from_pem(pair.private_pem);
  crypto::KeyRing ring;
  Keys() { ring.add(crypto::VerifyingKey::from_pem(pair.public_pem)); }
};

}  // namespace

TEST(PlanSigning, SignedPlanVerifiesAndSurvivesTheWire) {
  Keys k;
  v1::Plan p = sample();
  plan::sign(p, k.key);
  EXPECT_EQ(p.key_id(), k.key.key_id());
  EXPECT_EQ(p.signature().size(), 64u);
  v1::Plan back;
  ASSERT_TRUE(back.ParseFromString(p.SerializeAsString()));
  EXPECT_EQ(plan::verify(back, k.ring), "");
}

TEST(PlanSigning, UnsignedForgedAndAlteredPlansAreRefused) {
  Keys k;
  v1::Plan unsigned_plan = sample();
  EXPECT_EQ(plan::verify(unsigned_plan, k.ring), "unsigned_plan");
  unsigned_plan.set_key_id(k.key.key_id());  // a key id alone is no signature
  EXPECT_EQ(plan::verify(unsigned_plan, k.ring), "unsigned_plan");

  // Signed by a key execute does not trust, claiming its own id or the trusted one.
  Keys attacker;
  v1::Plan forged = sample();
  plan::sign(forged, attacker.key);
  EXPECT_EQ(plan::verify(forged, k.ring), "untrusted_plan_key");
  forged.set_key_id(k.key.key_id());
  EXPECT_EQ(plan::verify(forged, k.ring), "bad_plan_signature");
  forged.set_signature(std::string(64, '\0'));
  EXPECT_EQ(plan::verify(forged, k.ring), "bad_plan_signature");
  forged.set_signature("short");
  EXPECT_EQ(plan::verify(forged, k.ring), "bad_plan_signature");

  // Every field is covered: a change to any of them breaks the signature.
  v1::Plan good = sample();
  plan::sign(good, k.key);
  const std::vector<std::function<void(v1::Plan&)>> edits = {
      [](v1::Plan& p) { p.set_id("p2"); },
      [](v1::Plan& p) { p.set_alarm_id("a2"); },
      [](v1::Plan& p) { p.mutable_record_id()->set_seq(8); },
      [](v1::Plan& p) { p.mutable_record_id()->set_app("x"); },
      [](v1::Plan& p) { p.mutable_principal()->set_user("u"); },
      [](v1::Plan& p) { p.mutable_principal()->set_ip("10.0.0.2"); },
      [](v1::Plan& p) { p.mutable_actions(0)->set_kind(v1::ACTION_DISABLE_CALL); },
      [](v1::Plan& p) { p.mutable_actions(0)->set_target_value("S2"); },
      [](v1::Plan& p) { p.mutable_actions(0)->set_call("http.request"); },
      [](v1::Plan& p) { p.mutable_actions(0)->set_ttl_millis(99'999'999'999); },
      [](v1::Plan& p) { p.mutable_actions(0)->set_rate_per_second(1); },
      [](v1::Plan& p) { p.mutable_actions(0)->set_burst(1); },
      [](v1::Plan& p) { p.mutable_actions(0)->set_id("act2"); },
      [](v1::Plan& p) { p.mutable_actions(0)->set_target_field(v1::PRINCIPAL_FIELD_IP); },
      [](v1::Plan& p) { *p.add_actions() = p.actions(0); },
      [](v1::Plan& p) { p.clear_actions(); },
      [](v1::Plan& p) { p.set_policy_rule("x"); },
      [](v1::Plan& p) { p.set_shadow(true); },
      [](v1::Plan& p) { p.set_created_unix_nanos(p.created_unix_nanos() + 1); },
      [](v1::Plan& p) { p.set_alarm_raised_unix_nanos(1); },
      [](v1::Plan& p) { p.set_call_timestamp_unix_nanos(1); },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    v1::Plan p = good;
    edits[i](p);
    EXPECT_EQ(plan::verify(p, k.ring), "bad_plan_signature") << "edit " << i;
  }
}

TEST(PlanSigning, CanonicalBytesSeparateAdjacentStrings) {
  v1::Plan a = sample(), b = sample();
  a.set_id("ab");
  a.set_alarm_id("c");
  b.set_id("a");
  b.set_alarm_id("bc");
  EXPECT_NE(plan::canonical_bytes(a), plan::canonical_bytes(b));
}
