#include "immunizer/analyze/models/table.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace immunizer::analyze {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  std::string t = s.substr(b, e - b);
  if (t.size() >= 2 && (t.front() == '"' || t.front() == '\'') && t.back() == t.front())
    t = t.substr(1, t.size() - 2);
  return t;
}

std::vector<std::string> split(const std::string& line, bool comma) {
  std::vector<std::string> out;
  if (comma) {
    std::size_t start = 0;
    for (;;) {
      const auto pos = line.find(',', start);
      out.push_back(
          trim(line.substr(start, pos == std::string::npos ? std::string::npos : pos - start)));
      if (pos == std::string::npos) break;
      start = pos + 1;
    }
  } else {
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
      const std::size_t b = i;
      while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
      if (i > b) out.push_back(trim(line.substr(b, i - b)));
    }
  }
  return out;
}

std::vector<std::string> read_lines(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files transparently
  if (f == nullptr) throw std::runtime_error(path + ": cannot open");
  std::string all;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) all.append(buf, static_cast<std::size_t>(n));
  int err = 0;
  const char* msg = gzerror(f, &err);
  const std::string why = msg ? msg : "";
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
    throw std::runtime_error(path + ": read error: " + why);
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < all.size()) {
    auto end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    std::string line = all.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

bool is_label_name(const std::string& name) {
  static const char* kNames[] = {"label", "class",      "outlier",    "anomaly",     "target",
                                 "y",     "is_anomaly", "is_outlier", "ground_truth"};
  const auto l = lower(name);
  return std::any_of(std::begin(kNames), std::end(kNames), [&](const char* k) { return l == k; });
}

int parse_label(const std::string& cell, const std::string& where) {
  double v;
  if (parse_number(cell, v)) return v != 0 ? 1 : 0;
  const auto l = lower(cell);
  for (const char* w :
       {"outlier", "anomaly", "anomalous", "attack", "abnormal", "yes", "true", "o"})
    if (l == w) return 1;
  for (const char* w : {"inlier", "normal", "benign", "no", "false", "n"})
    if (l == w) return 0;
  throw std::runtime_error(where + ": label '" + cell +
                           "' is neither a number nor a known word (outlier/normal, ...)");
}

}  // namespace

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

RawTable read_raw_table(const std::string& path) {
  RawTable t;
  t.path = path;
  std::vector<std::pair<std::size_t, std::vector<std::string>>> rows;  // (line number, cells)
  std::optional<bool> comma;
  const auto lines = read_lines(path);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto& line = lines[i];
    if (line.find_first_not_of(" \t") == std::string::npos ||
        line[line.find_first_not_of(" \t")] == '#')
      continue;
    if (!comma) comma = line.find(',') != std::string::npos;
    rows.emplace_back(i + 1, split(line, *comma));
  }
  if (rows.empty()) throw std::runtime_error(path + ": no data rows");
  const std::size_t cols = rows[0].second.size();
  for (const auto& [ln, cells] : rows)
    if (cells.size() != cols)
      throw std::runtime_error(path + ":" + std::to_string(ln) + ": " +
                               std::to_string(cells.size()) + " fields, expected " +
                               std::to_string(cols) + " as on the first line");
  double v;
  const auto& first = rows[0].second;
  bool header = false;
  for (std::size_t j = 0; j < cols && !header; ++j)
    if (!parse_number(first[j], v)) header = rows.size() == 1 || parse_number(rows[1].second[j], v);
  if (!header) {
    header = std::none_of(first.begin(), first.end(),
                          [&](const std::string& c) { return parse_number(c, v); });
    header = header && rows.size() > 1;
  }
  t.has_header = header;
  if (header) {
    t.names = first;
    rows.erase(rows.begin());
    if (rows.empty()) throw std::runtime_error(path + ": a header but no data rows");
  } else {
    for (std::size_t j = 0; j < cols; ++j)
      t.names.push_back(std::string(1, 'c').append(std::to_string(j)));
  }
  t.cells.reserve(rows.size());
  for (auto& r : rows) t.cells.push_back(std::move(r.second));
  return t;
}

NumericTable to_numeric(const RawTable& raw, const LabelSpec& label) {
  NumericTable out;
  const std::size_t cols = raw.names.size();
  // Which column holds the labels.
  std::optional<std::size_t> lab;
  const std::string& spec = label.spec;
  double v;
  if (spec == "none") {
  } else if (spec == "last") {
    lab = cols - 1;
  } else if (spec == "auto") {
    if (raw.has_header) {
      if (is_label_name(raw.names.back())) lab = cols - 1;
    } else if (cols > 1) {
      bool binary = true, seen0 = false, seen1 = false;
      for (const auto& r : raw.cells) {
        const bool num = parse_number(r.back(), v);
        binary = binary && num && (v == 0 || v == 1);
        seen0 = seen0 || (num && v == 0);
        seen1 = seen1 || (num && v == 1);
        if (!binary) break;
      }
      if (binary && seen0 && seen1) {
        lab = cols - 1;
        out.notes.push_back(
            "no header and the last column holds only 0/1: using it as the label "
            "(--label-column none to score it as a feature)");
      }
    }
  } else if (parse_number(spec, v) && v >= 0 &&
             v == static_cast<double>(static_cast<std::size_t>(v))) {
    lab = static_cast<std::size_t>(v);
    if (*lab >= cols)
      throw std::runtime_error(raw.path + ": --label-column " + spec + " but there are only " +
                               std::to_string(cols) + " columns");
  } else {
    const auto it = std::find(raw.names.begin(), raw.names.end(), spec);
    if (!raw.has_header || it == raw.names.end())
      throw std::runtime_error(raw.path + ": --label-column '" + spec +
                               "' is not a column index, a header name, last, none or auto");
    lab = static_cast<std::size_t>(it - raw.names.begin());
  }

  std::vector<std::size_t> keep;
  for (std::size_t j = 0; j < cols; ++j) {
    if (lab && j == *lab) continue;
    std::size_t bad = 0, first_bad = 0;
    for (std::size_t i = 0; i < raw.cells.size(); ++i)
      if (!parse_number(raw.cells[i][j], v) && bad++ == 0) first_bad = i;
    if (bad == 0) {
      keep.push_back(j);
    } else {
      out.notes.push_back("skipping non-numeric column " + std::to_string(j) + " '" + raw.names[j] +
                          "' (" + std::to_string(bad) + " non-numeric cells, first: '" +
                          raw.cells[first_bad][j] + "')");
    }
  }
  if (keep.empty()) throw std::runtime_error(raw.path + ": no numeric feature columns");
  for (const auto j : keep) out.feature_names.push_back(raw.names[j]);
  out.features = Matrix(raw.cells.size(), keep.size());
  for (std::size_t i = 0; i < raw.cells.size(); ++i)
    for (std::size_t k = 0; k < keep.size(); ++k)
      parse_number(raw.cells[i][keep[k]], out.features.at(i, k));
  if (lab) {
    out.label_name = raw.names[*lab];
    std::vector<int> labels(raw.cells.size());
    for (std::size_t i = 0; i < raw.cells.size(); ++i)
      labels[i] = parse_label(raw.cells[i][*lab], raw.path + " row " + std::to_string(i + 1));
    out.labels = std::move(labels);
  }
  return out;
}

}  // namespace immunizer::analyze
