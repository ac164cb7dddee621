#include "immunizer/common/config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using immunizer::common::Config;
using immunizer::common::ConfigError;

namespace {
std::string write_yaml(const std::string& text) {
  auto p = std::filesystem::temp_directory_path() /
           ("immunizer_cfg_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(p) << text;
  return p.string();
}
}  // namespace

TEST(Config, FileThenEnvThenFlagPrecedence) {
  const auto path = write_yaml("kafka:\n  bootstrap: file:1\nanalyze:\n  trees: 50\n");
  ::setenv("IMMUNIZERTEST_ANALYZE_TREES", "70", 1);
  auto c = Config::load(path, {}, "IMMUNIZERTEST_");
  EXPECT_EQ(c.get_string("kafka.bootstrap", "x"), "file:1");
  EXPECT_EQ(c.get_int("analyze.trees", 100, 1, 1000), 70);
  auto c2 = Config::load(path, {"analyze.trees=90"}, "IMMUNIZERTEST_");
  EXPECT_EQ(c2.get_int("analyze.trees", 100, 1, 1000), 90);
  ::unsetenv("IMMUNIZERTEST_ANALYZE_TREES");
}

TEST(Config, UnknownKeyIsRejectedByName) {
  auto c = Config::load("", {"kafka.bootstrap=a:1", "kafka.bootstap=typo"}, "");
  c.get_string("kafka.bootstrap", "");
  try {
    c.reject_unknown();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("kafka.bootstap"), std::string::npos);
  }
}

TEST(Config, BadValuesNameTheKey) {
  auto c = Config::load("", {"a.n=12x", "a.r=500", "a.b=maybe", "a.e=blue"}, "");
  EXPECT_THROW(c.get_int("a.n", 1, 0, 10), ConfigError);
  try {
    c.get_int("a.r", 1, 0, 100);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'a.r'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos);
  }
  EXPECT_THROW(c.get_bool("a.b", false), ConfigError);
  EXPECT_THROW(c.get_enum("a.e", "red", {"red", "green"}), ConfigError);
}

TEST(Config, ExpandsEnvironmentInFileValues) {
  ::setenv("IMMUNIZER_TEST_SECRET", "s3cret", 1);
  const auto path = write_yaml("security:\n  signing_key: ${IMMUNIZER_TEST_SECRET}\n");
  auto c = Config::load(path, {}, "");
  EXPECT_EQ(c.get_secret("security.signing_key"), "s3cret");
  const auto bad = write_yaml("security:\n  signing_key: ${IMMUNIZER_TEST_UNSET_VAR}\n");
  EXPECT_THROW(Config::load(bad, {}, ""), ConfigError);
}

// Found by fuzz_config: YAML that parses but does not flatten (a mapping or sequence as a
// key, a sequence inside a sequence) escaped as a yaml-cpp exception.
TEST(Config, YamlThatIsNotKeyValueIsAConfigError) {
  for (const char* text :
       {"? [a]: 1\nb: 2\n", "{[x, y]: 1}\n", "a:\n  - [1, 2]\n", "a:\n  - {b: 1}\n"}) {
    const auto path = write_yaml(text);
    EXPECT_THROW(Config::load(path, {}, ""), ConfigError) << text;
  }
}

TEST(Config, MalformedFileAndFlagAreClear) {
  const auto path = write_yaml("a: [unclosed\n");
  EXPECT_THROW(Config::load(path, {}, ""), ConfigError);
  EXPECT_THROW(Config::load("", {"novalue"}, ""), ConfigError);
  EXPECT_THROW(Config::load("/nonexistent/file.yaml", {}, ""), ConfigError);
}

TEST(Config, CheckingModeCollectsEveryErrorWithItsKeyAndReturnsDefaults) {
  auto c = Config::load(
      "", {"a.n=12x", "a.r=500", "a.b=maybe", "a.e=blue", "a.d=x", "a.typo=1", "a.ok=3"}, "");
  c.collect_errors();
  EXPECT_EQ(c.get_int("a.n", 1, 0, 10), 1);
  EXPECT_EQ(c.get_int("a.r", 2, 0, 10), 2);
  EXPECT_TRUE(c.get_bool("a.b", true));
  EXPECT_EQ(c.get_enum("a.e", "red", {"red", "green"}), "red");
  EXPECT_EQ(c.get_double("a.d", 0.5, 0, 1), 0.5);
  EXPECT_EQ(c.get_int("a.ok", 0, 0, 10), 3);
  EXPECT_NO_THROW(c.reject_unknown());
  const auto& errors = c.errors();
  ASSERT_EQ(errors.size(), 6u);
  const char* keys[] = {"'a.n'", "'a.r'", "'a.b'", "'a.e'", "'a.d'", "'a.typo'"};
  for (size_t i = 0; i < 6; ++i) EXPECT_NE(errors[i].find(keys[i]), std::string::npos) << errors[i];
  EXPECT_NE(errors[5].find("unknown"), std::string::npos);
}

// Issue 14: a component's own checks (across keys) are recorded too in checking mode, so a
// check prints every error; stop_if_errors() then keeps the component from building on them.
TEST(Config, ComponentChecksAreRecordedInCheckingModeAndThrowOtherwise) {
  auto strict = Config::from_map({});
  EXPECT_THROW(strict.error("config key 'a.x': bad"), ConfigError);
  EXPECT_NO_THROW(strict.stop_if_errors());

  auto c = Config::from_map({{"a.n", "12x"}});
  c.collect_errors();
  EXPECT_NO_THROW(c.stop_if_errors());  // nothing recorded yet
  EXPECT_EQ(c.get_int("a.n", 1, 0, 10), 1);
  EXPECT_NO_THROW(c.error("config keys 'a.lo' and 'a.hi': lo exceeds hi"));
  EXPECT_NO_THROW(c.error("config key 'a.file': cannot read '/nonexistent'"));
  ASSERT_EQ(c.errors().size(), 3u);
  EXPECT_NE(c.errors()[0].find("'a.n'"), std::string::npos);
  EXPECT_NE(c.errors()[1].find("'a.lo'"), std::string::npos);
  EXPECT_NE(c.errors()[2].find("'a.file'"), std::string::npos);
  EXPECT_THROW(c.stop_if_errors(), immunizer::common::ConfigErrorsRecorded);
}

// Issue 11: `0x10`, ` 5000` and `+5000` were accepted as numbers.
TEST(Config, NumbersAreParsedStrictly) {
  for (const std::string bad : {"0x10", " 5000", "+5000", "5000 ", "5e3x", "", "1_000", "0x1p4"}) {
    auto c = Config::from_map({{"n", bad}, {"d", bad}});
    EXPECT_THROW(c.get_int("n", 0, -1'000'000, 1'000'000), ConfigError) << "'" << bad << "'";
    EXPECT_THROW(c.get_double("d", 0, -1e9, 1e9), ConfigError) << "'" << bad << "'";
  }
  for (const std::string bad : {"inf", "nan", "-inf"}) {
    auto c = Config::from_map({{"d", bad}});
    EXPECT_THROW(c.get_double("d", 0, -1e300, 1e300), ConfigError) << bad;
  }
  auto c = Config::from_map({{"n", "-42"}, {"d", "2.5e-3"}, {"e", "7"}});
  EXPECT_EQ(c.get_int("n", 0, -100, 100), -42);
  EXPECT_DOUBLE_EQ(c.get_double("d", 0, 0, 1), 0.0025);
  EXPECT_DOUBLE_EQ(c.get_double("e", 0, 0, 10), 7.0);
  try {
    Config::from_map({{"monitor.max_models", "0x10"}}).get_int("monitor.max_models", 1, 1, 100);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("monitor.max_models"), std::string::npos);
  }
}

// A misspelled variable in the service's own namespaces is rejected by name with a
// suggestion; variables of other services and of the agents are left alone.
TEST(Config, UnknownEnvironmentVariablesInOwnNamespacesAreRejected) {
  auto c = Config::load("", {}, "IMMUNIZER_");
  c.get_string("kafka.bootstrap", "");
  c.get_int("monitor.max_models", 10, 1, 100);
  c.get_string("log.level", "info");
  const std::vector<std::string> shared_env{"IMMUNIZER_KAFKA_BOOTSTRAP",
                                            "IMMUNIZER_MONITOR_MAX_MODELS",
                                            "IMMUNIZER_SENSOR_SAMPLE_RATE",
                                            "IMMUNIZER_APP",
                                            "IMMUNIZER_ANALYZE_GROUP",
                                            "IMMUNIZER_EXECUTE_ADDRESS",
                                            "IMMUNIZER_EFFECTOR_FAIL_CLOSED",
                                            "PATH",
                                            "HOME"};
  EXPECT_NO_THROW(c.reject_unknown(shared_env));
  auto env = shared_env;
  env.push_back("IMMUNIZER_MONITOR_MAX_MODEL");
  try {
    c.reject_unknown(env);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'IMMUNIZER_MONITOR_MAX_MODEL'"), std::string::npos) << what;
    EXPECT_NE(what.find("did you mean 'IMMUNIZER_MONITOR_MAX_MODELS'"), std::string::npos) << what;
  }
  env = shared_env;
  env.push_back("IMMUNIZER_KAFKA_BOOTSTRAPS");
  EXPECT_THROW(c.reject_unknown(env), ConfigError);
  // A file or flag key gets a suggestion too.
  auto f = Config::load("", {"monitor.max_model=5"}, "");
  f.get_int("monitor.max_models", 10, 1, 100);
  try {
    f.reject_unknown({});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'monitor.max_models'"), std::string::npos)
        << e.what();
  }
}

// The real environment is what reject_unknown() checks by default.
TEST(Config, RejectUnknownReadsTheProcessEnvironment) {
  ::setenv("IMMUNIZERTEST_LOG_LEVL", "debug", 1);
  auto c = Config::load("", {}, "IMMUNIZERTEST_");
  c.get_string("log.level", "info");
  EXPECT_THROW(c.reject_unknown(), ConfigError);
  ::unsetenv("IMMUNIZERTEST_LOG_LEVL");
  EXPECT_NO_THROW(c.reject_unknown());
}
