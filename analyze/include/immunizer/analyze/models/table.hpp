// Reading numeric tables (CSV or whitespace-separated, plain or gzip) for offline scoring
// and benchmarks: header detection, non-numeric columns, label column selection.
// Plain functions and values; no shared state. Throws std::runtime_error with a message
// naming the file and line on bad input.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "immunizer/analyze/models/matrix.hpp"

namespace immunizer::analyze {

// A file as text cells, before any interpretation.
struct RawTable {
  std::string path;
  bool has_header = false;
  std::vector<std::string> names;               // header, or "c0", "c1", ... without one
  std::vector<std::vector<std::string>> cells;  // data rows only, all of names.size()
};

// Reads path (gzip is detected by content). Fields are comma-separated when the first data
// line contains a comma, otherwise whitespace-separated; blank lines and lines starting
// with '#' are skipped. The first line is a header when it has a non-numeric field and
// the second line is numeric in that column.
RawTable read_raw_table(const std::string& path);

// How to find the label column: an index (0-based), a header name, "last", "none", or
// "auto" (the last column when its header is label/class/outlier/anomaly/target/y/is_anomaly,
// or, without a header, when it holds only 0 and 1).
struct LabelSpec {
  std::string spec = "auto";
};

struct NumericTable {
  std::vector<std::string> feature_names;  // numeric, non-label columns, in file order
  Matrix features;
  std::optional<std::vector<int>> labels;  // 1 = outlier, 0 = inlier
  std::string label_name;
  std::vector<std::string> notes;  // what was skipped or guessed, for stderr
};

// Interprets a raw table: picks the label column, keeps numeric columns (a column with any
// non-numeric cell is skipped with a note), parses labels (numbers != 0 or words such as
// "outlier", "anomaly", "attack", "yes", "true" mean 1).
NumericTable to_numeric(const RawTable& raw, const LabelSpec& label);

bool parse_number(const std::string& s, double& out);

}  // namespace immunizer::analyze
