#include "immunizer/analyze/models/score_command.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "immunizer/analyze/models/offline.hpp"

namespace immunizer::analyze {
namespace {

namespace fs = std::filesystem;

class ScoreCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("score_cmd_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // 400 inliers around 0 and 8 planted outliers at rows 50, 100, ...; a text id column.
  std::string make_table(char sep, bool header, bool label) {
    std::mt19937_64 gen(1);
    std::normal_distribution<double> nd;
    std::ostringstream s;
    if (header)
      s << "id" << sep << "a" << sep << "b" << sep << "c"
        << (label ? std::string(1, sep) + "label" : "") << "\n";
    for (int i = 0; i < 408; ++i) {
      const bool out = i % 50 == 0 && i > 0;
      const double a = nd(gen), b = nd(gen);
      s << "row" << i << sep << (out ? 6 + 0.1 * a : a) << sep << (out ? -6 + 0.1 * b : b) << sep
        << nd(gen);
      if (label) s << sep << (out ? 1 : 0);
      s << "\n";
    }
    return s.str();
  }
  std::string write(const std::string& name, const std::string& text, bool gz = false) {
    const auto path = (dir_ / name).string();
    if (gz) {
      gzFile f = gzopen(path.c_str(), "wb");
      gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
      gzclose(f);
    } else {
      std::ofstream(path) << text;
    }
    return path;
  }
  int run(const std::vector<std::string>& args) {
    out_.str("");
    err_.str("");
    return score_command(args, out_, err_);
  }
  std::vector<double> scores() const {
    std::vector<double> v;
    std::istringstream in(out_.str());
    for (double d; in >> d;) v.push_back(d);
    return v;
  }

  fs::path dir_;
  std::ostringstream out_, err_;
};

TEST_F(ScoreCommand, CsvWithHeaderLabelAndTextColumn) {
  const auto path = write("t.csv.gz", make_table(',', true, true), true);
  ASSERT_EQ(run({"--input", path, "--detector", "iforest"}), 0) << err_.str();
  const auto s = scores();
  ASSERT_EQ(s.size(), 408u);
  const auto err = err_.str();
  EXPECT_NE(err.find("skipping non-numeric column 0 'id'"), std::string::npos) << err;
  EXPECT_NE(err.find("AUC"), std::string::npos) << err;
  // The planted outliers are in input order at the top of the scores.
  for (int i = 50; i < 408; i += 50) EXPECT_GT(s[i], 0.6) << i;
  EXPECT_NE(err.find("AUC 1.0000"), std::string::npos) << err;
}

TEST_F(ScoreCommand, WhitespaceNoHeaderAutoLabelAndTrainFile) {
  const auto input = write("in.txt", make_table(' ', false, true));
  const auto train = write("train.txt", make_table(' ', false, true));
  ASSERT_EQ(run({"--input", input, "--train", train, "--seed", "3"}), 0) << err_.str();
  EXPECT_EQ(scores().size(), 408u);
  EXPECT_NE(err_.str().find("only 0/1"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("detector ensemble"), std::string::npos);
  // Same seed, same output; the default detector is deterministic.
  const auto first = out_.str();
  ASSERT_EQ(run({"--input", input, "--train", train, "--seed=3"}), 0);
  EXPECT_EQ(out_.str(), first);
  // --label-column none scores the 0/1 column as a feature: 4 features.
  ASSERT_EQ(run({"--input", input, "--label-column", "none", "--detector", "autoencoder"}), 0);
  EXPECT_NE(err_.str().find("4 features"), std::string::npos) << err_.str();
  EXPECT_EQ(err_.str().find("AUC"), std::string::npos);
}

TEST_F(ScoreCommand, ClearErrors) {
  EXPECT_EQ(run({}), 2);
  EXPECT_NE(err_.str().find("--input is required"), std::string::npos);
  EXPECT_EQ(run({"--input", "x", "--detector", "svm"}), 2);
  EXPECT_NE(err_.str().find("not iforest"), std::string::npos);
  EXPECT_EQ(run({"--input", (dir_ / "missing.csv").string()}), 1);
  EXPECT_NE(err_.str().find("cannot open"), std::string::npos);
  const auto ragged = write("r.csv", "1,2,3\n4,5\n");
  EXPECT_EQ(run({"--input", ragged}), 1);
  EXPECT_NE(err_.str().find("r.csv:2: 2 fields, expected 3"), std::string::npos) << err_.str();
  const auto words = write("w.csv", "a,b\nx,y\nz,w\n");
  EXPECT_EQ(run({"--input", words}), 1);
  EXPECT_NE(err_.str().find("no numeric feature columns"), std::string::npos) << err_.str();
  const auto ok = write("ok.csv", make_table(',', true, true));
  EXPECT_EQ(run({"--input", ok, "--label-column", "9"}), 1);
  EXPECT_EQ(run({"--input", ok, "--bogus", "1"}), 2);
}

TEST(Metrics, AucAndRPrecision) {
  const std::vector<double> s = {0.1, 0.4, 0.35, 0.8};
  const std::vector<int> l = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(roc_auc(s, l), 0.75);
  EXPECT_DOUBLE_EQ(r_precision(s, l), 0.5);
  const std::vector<double> tied = {1, 1, 1, 1};
  EXPECT_DOUBLE_EQ(roc_auc(tied, l), 0.5);
}

}  // namespace
}  // namespace immunizer::analyze
