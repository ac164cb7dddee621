// Principal extraction shared by every integration (httplib middleware, gRPC interceptor,
// the demo shop): the client address from the socket peer, or from a forwarded header
// (X-Forwarded-For or RFC 7239 Forwarded) only when the peer is a configured trusted proxy;
// the session from configured cookies or headers; the user from a configured header.
// Thread-safety: a ProxyTrust / PrincipalExtractor is immutable after construction and may be
// shared by all threads. Every input here is attacker-controlled: nothing throws on it, the
// address returned is always a canonical IP text (inet_ntop) or empty.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace immunizer::integrations {

// An IPv4 or IPv6 address (IPv4-mapped IPv6 is folded to IPv4).
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // v4: first 4 bytes
  // "192.0.2.1", "2001:db8::1", "[2001:db8::1]", "192.0.2.1:8080", "[2001:db8::1]:443",
  // "::ffff:192.0.2.1"; nullopt for anything else.
  static std::optional<IpAddress> parse(std::string_view text);
  std::string str() const;  // canonical text (inet_ntop)
};

// "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). Throws
// std::invalid_argument on a malformed one (configuration, not data).
struct Cidr {
  IpAddress base;
  int prefix = 0;
  static Cidr parse(std::string_view text);
  bool contains(const IpAddress& a) const;
};

// Which forwarded header a trusted proxy writes. Only that one is read: a proxy that
// appends to X-Forwarded-For passes a client's own Forwarded header through untouched.
enum class ForwardedHeader : uint8_t { kXForwardedFor, kForwarded };

struct ProxyTrustOptions {
  std::vector<std::string> trusted_proxies;  // CIDRs; empty (default): no proxy is trusted
  ForwardedHeader header = ForwardedHeader::kXForwardedFor;
};

class ProxyTrust {
 public:
  explicit ProxyTrust(const ProxyTrustOptions& options = {});  // throws on a bad CIDR
  bool trusted(const IpAddress& a) const;
  bool any() const { return !cidrs_.empty(); }
  ForwardedHeader header() const { return header_; }

  // The client address. `peer` is the socket peer ("1.2.3.4", "::1", "ipv4:1.2.3.4:5",
  // "ipv6:[::1]:5" as gRPC spells it); `forwarded` the values of every instance of the
  // configured header, in order. When the peer is not trusted the forwarded values are
  // ignored. Otherwise the chain (leftmost = original client) is walked from the right,
  // skipping trusted proxies; the first untrusted hop is the client. A hop that is not an
  // address (garbage, "unknown", an obfuscated identifier) ends the walk: the last address
  // known to be good (a trusted proxy) is returned. All hops trusted: the leftmost one.
  // Returns "" when the peer itself is not an address.
  std::string client_address(std::string_view peer,
                             const std::vector<std::string_view>& forwarded) const;

 private:
  std::vector<Cidr> cidrs_;
  ForwardedHeader header_;
};

// The hops of X-Forwarded-For values ("a, b, c") or of Forwarded values
// ("for=a;proto=https, for=\"[v6]:port\""), left to right, as raw tokens (a Forwarded
// element without for= yields an empty token, which is not an address).
std::vector<std::string_view> forwarded_hops(ForwardedHeader header,
                                             const std::vector<std::string_view>& values);

// The value of cookie `name` in a Cookie header value, or empty.
std::string_view cookie_value(std::string_view cookie_header, std::string_view name);

struct PrincipalOptions {
  ProxyTrustOptions proxies;
  // Session: the first non-empty of these cookies, then of these headers (HTTP) or metadata
  // keys (gRPC, lower case).
  std::vector<std::string> session_cookies{"JSESSIONID"};
  std::vector<std::string> session_headers;
  // User: the first non-empty of these headers / metadata keys. Only set a header your own
  // authentication layer writes (and strips from clients): anything else is forgeable.
  std::vector<std::string> user_headers;

  // IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES (comma-separated CIDRs),
  // IMMUNIZER_PRINCIPAL_FORWARDED_HEADER (x-forwarded-for | forwarded),
  // IMMUNIZER_PRINCIPAL_SESSION_COOKIES, IMMUNIZER_PRINCIPAL_SESSION_HEADERS,
  // IMMUNIZER_PRINCIPAL_USER_HEADERS (comma-separated names; "" clears) over the defaults.
  // Throws std::invalid_argument naming the variable on a bad value.
  static PrincipalOptions from_env();
};

// Splits "a, b,c" on commas, trimming blanks, dropping empty items.
std::vector<std::string> split_list(std::string_view s);

}  // namespace immunizer::integrations
