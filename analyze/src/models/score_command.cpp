#include "immunizer/analyze/models/score_command.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>

#include "immunizer/analyze/models/offline.hpp"
#include "immunizer/analyze/models/table.hpp"

namespace immunizer::analyze {

namespace {

constexpr const char* kUsage =
    "usage: immunizer-analyze score --input FILE [--train FILE]\n"
    "         [--label-column N|NAME|last|none|auto] [--detector iforest|autoencoder|ensemble]\n"
    "         [--seed N] [--threads N]\n"
    "Reads comma- or whitespace-separated rows (gzip too), learns from --train or from the input\n"
    "itself, prints one score per input row (higher = more anomalous). --label-column defaults to\n"
    "auto: the last column if its header is label/class/outlier/... (or, without a header, if it\n"
    "holds only 0/1); N is a 0-based column index. The default detector is ensemble.\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string input, train, label = "auto";
  DetectorKind detector = kDefaultOfflineDetector;
  uint64_t seed = 0;
  int threads = 1;
  bool help = false;
};

uint64_t to_u64(const std::string& flag, const std::string& v) {
  double d;
  if (!parse_number(v, d) || d < 0 || d != std::floor(d) || d > 1.8e19)
    throw UsageError(flag + ": not a non-negative integer: '" + v + "'");
  return static_cast<uint64_t>(d);
}

Options parse(const std::vector<std::string>& args) {
  Options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    bool has_value = false;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    if (flag == "-h" || flag == "--help") {
      o.help = true;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) throw UsageError(flag + ": missing value");
      value = args[++i];
    }
    if (flag == "--input")
      o.input = value;
    else if (flag == "--train")
      o.train = value;
    else if (flag == "--label-column")
      o.label = value;
    else if (flag == "--seed")
      o.seed = to_u64(flag, value);
    else if (flag == "--threads")
      o.threads =
          static_cast<int>(std::max<uint64_t>(1, std::min<uint64_t>(to_u64(flag, value), 256)));
    else if (flag == "--detector") {
      const auto d = parse_detector(value);
      if (!d)
        throw UsageError("--detector: '" + value + "' is not iforest, autoencoder or ensemble");
      o.detector = *d;
    } else {
      throw UsageError("unknown option '" + flag + "'");
    }
  }
  if (!o.help && o.input.empty()) throw UsageError("--input is required");
  return o;
}

// The training features in the input's column order (by header name when both have one).
Matrix align_train(const NumericTable& input, const NumericTable& train, bool by_name,
                   const std::string& path) {
  if (by_name) {
    std::map<std::string, std::size_t> pos;
    for (std::size_t j = 0; j < train.feature_names.size(); ++j) pos[train.feature_names[j]] = j;
    Matrix m(train.features.rows, input.feature_names.size());
    for (std::size_t k = 0; k < input.feature_names.size(); ++k) {
      const auto it = pos.find(input.feature_names[k]);
      if (it == pos.end())
        throw std::runtime_error(path + ": no numeric column '" + input.feature_names[k] +
                                 "' as in the input");
      for (std::size_t i = 0; i < m.rows; ++i) m.at(i, k) = train.features.at(i, it->second);
    }
    return m;
  }
  if (train.features.cols != input.features.cols)
    throw std::runtime_error(path + ": " + std::to_string(train.features.cols) +
                             " numeric feature columns, the input has " +
                             std::to_string(input.features.cols));
  return train.features;
}

}  // namespace

int score_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Options o;
  try {
    o = parse(args);
  } catch (const UsageError& e) {
    err << "score: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (o.help) {
    out << kUsage;
    return 0;
  }
  try {
    const auto raw = read_raw_table(o.input);
    const auto input = to_numeric(raw, {o.label});
    for (const auto& n : input.notes) err << "score: " << o.input << ": " << n << "\n";
    Matrix train_m;
    const Matrix* train = &input.features;
    if (!o.train.empty()) {
      const auto raw_t = read_raw_table(o.train);
      const auto t = to_numeric(raw_t, {o.label});
      for (const auto& n : t.notes) err << "score: " << o.train << ": " << n << "\n";
      train_m = align_train(input, t, raw.has_header && raw_t.has_header, o.train);
      train = &train_m;
    }
    OfflineParams p;
    p.detector = o.detector;
    p.seed = o.seed;
    p.forest.threads = o.threads;
    OfflineTimings tm;
    const auto scores = score_offline(*train, input.features, p, &tm);

    std::string buf;
    buf.reserve(scores.size() * 12);
    char line[64];
    for (const double s : scores) {
      const int n = std::snprintf(line, sizeof line, "%.9g\n", s + 0.0);  // + 0.0: print -0 as 0
      buf.append(line, static_cast<std::size_t>(n));
    }
    out << buf;
    out.flush();
    err << "score: " << scores.size() << " rows, " << input.features.cols << " features, detector "
        << to_string(o.detector) << ", trained on " << train->rows << " rows"
        << (o.train.empty() ? " (the input itself)" : "") << "\n";
    if (input.labels) {
      const auto& l = *input.labels;
      const auto outliers = std::count(l.begin(), l.end(), 1);
      char msg[160];
      std::snprintf(msg, sizeof msg,
                    "score: label column '%s': %lld outliers; AUC %.4f R-precision %.4f\n",
                    input.label_name.c_str(), static_cast<long long>(outliers), roc_auc(scores, l),
                    r_precision(scores, l));
      err << msg;
    }
    return 0;
  } catch (const std::exception& e) {
    err << "score: " << e.what() << "\n";
    return 1;
  }
}

int score_command(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::ios::sync_with_stdio(false);
  return score_command(args, std::cout, std::cerr);
}

}  // namespace immunizer::analyze
