#include "immunizer/execute/config.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdio>

#include <fstream>
#include <map>

#include "immunizer/crypto/ed25519.hpp"

using namespace immunizer;
using execute::ExecuteConfig;

namespace {
// A trusted plan public key file; its path.
std::string plan_pub_file(const std::string& name = "plan.pub.pem") {
  static const std::string pem = crypto::generate_ed25519().public_pem;
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << pem;
  return path;
}
// A real key file for the tests (the example points at /etc/immunizer/keys/execute.key).
std::string key_file() {
  static const std::string path = [] {
    const std::string p =
        ::testing::TempDir() + "/execute_config_test_" + std::to_string(getpid()) + ".key";
    crypto::write_secret_file(p, crypto::generate_ed25519().private_pem);
    return p;
  }();
  return path;
}
common::Config with_key(std::map<std::string, std::string> m) {
  m.emplace("execute.directive_signing_key_file", key_file());
  m.emplace("execute.tls", "none");
  m.emplace("execute.plan_public_keys", plan_pub_file());
  return common::Config::from_map(std::move(m));
}
}  // namespace

TEST(ExecuteConfig, ShippedExampleLoadsWithEveryKeyKnown) {
  auto c = common::Config::load(std::string(IMMUNIZER_SOURCE_DIR) + "/execute/execute.example.yaml",
                                {"execute.directive_signing_key_file=" + key_file(),
                                 "execute.plan_public_keys=" + plan_pub_file()},
                                "");
  const auto e = ExecuteConfig::from_config(c);
  // Shared keys the service runtime reads.
  c.get_string("kafka.bootstrap", "");
  c.get_string("kafka.topic_prefix", "");
  c.get_string("http.listen", "");
  c.get_int("http.port", 0, 0, 65535);
  c.get_string("log.level", "");
  EXPECT_NO_THROW(c.reject_unknown());
  EXPECT_EQ(e.grpc_listen, "127.0.0.1:7070");
  EXPECT_EQ(e.group, "immunizer-execute");
  ASSERT_TRUE(e.signing_key);
  EXPECT_EQ(e.signing_key->key_id().size(), 16u);
  EXPECT_TRUE(e.tls.enabled);
  EXPECT_EQ(e.tls.ca_file, "/etc/immunizer/tls/ca.crt");
  EXPECT_EQ(e.tls.cert_file, "/etc/immunizer/tls/tls.crt");
  EXPECT_EQ(e.tls.key_file, "/etc/immunizer/tls/tls.key");
  EXPECT_EQ(e.default_ttl_ms, 300000);
  EXPECT_EQ(e.max_ttl_ms, 2592000000LL);
  EXPECT_EQ(e.plan_public_keys_pem.size(), 1u);
  EXPECT_EQ(e.guard_automatic_actions, (std::vector<std::string>{"block", "throttle", "abort"}));
  EXPECT_EQ(e.guard_automatic_max_ttl_ms, 3600000);
  EXPECT_EQ(e.guard_max_automatic_blocks_per_minute, 300);
  EXPECT_EQ(e.guard_breaker_cooldown_ms, 300000);
}

TEST(ExecuteConfig, TrustedPlanKeysAreRequiredAndChecked) {
  try {
    ExecuteConfig::from_config(common::Config::from_map(
        {{"execute.directive_signing_key_file", key_file()}, {"execute.tls", "none"}}));
    FAIL() << "expected ConfigError";
  } catch (const common::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("execute.plan_public_keys"), std::string::npos);
  }
  const std::string missing = ::testing::TempDir() + "/no-such-plan-key.pem";
  try {
    ExecuteConfig::from_config(
        common::Config::from_map({{"execute.directive_signing_key_file", key_file()},
                                  {"execute.tls", "none"},
                                  {"execute.plan_public_keys", missing}}));
    FAIL() << "expected ConfigError";
  } catch (const common::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos);
  }
  const std::string junk = ::testing::TempDir() + "/junk.pem";
  std::ofstream(junk) << "not a key\n";
  EXPECT_THROW(ExecuteConfig::from_config(
                   common::Config::from_map({{"execute.directive_signing_key_file", key_file()},
                                             {"execute.tls", "none"},
                                             {"execute.plan_public_keys", junk}})),
               common::ConfigError);
  // Two keys during a rotation; guard keys read and checked.
  const auto e = ExecuteConfig::from_config(common::Config::from_map(
      {{"execute.directive_signing_key_file", key_file()},
       {"execute.tls", "none"},
       {"execute.plan_public_keys", plan_pub_file("a.pem") + "," + plan_pub_file("b.pem")},
       {"execute.guard.automatic_actions", "block,disable"},
       {"execute.guard.automatic_max_ttl_ms", "60000"},
       {"execute.guard.max_automatic_blocks_per_minute", "5"}}));
  EXPECT_EQ(e.plan_public_keys_pem.size(), 2u);
  EXPECT_EQ(e.guard_automatic_actions, (std::vector<std::string>{"block", "disable"}));
  EXPECT_EQ(e.guard_automatic_max_ttl_ms, 60000);
  EXPECT_EQ(e.guard_max_automatic_blocks_per_minute, 5);
  EXPECT_THROW(ExecuteConfig::from_config(
                   common::Config::from_map({{"execute.directive_signing_key_file", key_file()},
                                             {"execute.tls", "none"},
                                             {"execute.plan_public_keys", plan_pub_file()},
                                             {"execute.guard.automatic_actions", "nuke"}})),
               common::ConfigError);
  EXPECT_THROW(ExecuteConfig::from_config(common::Config::from_map(
                   {{"execute.directive_signing_key_file", key_file()},
                    {"execute.tls", "none"},
                    {"execute.plan_public_keys", plan_pub_file()},
                    {"execute.guard.max_automatic_blocks_per_minute", "0"}})),
               common::ConfigError);
}

TEST(ExecuteConfig, SigningKeyIsRequiredAndTheSharedHmacKeyIsRefused) {
  try {
    ExecuteConfig::from_config(common::Config::from_map({{"execute.tls", "none"}}));
    FAIL() << "expected ConfigError";
  } catch (const common::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("execute.directive_signing_key_file"), std::string::npos)
        << e.what();
  }
  // The HMAC key of earlier releases, of any length, is refused by name.
  for (const char* k : {"security.signing_key", "security.signing_key_file", "security.key_id"}) {
    try {
      ExecuteConfig::from_config(with_key({{k, "0123456789abcdef0123456789abcdef0123456789"}}));
      FAIL() << "expected ConfigError for " << k;
    } catch (const common::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(k), std::string::npos) << e.what();
    }
  }
  // A public key, or no PEM at all, is not a signing key.
  const std::string pub = ::testing::TempDir() + "/execute_config_test.pub";
  std::ofstream(pub) << crypto::generate_ed25519().public_pem;
  EXPECT_THROW(ExecuteConfig::from_config(common::Config::from_map(
                   {{"execute.tls", "none"}, {"execute.directive_signing_key_file", pub}})),
               common::ConfigError);
  std::remove(pub.c_str());
}

TEST(ExecuteConfig, MutualTlsFilesAreRequiredUnlessTlsIsNone) {
  auto c = common::Config::from_map({{"execute.directive_signing_key_file", key_file()}});
  EXPECT_THROW(ExecuteConfig::from_config(c), common::ConfigError);
  EXPECT_THROW(ExecuteConfig::from_config(
                   common::Config::from_map({{"execute.directive_signing_key_file", key_file()},
                                             {"execute.tls_cert_file", "/x.crt"}})),
               common::ConfigError);
  EXPECT_THROW(
      ExecuteConfig::from_config(common::Config::from_map(
          {{"execute.directive_signing_key_file", key_file()}, {"execute.tls", "plaintext"}})),
      common::ConfigError);
  const auto e = ExecuteConfig::from_config(with_key({}));
  EXPECT_FALSE(e.tls.enabled);
}

TEST(ExecuteConfig, BadValues) {
  EXPECT_EQ(
      ExecuteConfig::from_config(with_key({{"execute.grpc_listen", "127.0.0.1:0"}})).grpc_listen,
      "127.0.0.1:0");
  EXPECT_THROW(ExecuteConfig::from_config(with_key({{"execute.grpc_listen", "7070"}})),
               common::ConfigError);
  EXPECT_THROW(ExecuteConfig::from_config(with_key({{"execute.default_ttl_ms", "10"}})),
               common::ConfigError);
}
