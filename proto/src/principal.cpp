#include "immunizer/v1/principal.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>

#include "immunizer/common/enum_names.hpp"

namespace immunizer::v1 {

namespace {
// In the order of PrincipalLevel's values.
constexpr std::string_view kLevelNames[] = {"session", "ip", "prefix", "user"};
constexpr PrincipalField kLevelFields[] = {PRINCIPAL_FIELD_SESSION, PRINCIPAL_FIELD_IP,
                                           PRINCIPAL_FIELD_IP_PREFIX, PRINCIPAL_FIELD_USER};
static_assert(std::size(kLevelNames) == kPrincipalLevels.size() &&
              std::size(kLevelFields) == kPrincipalLevels.size());
}  // namespace

std::string_view level_name(PrincipalLevel l) noexcept {
  return common::enum_name(kLevelNames, l, "session");
}

std::optional<PrincipalLevel> level_from_name(std::string_view name) noexcept {
  return common::enum_value<PrincipalLevel>(kLevelNames, name);
}

PrincipalField field_of(PrincipalLevel l) noexcept {
  const auto i = static_cast<size_t>(l);
  return i < std::size(kLevelFields) ? kLevelFields[i] : PRINCIPAL_FIELD_UNSPECIFIED;
}

bool parse_ip(std::string_view text, IpBytes* out) noexcept {
  char buf[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buf || text.find('\0') != std::string_view::npos)
    return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpBytes a;
  if (inet_pton(AF_INET, buf, a.b.data()) == 1) {
    *out = a;
    return true;
  }
  if (inet_pton(AF_INET6, buf, a.b.data()) != 1) return false;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.b.data(), kMapped, sizeof kMapped) == 0) {
    std::memmove(a.b.data(), a.b.data() + 12, 4);
    std::fill(a.b.begin() + 4, a.b.end(), 0);
  } else {
    a.v6 = true;
  }
  *out = a;
  return true;
}

IpBytes masked(const IpBytes& a, int bits) noexcept {
  IpBytes m = a;
  bits = std::clamp(bits, 0, a.size() * 8);
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(bits - i * 8, 0, 8);
    m.b[i] = static_cast<uint8_t>(m.b[i] & (keep == 0 ? 0 : (0xFF << (8 - keep)) & 0xFF));
  }
  return m;
}

bool IpNetwork::contains(const IpBytes& a) const noexcept {
  if (a.v6 != base.v6) return false;
  const IpBytes m = masked(a, bits);
  return std::memcmp(m.b.data(), base.b.data(), static_cast<size_t>(a.size())) == 0;
}

std::string IpNetwork::text() const {
  char out[INET6_ADDRSTRLEN];
  if (!inet_ntop(base.v6 ? AF_INET6 : AF_INET, base.b.data(), out, sizeof out)) return "";
  return std::string(out) + "/" + std::to_string(bits);
}

std::optional<IpNetwork> parse_network(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  IpNetwork n;
  if (!parse_ip(text.substr(0, slash), &n.base)) return std::nullopt;
  const std::string_view len = text.substr(slash + 1);
  const auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), n.bits);
  if (ec != std::errc() || end != len.data() + len.size() || n.bits < 0 ||
      n.bits > n.base.size() * 8)
    return std::nullopt;
  if (masked(n.base, n.bits).b != n.base.b) return std::nullopt;  // host bits set
  if (n.text() != text) return std::nullopt;                      // not the canonical spelling
  return n;
}

std::string address_prefix(std::string_view ip, int v4_bits, int v6_bits) {
  IpBytes a;
  if (!parse_ip(ip, &a)) return "";
  IpNetwork n;
  n.bits = std::clamp(a.v6 ? v6_bits : v4_bits, 0, a.size() * 8);
  n.base = masked(a, n.bits);
  return n.text();
}

std::string PrincipalKey::text() const {
  if (value.empty()) return "none:";
  std::string s(level_name(level));
  s += ':';
  s += value;
  return s;
}

PrincipalKey key_at(const Principal& p, PrincipalLevel level, PrefixBits bits) {
  PrincipalKey k;
  k.level = level;
  switch (level) {
    case PrincipalLevel::kSession:
      k.value = p.session();
      break;
    case PrincipalLevel::kIp:
      k.value = p.ip();
      break;
    case PrincipalLevel::kPrefix:
      if (!p.ip().empty()) k.value = address_prefix(p.ip(), bits.ipv4, bits.ipv6);
      break;
    case PrincipalLevel::kUser:
      k.value = p.user();
      break;
  }
  return k;
}

PrincipalKey key_or_fallback(const Principal& p, PrincipalLevel level, PrefixBits bits) {
  if (PrincipalKey k = key_at(p, level, bits); !k.empty()) return k;
  if (level == PrincipalLevel::kPrefix && !p.ip().empty())
    return key_at(p, PrincipalLevel::kIp, bits);
  for (PrincipalLevel l : {PrincipalLevel::kSession, PrincipalLevel::kIp, PrincipalLevel::kUser})
    if (PrincipalKey k = key_at(p, l, bits); !k.empty()) return k;
  return PrincipalKey{};
}

const std::string& partition_key(const Principal& p) noexcept {
  return p.session().empty() ? p.ip() : p.session();
}

}  // namespace immunizer::v1
