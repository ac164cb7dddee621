// Principal keys: the one rule for who an alarm, a plan or an incident is attributed to.
// analyze and plan key their Kafka messages with partition_key(); plan aggregates evidence
// and places blocks at the levels below; the dashboard groups incidents with the same keys.
// Addresses and networks are parsed here too (the effector matches prefix blocks with them).
// Pure functions on hostile input: nothing throws on bad bytes; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "immunizer/v1/records.pb.h"

namespace immunizer::v1 {

// The levels at which a principal is known, narrowest first: one session, one address, the
// address's network (a /24 IPv4 or /64 IPv6 prefix by default), one user account.
enum class PrincipalLevel : uint8_t { kSession, kIp, kPrefix, kUser };
inline constexpr std::array<PrincipalLevel, 4> kPrincipalLevels = {
    PrincipalLevel::kSession, PrincipalLevel::kIp, PrincipalLevel::kPrefix, PrincipalLevel::kUser};
std::string_view level_name(PrincipalLevel l) noexcept;  // "session", "ip", "prefix", "user"
std::optional<PrincipalLevel> level_from_name(std::string_view name) noexcept;
// The action target field of a level (PRINCIPAL_FIELD_IP_PREFIX for kPrefix).
PrincipalField field_of(PrincipalLevel l) noexcept;

// An IPv4 or IPv6 address as bytes (IPv4: the first 4). IPv4-mapped IPv6 folds to IPv4.
struct IpBytes {
  bool v6 = false;
  std::array<uint8_t, 16> b{};
  int size() const noexcept { return v6 ? 16 : 4; }
};
// Plain address text ("10.1.2.3", "2001:db8::1"; no brackets, ports or zones). No allocation.
bool parse_ip(std::string_view text, IpBytes* out) noexcept;
// The address with every bit past `bits` cleared (bits clamped to the address size).
IpBytes masked(const IpBytes& a, int bits) noexcept;

// A network: base address with host bits clear, and its prefix length.
struct IpNetwork {
  IpBytes base;
  int bits = 0;
  bool contains(const IpBytes& a) const noexcept;
  std::string text() const;  // canonical: "10.1.2.0/24", "2001:db8:1:2::/64"
};
// "10.1.2.0/24", "2001:db8::/64"; nullopt for anything else, including set host bits
// ("10.1.2.3/24") and non-canonical spellings, so one network has one text (a block's
// identity in execute is its target text).
std::optional<IpNetwork> parse_network(std::string_view text);

// Bits of the network a prefix key covers.
struct PrefixBits {
  int ipv4 = 24;
  int ipv6 = 64;
};
// The address's network ("10.1.2.0/24", "2001:db8:1:2::/64"); "" if `ip` is not an address.
std::string address_prefix(std::string_view ip, int v4_bits, int v6_bits);

struct PrincipalKey {
  PrincipalLevel level = PrincipalLevel::kSession;
  std::string value;  // the field's bytes; the network text for kPrefix; empty: no key
  bool empty() const noexcept { return value.empty(); }
  PrincipalField field() const noexcept { return field_of(level); }
  // "session:abc", "ip:10.1.2.3", "prefix:10.1.2.0/24", "user:bob"; "none:" when empty.
  std::string text() const;
};

// p's key at exactly `level`; empty when p has no such field (for kPrefix: when its ip is
// not an address).
PrincipalKey key_at(const Principal& p, PrincipalLevel level, PrefixBits bits = {});
// p's key at `level` when it has one; otherwise the first of session, ip, user it has (a
// prefix of an ip that is not an address is that ip). Empty only for an empty principal.
PrincipalKey key_or_fallback(const Principal& p, PrincipalLevel level, PrefixBits bits = {});
// The Kafka message key of everything attributed to p (alarms, plans): its session, else
// its address, so one principal's messages stay in order on one partition.
const std::string& partition_key(const Principal& p) noexcept;

}  // namespace immunizer::v1
