#include "immunizer/common/build_info.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "immunizer/common/http_server.hpp"

using namespace immunizer::common;

namespace {
std::string scrape(prometheus::Registry& r) {
  return prometheus::TextSerializer().Serialize(r.Collect());
}
}  // namespace

TEST(BuildInfo, VersionLineCarriesTheProjectVersion) {
  const std::string line = version_line("immunizer-test");
  EXPECT_EQ(line.rfind("immunizer-test " IMMUNIZER_PROJECT_VERSION, 0), 0u) << line;
  if (build_commit() != "unknown") {
    EXPECT_NE(line.find("(commit " + std::string(build_commit()) + ")"), std::string::npos) << line;
  }
}

TEST(BuildInfo, GaugeIsOneWithVersionAndCommitAndRegistersOnce) {
  prometheus::Registry r;
  register_build_info(r);
  register_build_info(r);  // a second endpoint on the same registry
  const std::string text = scrape(r);
  const std::string want = "immunizer_build_info{commit=\"" + std::string(build_commit()) +
                           "\",version=\"" IMMUNIZER_PROJECT_VERSION "\"} 1";
  EXPECT_NE(text.find(want), std::string::npos) << text;
  EXPECT_EQ(text.find(want), text.rfind(want)) << "registered twice:\n" << text;
}

TEST(BuildInfo, EveryHttpServerExposesIt) {
  auto r = std::make_shared<prometheus::Registry>();
  HttpServer server("127.0.0.1", 0, r);
  EXPECT_NE(scrape(*r).find("immunizer_build_info{"), std::string::npos);
}
