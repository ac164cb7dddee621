#include "immunizer/execute/config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

using namespace immunizer;
using execute::ExecuteConfig;

TEST(ExecuteConfig, ShippedExampleLoadsWithEveryKeyKnown) {
  auto c = common::Config::load(std::string(IMMUNIZER_SOURCE_DIR) + "/execute/execute.example.yaml",
                                {"security.signing_key=s3cret"}, "");
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
  auto c = common::Config::from_map({{"security.signing_key_file", path}, {"execute.grpc_listen", "127.0.0.1:0"}});
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
