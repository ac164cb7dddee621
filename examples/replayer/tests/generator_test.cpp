#include "immunizer/replay/generator.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

using namespace immunizer;
namespace csic = immunizer::monitor::csic;

TEST(Generator, SessionsOverTheShopsFormsAndEveryAttackClassWithGroundTruth) {
  replay::GeneratorOptions o;
  o.training = 3000;
  o.normal = 1000;
  o.anomalous = 700;
  const auto g = replay::generate(o);
  ASSERT_EQ(g.training.size(), 3000u);
  ASSERT_EQ(g.normal.size(), 1000u);
  ASSERT_EQ(g.anomalous.size(), 700u);
  ASSERT_EQ(g.attack_class.size(), 700u);
  std::map<std::string, size_t> per_class;
  for (const auto& c : g.attack_class) ++per_class[c];
  EXPECT_EQ(per_class.size(), replay::attack_classes().size());
  for (const auto& [c, n] : per_class) EXPECT_EQ(n, 100u) << c;
  // Normal traffic: every request on a shop page, sessions return (several requests each).
  std::map<std::string, size_t> per_session;
  std::set<std::string> paths;
  for (const auto& r : g.training) {
    EXPECT_TRUE(csic::is_shop_endpoint(r.path)) << r.path;
    ++per_session[r.session()];
    paths.insert(r.path);
  }
  EXPECT_GE(paths.size(), 10u);
  EXPECT_LT(per_session.size(), 3000u / 5);
  // POST forms carry their body; attacks sit in a parameter value.
  size_t posts = 0;
  for (const auto& r : g.training) posts += r.method == "POST" && !r.body.empty();
  EXPECT_GT(posts, 300u);
  size_t sqli = 0;
  for (size_t i = 0; i < g.anomalous.size(); ++i)
    if (g.attack_class[i] == "sqli") {
      const std::string all = csic::url_decode(g.anomalous[i].query + "&" + g.anomalous[i].body);
      sqli += all.find('\'') != std::string::npos || all.find(';') != std::string::npos ||
              all.find("SLEEP") != std::string::npos;
    }
  EXPECT_EQ(sqli, 100u);
  // Deterministic for a seed, different for another.
  const auto again = replay::generate(o);
  EXPECT_EQ(again.training[123].query + again.training[123].body,
            g.training[123].query + g.training[123].body);
  o.seed = 7;
  const auto other = replay::generate(o);
  size_t same = 0;
  for (size_t i = 0; i < 100; ++i)
    same += other.training[i].query == g.training[i].query &&
            other.training[i].body == g.training[i].body;
  EXPECT_LT(same, 60u);
}

TEST(Generator, WrittenFilesReadBackAsTheSameRequests) {
  replay::GeneratorOptions o;
  o.training = 200;
  o.normal = 50;
  o.anomalous = 70;
  const auto g = replay::generate(o);
  const auto dir =
      std::filesystem::temp_directory_path() / ("gen-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  replay::write_csic((dir / "a.txt").string(), g.anomalous);
  const auto back = csic::read_file((dir / "a.txt").string());
  std::filesystem::remove_all(dir);
  ASSERT_EQ(back.size(), g.anomalous.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].method, g.anomalous[i].method);
    EXPECT_EQ(back[i].path, g.anomalous[i].path);
    EXPECT_EQ(back[i].query, g.anomalous[i].query);
    EXPECT_EQ(back[i].body, g.anomalous[i].body) << i;
  }
}
