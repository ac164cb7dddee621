#include "immunizer/execute/config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

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
}  // namespace

TEST(ExecuteConfig, ShippedExampleLoadsWithEveryKeyKnown) {
  auto c = common::Config::load(std::string(IMMUNIZER_SOURCE_DIR) + "/execute/execute.example.yaml",
                                {"security.signing_key=s3cret", "execute.plan_public_keys=" + plan_pub_file()}, "");
  const auto e = ExecuteConfig::from_config(c);
  // Shared keys the service runtime reads.
  c.get_string("kafka.bootstrap", "");
  c.get_string("kafka.topic_prefix", "");
  c.get_string("http.listen", "");
  c.get_int("http.port", 0, 0, 65535);
  c.get_string("log.level", "");
  EXPECT_NO_THROW(c.reject_unknown());
  EXPECT_EQ(e.grpc_listen, "0.0.0.0:7070");
  EXPECT_EQ(e.group, "immunizer-execute");
  EXPECT_EQ(e.key_id, "k1");
  EXPECT_EQ(e.signing_key, "s3cret");
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
    ExecuteConfig::from_config(common::Config::from_map({{"security.signing_key", "k"}}));
    FAIL() << "expected ConfigError";
  } catch (const common::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("execute.plan_public_keys"), std::string::npos);
  }
  const std::string missing = ::testing::TempDir() + "/no-such-plan-key.pem";
  try {
    ExecuteConfig::from_config(common::Config::from_map({{"security.signing_key", "k"}, {"execute.plan_public_keys", missing}}));
    FAIL() << "expected ConfigError";
  } catch (const common::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos);
  }
  const std::string junk = ::testing::TempDir() + "/junk.pem";
  std::ofstream(junk) << "not a key\n";
  EXPECT_THROW(ExecuteConfig::from_config(common::Config::from_map(
                   {{"security.signing_key", "k"}, {"execute.plan_public_keys", junk}})),
               common::ConfigError);
  // Two keys during a rotation; guard keys read and checked.
  const auto e = ExecuteConfig::from_config(common::Config::from_map(
      {{"security.signing_key", "k"},
       {"execute.plan_public_keys", plan_pub_file("a.pem") + "," + plan_pub_file("b.pem")},
       {"execute.guard.automatic_actions", "block,disable"},
       {"execute.guard.automatic_max_ttl_ms", "60000"},
       {"execute.guard.max_automatic_blocks_per_minute", "5"}}));
  EXPECT_EQ(e.plan_public_keys_pem.size(), 2u);
  EXPECT_EQ(e.guard_automatic_actions, (std::vector<std::string>{"block", "disable"}));
  EXPECT_EQ(e.guard_automatic_max_ttl_ms, 60000);
  EXPECT_EQ(e.guard_max_automatic_blocks_per_minute, 5);
  EXPECT_THROW(ExecuteConfig::from_config(common::Config::from_map(
                   {{"security.signing_key", "k"}, {"execute.plan_public_keys", plan_pub_file()},
                    {"execute.guard.automatic_actions", "nuke"}})),
               common::ConfigError);
  EXPECT_THROW(ExecuteConfig::from_config(common::Config::from_map(
                   {{"security.signing_key", "k"}, {"execute.plan_public_keys", plan_pub_file()},
                    {"execute.guard.max_automatic_blocks_per_minute", "0"}})),
               common::ConfigError);
}

TEST(ExecuteConfig, SigningKeyIsRequired) {
  auto c = common::Config::from_map({});
  try {
    ExecuteConfig::from_config(c);
    FAIL() << "expected ConfigError";
  } catch (const common::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("security.signing_key"), std::string::npos);
  }
}

TEST(ExecuteConfig, SigningKeyFromFileAndBadValues) {
  const std::string path = ::testing::TempDir() + "/execute_key";
  std::ofstream(path) << "from-file\n";
  auto c = common::Config::from_map({{"security.signing_key_file", path}, {"execute.grpc_listen", "127.0.0.1:0"},
                                     {"execute.plan_public_keys", plan_pub_file()}});
  const auto e = ExecuteConfig::from_config(c);
  EXPECT_EQ(e.signing_key, "from-file");
  EXPECT_EQ(e.grpc_listen, "127.0.0.1:0");
  std::remove(path.c_str());

  EXPECT_THROW(ExecuteConfig::from_config(common::Config::from_map(
                   {{"security.signing_key", "k"}, {"execute.grpc_listen", "7070"}})),
               common::ConfigError);
  EXPECT_THROW(ExecuteConfig::from_config(common::Config::from_map(
                   {{"security.signing_key", "k"}, {"execute.default_ttl_ms", "10"}})),
               common::ConfigError);
  EXPECT_THROW(ExecuteConfig::from_config(common::Config::from_map(
                   {{"security.signing_key", "k"}, {"execute.tls_cert_file", "/x.crt"}})),
               common::ConfigError);
}
