// The agents' environment reader: strict numbers and booleans, lists, and a closed namespace
// with did-you-mean (the sensor and effector tests check their own variables through it).
#include "immunizer/agent/env.hpp"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace {

using immunizer::agent::EnvReader;

const std::set<std::string> kKnown{"IMMUNIZER_TESTAGENT_COUNT", "IMMUNIZER_TESTAGENT_RATE",
                                   "IMMUNIZER_TESTAGENT_ON", "IMMUNIZER_TESTAGENT_LIST"};

// Sets a variable for one test and removes it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(AgentEnv, EditDistanceAndClosestMatch) {
  using immunizer::agent::closest_match;
  using immunizer::agent::edit_distance;
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("SAMPLERATE", "SAMPLE_RATE"), 1u);
  const std::set<std::string> c{"analyze.risk", "analyze.threads"};
  ASSERT_NE(closest_match("analyze.rsik", c, 2), nullptr);
  EXPECT_EQ(*closest_match("analyze.rsik", c, 2), "analyze.risk");
  EXPECT_EQ(closest_match("monitor.group", c, 2), nullptr);
}

TEST(AgentEnv, NumbersAreStrict) {
  const EnvReader env("test", "IMMUNIZER_TESTAGENT_", kKnown);
  EXPECT_EQ(env.integer("IMMUNIZER_TESTAGENT_COUNT", 7, 0, 100), 7);  // unset: the default
  for (const char* bad : {"0x10", " 5000", "+5000", "5000 ", "5e3", "12abc", "-"}) {
    ScopedEnv v("IMMUNIZER_TESTAGENT_COUNT", bad);
    EXPECT_THROW(env.integer("IMMUNIZER_TESTAGENT_COUNT", 7, 0, 1'000'000), std::invalid_argument)
        << "'" << bad << "'";
  }
  {
    ScopedEnv v("IMMUNIZER_TESTAGENT_COUNT", "5000");
    EXPECT_EQ(env.integer("IMMUNIZER_TESTAGENT_COUNT", 7, 0, 1'000'000), 5000);
    const std::string e = error_of([&] { env.integer("IMMUNIZER_TESTAGENT_COUNT", 7, 0, 100); });
    EXPECT_NE(e.find("test: IMMUNIZER_TESTAGENT_COUNT='5000': out of range [0, 100]"),
              std::string::npos)
        << e;
  }
  for (const char* bad : {"0x1p-2", " 0.5", "+0.5", "0.5 ", "nan", "inf", "1,5"}) {
    ScopedEnv v("IMMUNIZER_TESTAGENT_RATE", bad);
    EXPECT_THROW(env.number("IMMUNIZER_TESTAGENT_RATE", 0, 0, 1e9), std::invalid_argument)
        << "'" << bad << "'";
  }
  ScopedEnv v("IMMUNIZER_TESTAGENT_RATE", "-2.5e-1");
  EXPECT_EQ(env.number("IMMUNIZER_TESTAGENT_RATE", 0, -1, 1), -0.25);
}

TEST(AgentEnv, BooleansAndLists) {
  const EnvReader env("test", "IMMUNIZER_TESTAGENT_", kKnown);
  {
    ScopedEnv v("IMMUNIZER_TESTAGENT_ON", "yes");
    EXPECT_TRUE(env.boolean("IMMUNIZER_TESTAGENT_ON", false));
  }
  {
    ScopedEnv v("IMMUNIZER_TESTAGENT_ON", "maybe");
    EXPECT_THROW(env.boolean("IMMUNIZER_TESTAGENT_ON", false), std::invalid_argument);
  }
  {
    ScopedEnv v("IMMUNIZER_TESTAGENT_ON", "");  // empty counts as unset
    EXPECT_TRUE(env.boolean("IMMUNIZER_TESTAGENT_ON", true));
  }
  ScopedEnv v("IMMUNIZER_TESTAGENT_LIST", " /a.pub, ,/b.pub ,");
  EXPECT_EQ(env.list("IMMUNIZER_TESTAGENT_LIST"), (std::vector<std::string>{"/a.pub", "/b.pub"}));
  // Reading an undeclared name of the namespace is a programming error, caught at once.
  EXPECT_THROW(env.raw("IMMUNIZER_TESTAGENT_OTHER"), std::logic_error);
  EXPECT_EQ(env.raw("IMMUNIZER_NOT_OURS"), nullptr);
}

TEST(AgentEnv, UnknownVariablesOfTheNamespaceAreRejectedByName) {
  {
    ScopedEnv v("IMMUNIZER_TESTAGENT_CUONT", "1");
    const std::string e = error_of([] { EnvReader("test", "IMMUNIZER_TESTAGENT_", kKnown); });
    EXPECT_NE(e.find("test: unknown environment variable IMMUNIZER_TESTAGENT_CUONT"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("did you mean IMMUNIZER_TESTAGENT_COUNT?"), std::string::npos) << e;
  }
  {
    ScopedEnv v("IMMUNIZER_TESTAGENT_SOMETHING_ELSE_ENTIRELY", "1");
    const std::string e = error_of([] { EnvReader("test", "IMMUNIZER_TESTAGENT_", kKnown); });
    EXPECT_NE(e.find("IMMUNIZER_TESTAGENT_SOMETHING_ELSE_ENTIRELY"), std::string::npos) << e;
    EXPECT_EQ(e.find("did you mean"), std::string::npos) << e;  // nothing close
  }
  ScopedEnv other("IMMUNIZER_MONITOR_GROUP", "g");  // another component's: not ours
  EXPECT_NO_THROW(EnvReader("test", "IMMUNIZER_TESTAGENT_", kKnown));
}

}  // namespace
