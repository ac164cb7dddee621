#include "immunizer/integrations/principal.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>

using namespace immunizer::integrations;

namespace {
ProxyTrust trust(std::vector<std::string> cidrs,
                 ForwardedHeader h = ForwardedHeader::kXForwardedFor) {
  return ProxyTrust({.trusted_proxies = std::move(cidrs), .header = h});
}
}  // namespace

TEST(IpAddress, ParsesAndCanonicalises) {
  EXPECT_EQ(IpAddress::parse("192.0.2.1")->str(), "192.0.2.1");
  EXPECT_EQ(IpAddress::parse(" 192.0.2.1:8080 ")->str(), "192.0.2.1");
  EXPECT_EQ(IpAddress::parse("2001:DB8:0::1")->str(), "2001:db8::1");
  EXPECT_EQ(IpAddress::parse("[2001:db8::1]:443")->str(), "2001:db8::1");
  EXPECT_EQ(IpAddress::parse("[::1]")->str(), "::1");
  EXPECT_EQ(IpAddress::parse("::ffff:10.1.2.3")->str(), "10.1.2.3");  // IPv4-mapped folds to IPv4
  EXPECT_FALSE(IpAddress::parse("::ffff:10.1.2.3")->v6);
  for (const char* bad :
       {"", "unknown", "_hidden", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:http", "[1.2.3.4]",
        "[::1", "::1]:5", "fe80::1%eth0", "\xc0\xaf", "1.2.3.4 5.6.7.8", "[::1]:99999999"})
    EXPECT_FALSE(IpAddress::parse(bad)) << bad;
  EXPECT_FALSE(IpAddress::parse(std::string(100, '1')));
}

TEST(Cidr, ContainsV4AndV6) {
  const auto c = Cidr::parse("10.0.0.0/8");
  EXPECT_TRUE(c.contains(*IpAddress::parse("10.255.1.2")));
  EXPECT_FALSE(c.contains(*IpAddress::parse("11.0.0.1")));
  EXPECT_TRUE(c.contains(*IpAddress::parse("::ffff:10.0.0.1")));
  EXPECT_FALSE(c.contains(*IpAddress::parse("::a00:1")));  // v6, not mapped
  const auto n = Cidr::parse("192.168.1.128/25");
  EXPECT_TRUE(n.contains(*IpAddress::parse("192.168.1.200")));
  EXPECT_FALSE(n.contains(*IpAddress::parse("192.168.1.127")));
  const auto v6 = Cidr::parse("2001:db8::/33");
  EXPECT_TRUE(v6.contains(*IpAddress::parse("2001:db8:7fff::1")));
  EXPECT_FALSE(v6.contains(*IpAddress::parse("2001:db8:8000::1")));
  EXPECT_FALSE(v6.contains(*IpAddress::parse("192.0.2.1")));
  EXPECT_TRUE(Cidr::parse("0.0.0.0/0").contains(*IpAddress::parse("8.8.8.8")));
  EXPECT_TRUE(Cidr::parse("127.0.0.1").contains(*IpAddress::parse("127.0.0.1")));
  EXPECT_FALSE(Cidr::parse("127.0.0.1").contains(*IpAddress::parse("127.0.0.2")));
  for (const char* bad :
       {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "foo", "10.0.0.0/8/8", ""})
    EXPECT_THROW(Cidr::parse(bad), std::invalid_argument) << bad;
}

TEST(ProxyTrust, DefaultTrustsNobodySoASpoofedForwardedForIsIgnored) {
  const ProxyTrust none;
  EXPECT_EQ(none.client_address("203.0.113.9", {"192.0.2.66"}), "203.0.113.9");
  EXPECT_EQ(none.client_address("127.0.0.1", {"192.0.2.66, 10.0.0.1"}), "127.0.0.1");
}

TEST(ProxyTrust, SpoofedForwardedForFromAnUntrustedPeerIsIgnored) {
  const auto t = trust({"10.0.0.0/8"});
  EXPECT_EQ(t.client_address("198.51.100.7", {"192.0.2.66"}), "198.51.100.7");
}

TEST(ProxyTrust, WalksTheChainFromTheRightSkippingTrustedProxies) {
  const auto t = trust({"10.0.0.0/8", "2001:db8:ffff::/48"});
  EXPECT_EQ(t.client_address("10.0.0.1", {"198.51.100.7"}), "198.51.100.7");
  // The client prepended a fake hop; the proxy appended the real one: the real one wins.
  EXPECT_EQ(t.client_address("10.0.0.1", {"192.0.2.66, 198.51.100.7"}), "198.51.100.7");
  // Two proxies: the first untrusted hop from the right is the client.
  EXPECT_EQ(t.client_address("10.0.0.1", {"192.0.2.66, 198.51.100.7, 10.2.2.2"}), "198.51.100.7");
  // Several header instances are one list, in order.
  EXPECT_EQ(t.client_address("10.0.0.1", {"192.0.2.66", "198.51.100.7:5000"}), "198.51.100.7");
  // Every hop trusted: the leftmost.
  EXPECT_EQ(t.client_address("10.0.0.1", {"10.9.9.9, 10.2.2.2"}), "10.9.9.9");
  // IPv6 peer and hops.
  EXPECT_EQ(t.client_address("2001:db8:ffff::1", {"[2001:db8:1::5]:1234"}), "2001:db8:1::5");
  EXPECT_EQ(t.client_address("::ffff:10.0.0.1", {"2001:DB8:1::5"}), "2001:db8:1::5");
  // No header: the peer.
  EXPECT_EQ(t.client_address("10.0.0.1", {}), "10.0.0.1");
}

TEST(ProxyTrust, GarbageInTheChainStopsAtTheLastGoodHop) {
  const auto t = trust({"10.0.0.0/8"});
  EXPECT_EQ(t.client_address("10.0.0.1", {"\xc0\xaf"}), "10.0.0.1");
  EXPECT_EQ(t.client_address("10.0.0.1", {"192.0.2.66, \xc0\xaf, 10.3.3.3"}), "10.3.3.3");
  EXPECT_EQ(t.client_address("10.0.0.1", {"192.0.2.66, 198.51.100.7 ' OR 1=1"}), "10.0.0.1");
  EXPECT_EQ(t.client_address("10.0.0.1", {std::string(100000, ',')}), "10.0.0.1");
  EXPECT_EQ(t.client_address("not an address", {"192.0.2.66"}), "");
}

TEST(ProxyTrust, ForwardedHeaderRfc7239) {
  const auto t = trust({"10.0.0.0/8"}, ForwardedHeader::kForwarded);
  EXPECT_EQ(t.client_address("10.0.0.1", {"for=192.0.2.60;proto=http;by=203.0.113.43"}),
            "192.0.2.60");
  EXPECT_EQ(t.client_address("10.0.0.1", {"For=\"[2001:db8:cafe::17]:4711\""}),
            "2001:db8:cafe::17");
  EXPECT_EQ(t.client_address("10.0.0.1", {"for=192.0.2.66, for=198.51.100.7;proto=https"}),
            "198.51.100.7");
  EXPECT_EQ(t.client_address("10.0.0.1", {"for=unknown"}), "10.0.0.1");
  EXPECT_EQ(t.client_address("10.0.0.1", {"proto=https"}), "10.0.0.1");  // no for=
  EXPECT_EQ(t.client_address("10.0.0.1", {"for=\"_gazonk\", for=10.1.1.1"}), "10.1.1.1");
  // In Forwarded mode an X-Forwarded-For-style value is not an element with for=.
  EXPECT_EQ(t.client_address("10.0.0.1", {"192.0.2.66"}), "10.0.0.1");
  const auto hops = forwarded_hops(ForwardedHeader::kForwarded, {"for=\"a,b\";by=x, for=c"});
  ASSERT_EQ(hops.size(), 2u);
  EXPECT_EQ(hops[0], "a,b");
  EXPECT_EQ(hops[1], "c");
}

TEST(ProxyTrust, GrpcPeerStrings) {
  const ProxyTrust none;
  EXPECT_EQ(none.client_address("ipv4:127.0.0.1:50051", {}), "127.0.0.1");
  EXPECT_EQ(none.client_address("ipv6:[::1]:50051", {}), "::1");
  EXPECT_EQ(none.client_address("ipv6:%5B::1%5D:50051", {}), "::1");
  EXPECT_EQ(none.client_address("unix:/tmp/sock", {}), "");
}

TEST(Principal, CookieValue) {
  EXPECT_EQ(cookie_value("JSESSIONID=ABC123", "JSESSIONID"), "ABC123");
  EXPECT_EQ(cookie_value("a=1; JSESSIONID=XYZ; b=2", "JSESSIONID"), "XYZ");
  EXPECT_EQ(cookie_value("MYJSESSIONID=no", "JSESSIONID"), "");
  EXPECT_EQ(cookie_value("", "JSESSIONID"), "");
  EXPECT_EQ(cookie_value("JSESSIONID", "JSESSIONID"), "");
}

TEST(Principal, FromEnvironment) {
  setenv("IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES", "127.0.0.1/32, ::1", 1);
  setenv("IMMUNIZER_PRINCIPAL_FORWARDED_HEADER", "Forwarded", 1);
  setenv("IMMUNIZER_PRINCIPAL_SESSION_COOKIES", "sid,JSESSIONID", 1);
  setenv("IMMUNIZER_PRINCIPAL_USER_HEADERS", "x-authenticated-user", 1);
  auto o = PrincipalOptions::from_env();
  EXPECT_EQ(o.proxies.trusted_proxies, (std::vector<std::string>{"127.0.0.1/32", "::1"}));
  EXPECT_EQ(o.proxies.header, ForwardedHeader::kForwarded);
  EXPECT_EQ(o.session_cookies, (std::vector<std::string>{"sid", "JSESSIONID"}));
  EXPECT_EQ(o.user_headers, (std::vector<std::string>{"x-authenticated-user"}));
  setenv("IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES", "127.0.0.1/40", 1);
  EXPECT_THROW(PrincipalOptions::from_env(), std::invalid_argument);
  setenv("IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES", "", 1);
  setenv("IMMUNIZER_PRINCIPAL_FORWARDED_HEADER", "x-real-ip", 1);
  EXPECT_THROW(PrincipalOptions::from_env(), std::invalid_argument);
  for (const char* v :
       {"IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES", "IMMUNIZER_PRINCIPAL_FORWARDED_HEADER",
        "IMMUNIZER_PRINCIPAL_SESSION_COOKIES", "IMMUNIZER_PRINCIPAL_USER_HEADERS"})
    unsetenv(v);
  o = PrincipalOptions::from_env();
  EXPECT_TRUE(o.proxies.trusted_proxies.empty());
  EXPECT_EQ(o.session_cookies, (std::vector<std::string>{"JSESSIONID"}));
}
