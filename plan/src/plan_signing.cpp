#include "immunizer/plan/plan_signing.hpp"

#include <bit>
#include <cstdint>

#include "immunizer/crypto/signed_bytes.hpp"

namespace immunizer::plan {
using crypto::put_str;
using crypto::put_u64;

namespace {

void put_i64(std::string& out, int64_t v) { put_u64(out, static_cast<uint64_t>(v)); }

}  // namespace

std::string canonical_bytes(const v1::Plan& p) {
  std::string out;
  out.reserve(256 + 128 * static_cast<size_t>(p.actions_size()));
  put_str(out, kPlanDomain);
  put_str(out, p.id());
  put_str(out, p.alarm_id());
  put_str(out, p.record_id().app());
  put_str(out, p.record_id().instance());
  put_u64(out, p.record_id().seq());
  put_str(out, p.principal().user());
  put_str(out, p.principal().session());
  put_str(out, p.principal().ip());
  put_u64(out, static_cast<uint64_t>(p.actions_size()));
  for (const auto& a : p.actions()) {
    put_str(out, a.id());
    put_i64(out, static_cast<int64_t>(a.kind()));
    put_i64(out, static_cast<int64_t>(a.target_field()));
    put_str(out, a.target_value());
    put_str(out, a.call());
    put_i64(out, a.ttl_millis());
    put_u64(out, std::bit_cast<uint64_t>(a.rate_per_second()));
    put_u64(out, std::bit_cast<uint64_t>(a.burst()));
  }
  put_str(out, p.policy_rule());
  out.push_back(p.shadow() ? 1 : 0);
  put_i64(out, p.created_unix_nanos());
  put_i64(out, p.alarm_raised_unix_nanos());
  put_i64(out, p.call_timestamp_unix_nanos());
  put_str(out, p.key_id());
  return out;
}

void sign(v1::Plan& p, const crypto::SigningKey& key) {
  p.set_key_id(key.key_id());
  p.set_signature(key.sign(canonical_bytes(p)));
}

std::string verify(const v1::Plan& p, const crypto::KeyRing& trusted) noexcept {
  try {
    if (p.signature().empty() || p.key_id().empty()) return "unsigned_plan";
    if (trusted.find(p.key_id()) == nullptr) return "untrusted_plan_key";
    if (!trusted.verify(p.key_id(), canonical_bytes(p), p.signature())) return "bad_plan_signature";
    return {};
  } catch (...) {
    return "bad_plan_signature";  // allocation failure: unverifiable
  }
}

}  // namespace immunizer::plan
