#include "immunizer/integrations/principal.hpp"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "immunizer/common/split.hpp"

namespace immunizer::integrations {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// inet_pton on a bounded copy (the input is not NUL-terminated).
std::optional<IpAddress> pton(std::string_view s) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (s.empty() || s.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  IpAddress a;
  if (s.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.bytes.data(), kMapped, 12) == 0) {
    std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
    std::memset(a.bytes.data() + 4, 0, 12);
    return a;
  }
  a.v6 = true;
  return a;
}

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view t) {
  t = trim(t);
  if (t.empty() || t.size() > 64) return std::nullopt;
  if (t.front() == '[') {  // "[v6]" or "[v6]:port"
    const size_t close = t.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view rest = t.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && all_digits(rest.substr(1)))) return std::nullopt;
    auto a = pton(t.substr(1, close - 1));
    if (a && !a->v6 && t.substr(1, close - 1).find(':') == std::string_view::npos)
      return std::nullopt;  // "[1.2.3.4]"
    return a;
  }
  const size_t first = t.find(':');
  if (first != std::string_view::npos && t.find(':', first + 1) == std::string_view::npos) {
    // exactly one colon: "v4:port"
    if (!all_digits(t.substr(first + 1))) return std::nullopt;
    auto a = pton(t.substr(0, first));
    if (a && a->v6) return std::nullopt;
    return a;
  }
  return pton(t);
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN];
  if (!inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf)) return {};
  return buf;
}

Cidr Cidr::parse(std::string_view text) {
  const std::string_view t = trim(text);
  const size_t slash = t.find('/');
  const auto a = pton(slash == std::string_view::npos ? t : t.substr(0, slash));
  if (!a) throw std::invalid_argument("'" + std::string(text) + "' is not an IP address or CIDR");
  Cidr c;
  c.base = *a;
  const int max = a->v6 ? 128 : 32;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view p = t.substr(slash + 1);
    if (p.empty() || p.size() > 3 || !all_digits(p))
      throw std::invalid_argument("'" + std::string(text) + "': bad prefix length");
    c.prefix = std::atoi(std::string(p).c_str());
    if (c.prefix > max)
      throw std::invalid_argument("'" + std::string(text) + "': prefix length above " +
                                  std::to_string(max));
  }
  return c;
}

bool Cidr::contains(const IpAddress& a) const {
  if (a.v6 != base.v6) return false;
  const int full = prefix / 8, bits = prefix % 8;
  if (std::memcmp(a.bytes.data(), base.bytes.data(), static_cast<size_t>(full)) != 0) return false;
  if (bits == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (a.bytes[full] & mask) == (base.bytes[full] & mask);
}

ProxyTrust::ProxyTrust(const ProxyTrustOptions& o) : header_(o.header) {
  for (const auto& s : o.trusted_proxies) cidrs_.push_back(Cidr::parse(s));
}

bool ProxyTrust::trusted(const IpAddress& a) const {
  for (const auto& c : cidrs_)
    if (c.contains(a)) return true;
  return false;
}

std::vector<std::string_view> forwarded_hops(ForwardedHeader header,
                                             const std::vector<std::string_view>& values) {
  std::vector<std::string_view> hops;
  for (const std::string_view v : values) {
    if (header == ForwardedHeader::kXForwardedFor) {
      common::for_each_part(v, ',', [&](std::string_view part) {
        if (const auto hop = trim(part); !hop.empty()) hops.push_back(hop);
      });
      continue;
    }
    // Forwarded: elements separated by commas (outside quotes), pairs by semicolons.
    size_t begin = 0;
    bool quoted = false;
    for (size_t i = 0; i <= v.size(); ++i) {
      if (i < v.size() && v[i] == '"') quoted = !quoted;
      if (i < v.size() && (quoted || v[i] != ',')) continue;
      const std::string_view element = v.substr(begin, i - begin);
      begin = i + 1;
      if (trim(element).empty()) continue;
      std::string_view value;  // stays empty when the element has no for=
      size_t p = 0;
      while (p <= element.size()) {
        size_t semi = element.find(';', p);
        if (semi == std::string_view::npos) semi = element.size();
        const auto pair = trim(element.substr(p, semi - p));
        const size_t eq = pair.find('=');
        if (eq != std::string_view::npos && iequals(trim(pair.substr(0, eq)), "for")) {
          value = trim(pair.substr(eq + 1));
          if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
            value = value.substr(1, value.size() - 2);
          break;
        }
        p = semi + 1;
      }
      hops.push_back(value);
    }
  }
  return hops;
}

std::string ProxyTrust::client_address(std::string_view peer,
                                       const std::vector<std::string_view>& forwarded) const {
  // gRPC peers: "ipv4:1.2.3.4:5", "ipv6:[::1]:5" (newer gRPC percent-encodes the brackets).
  std::string decoded;
  if (peer.starts_with("ipv4:") || peer.starts_with("ipv6:")) {
    peer.remove_prefix(5);
    if (peer.starts_with("%5B") || peer.starts_with("%5b")) {
      decoded.assign(peer);
      for (const char* enc : {"%5B", "%5b", "%5D", "%5d"}) {
        for (size_t at; (at = decoded.find(enc)) != std::string::npos;)
          decoded.replace(at, 3, enc[2] == 'B' || enc[2] == 'b' ? "[" : "]");
      }
      peer = decoded;
    }
  }
  const auto p = IpAddress::parse(peer);
  if (!p) return {};
  if (cidrs_.empty() || !trusted(*p) || forwarded.empty()) return p->str();
  const auto hops = forwarded_hops(header_, forwarded);
  IpAddress last = *p;
  for (size_t i = hops.size(); i-- > 0;) {
    const auto a = IpAddress::parse(hops[i]);
    if (!a) return last.str();  // not an address: trust ends at the last good hop
    if (!trusted(*a)) return a->str();
    last = *a;
  }
  return last.str();
}

std::string_view cookie_value(std::string_view cookie, std::string_view name) {
  size_t at = 0;
  while (at < cookie.size()) {
    size_t semi = cookie.find(';', at);
    if (semi == std::string_view::npos) semi = cookie.size();
    const auto pair = trim(cookie.substr(at, semi - at));
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    at = semi + 1;
  }
  return {};
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  common::for_each_part(s, ',', [&](std::string_view part) {
    if (const auto item = trim(part); !item.empty()) out.emplace_back(item);
  });
  return out;
}

PrincipalOptions PrincipalOptions::from_env() {
  PrincipalOptions o;
  auto list = [](const char* name, std::vector<std::string>& into) {
    if (const char* v = std::getenv(name)) into = split_list(v);
  };
  list("IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES", o.proxies.trusted_proxies);
  for (const auto& c : o.proxies.trusted_proxies) {
    try {
      (void)Cidr::parse(c);
    } catch (const std::exception& e) {
      throw std::invalid_argument(std::string("IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES: ") + e.what());
    }
  }
  if (const char* v = std::getenv("IMMUNIZER_PRINCIPAL_FORWARDED_HEADER"); v && *v) {
    const std::string_view h = trim(v);
    if (iequals(h, "x-forwarded-for"))
      o.proxies.header = ForwardedHeader::kXForwardedFor;
    else if (iequals(h, "forwarded"))
      o.proxies.header = ForwardedHeader::kForwarded;
    else
      throw std::invalid_argument("IMMUNIZER_PRINCIPAL_FORWARDED_HEADER='" + std::string(v) +
                                  "': expected x-forwarded-for or forwarded");
  }
  list("IMMUNIZER_PRINCIPAL_SESSION_COOKIES", o.session_cookies);
  list("IMMUNIZER_PRINCIPAL_SESSION_HEADERS", o.session_headers);
  list("IMMUNIZER_PRINCIPAL_USER_HEADERS", o.user_headers);
  return o;
}

}  // namespace immunizer::integrations
