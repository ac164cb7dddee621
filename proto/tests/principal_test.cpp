// The one principal-key rule (analyze, plan, dashboard), address and network parsing on
// hostile text, and the one action-kind vocabulary.
#include "immunizer/v1/principal.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "immunizer/v1/names.hpp"

using namespace immunizer::v1;

namespace {
Principal principal(const std::string& user, const std::string& session, const std::string& ip) {
  Principal p;
  p.set_user(user);
  p.set_session(session);
  p.set_ip(ip);
  return p;
}
}  // namespace

TEST(PrincipalKey, EachLevelAndTheFallbackOrder) {
  const Principal p = principal("bob", "S", "10.1.2.3");
  EXPECT_EQ(key_at(p, PrincipalLevel::kSession).text(), "session:S");
  EXPECT_EQ(key_at(p, PrincipalLevel::kIp).text(), "ip:10.1.2.3");
  EXPECT_EQ(key_at(p, PrincipalLevel::kPrefix).text(), "prefix:10.1.2.0/24");
  EXPECT_EQ(key_at(p, PrincipalLevel::kPrefix, {16, 48}).text(), "prefix:10.1.0.0/16");
  EXPECT_EQ(key_at(p, PrincipalLevel::kUser).text(), "user:bob");
  EXPECT_EQ(key_at(p, PrincipalLevel::kPrefix).field(), PRINCIPAL_FIELD_IP_PREFIX);
  EXPECT_EQ(key_at(p, PrincipalLevel::kPrefix).value, "10.1.2.0/24");
  // Missing fields: session, then ip, then user; a non-address ip is its own prefix key.
  const Principal only_ip = principal("", "", "192.168.7.9");
  EXPECT_TRUE(key_at(only_ip, PrincipalLevel::kSession).empty());
  EXPECT_EQ(key_or_fallback(only_ip, PrincipalLevel::kSession).text(), "ip:192.168.7.9");
  EXPECT_EQ(key_or_fallback(only_ip, PrincipalLevel::kUser).text(), "ip:192.168.7.9");
  EXPECT_EQ(key_or_fallback(principal("bob", "S", ""), PrincipalLevel::kIp).text(), "session:S");
  EXPECT_EQ(key_or_fallback(principal("", "S", "odd"), PrincipalLevel::kPrefix).text(), "ip:odd");
  EXPECT_TRUE(key_at(principal("", "S", "odd"), PrincipalLevel::kPrefix).empty());
  EXPECT_EQ(key_or_fallback(principal("bob", "", ""), PrincipalLevel::kPrefix).text(), "user:bob");
  EXPECT_EQ(key_or_fallback(Principal{}, PrincipalLevel::kSession).text(), "none:");
  // Kafka message keys: the session, else the address.
  EXPECT_EQ(partition_key(p), "S");
  EXPECT_EQ(partition_key(only_ip), "192.168.7.9");
  for (PrincipalLevel l : kPrincipalLevels) EXPECT_EQ(level_from_name(level_name(l)), l);
  EXPECT_FALSE(level_from_name("Session"));
}

TEST(PrincipalKey, AddressesAndNetworksFromHostileText) {
  EXPECT_EQ(address_prefix("2001:db8:1:2:3:4:5:6", 24, 64), "2001:db8:1:2::/64");
  EXPECT_EQ(address_prefix("192.168.7.9", 20, 64), "192.168.0.0/20");
  EXPECT_EQ(address_prefix("::ffff:192.168.7.9", 24, 64), "192.168.7.0/24") << "mapped is IPv4";
  EXPECT_EQ(address_prefix("10.0.0.1", 99, 64), "10.0.0.1/32") << "clamped";
  for (const std::string& bad :
       std::vector<std::string>{"", "not-an-address", "10.0.0.1:80", "[::1]", "10.0.0", "10.0.0.1 ",
                                std::string("10.0.0.1\0x", 10), std::string(300, '1')})
    EXPECT_EQ(address_prefix(bad, 24, 64), "") << bad;
  const auto n = parse_network("198.51.100.0/24");
  ASSERT_TRUE(n);
  IpBytes a;
  ASSERT_TRUE(parse_ip("198.51.100.77", &a));
  EXPECT_TRUE(n->contains(a));
  ASSERT_TRUE(parse_ip("198.51.101.77", &a));
  EXPECT_FALSE(n->contains(a));
  ASSERT_TRUE(parse_ip("::ffff:198.51.100.1", &a));
  EXPECT_TRUE(n->contains(a));
  ASSERT_TRUE(parse_ip("2001:db8::1", &a));
  EXPECT_FALSE(n->contains(a)) << "another family";
  EXPECT_EQ(n->text(), "198.51.100.0/24");
  ASSERT_TRUE(parse_network("0.0.0.0/0"));
  ASSERT_TRUE(parse_network("2001:db8:1:2::/64"));
  for (const char* bad : {"198.51.100.1/24", "198.51.100.0", "198.51.100.0/", "198.51.100.0/33",
                          "198.51.100.0/024", "198.51.100.0/+8", "2001:DB8::/64", "x/8", "/8"})
    EXPECT_FALSE(parse_network(bad)) << bad;
}

TEST(Names, OneActionKindVocabulary) {
  // Every enum value has one name and one verb, both parse back; the name is the proto
  // value without its ACTION_ prefix, in lower case.
  for (int i = ActionKind_MIN; i <= ActionKind_MAX; ++i) {
    const auto k = static_cast<ActionKind>(i);
    if (k == ACTION_KIND_UNSPECIFIED) continue;
    std::string proto = ActionKind_Name(k).substr(7);
    for (auto& c : proto) c = static_cast<char>(std::tolower(c));
    EXPECT_EQ(name_of(k), proto);
    EXPECT_EQ(action_kind_from_name(name_of(k)), k);
    EXPECT_EQ(action_kind_from_verb(verb_of(k)), k);
  }
  EXPECT_EQ(verb_of(ACTION_BLOCK_PRINCIPAL), "block");
  EXPECT_EQ(action_kind_from_verb("nuke"), ACTION_KIND_UNSPECIFIED);
  EXPECT_EQ(name_of(ACTION_KIND_UNSPECIFIED), "unspecified");
  for (int i = PrincipalField_MIN + 1; i <= PrincipalField_MAX; ++i) {
    const auto f = static_cast<PrincipalField>(i);
    EXPECT_EQ(principal_field_from_name(name_of(f)), f);
  }
  EXPECT_EQ(name_of(PRINCIPAL_FIELD_IP_PREFIX), "prefix");
}
