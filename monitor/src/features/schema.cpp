#include "schema.hpp"

#include <algorithm>

#include "immunizer/monitor/sketch.hpp"
#include "immunizer/v1/text.hpp"

namespace immunizer::monitor::detail {
namespace {
constexpr const char* kGlobalNames[kAnyBase] = {
    "struct:arg_count",           "struct:arg_count_deviation",
    "struct:unseen_args",         "struct:missing_args",
    "struct:dropped_args",        "outcome:error",
    "outcome:duration_deviation", "principal:new",
    "principal:recent_calls",     "principal:interval_deviation",
    "encoding:invalid_utf8",      "size:truncated_values",
    "size:record_truncated"};
}  // namespace

int PathIndex::find(std::string_view name, const std::vector<PathState>& paths) const {
  if (slots_.empty()) return -1;
  const uint64_t h = stable_hash(name);
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& sl = slots_[i];
    if (sl.idx < 0) return -1;
    if (sl.hash == h && paths[static_cast<size_t>(sl.idx)].name == name) return sl.idx;
  }
}

void PathIndex::insert(std::string_view name, int idx) {
  if (2 * (used_ + 1) > slots_.size()) grow();
  place(stable_hash(name), idx);
  ++used_;
}

void PathIndex::place(uint64_t h, int idx) {
  size_t i = h & mask_;
  while (slots_[i].idx >= 0) i = (i + 1) & mask_;
  slots_[i] = Slot{h, idx};
}

void PathIndex::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<size_t>(16, old.size() * 2), Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& sl : old) {
    if (sl.idx >= 0) place(sl.hash, sl.idx);
  }
}

void Schema::collect(const immunizer::v1::CallRecord& r, const FeatureConfig& cfg, bool frozen) {
  leaves_.clear();
  dropped_ = 0;
  grew_ = false;
  unseen_ = 0;
  columnless_ = 0;
  invalid_names_ = 0;
  for (const auto& a : r.arguments()) {
    path_buf_.clear();
    append_name(a.name());
    collect_value(a.value(), 0, cfg, frozen);
  }
  if (r.outcome_case() == immunizer::v1::CallRecord::kResult) {
    path_buf_.assign("result");
    collect_value(r.result(), 0, cfg, frozen);
  }
  if (grew_) {
    ++version_;
    rebuild_names();
  }
}

void Schema::collect_value(const immunizer::v1::Value& v, size_t depth, const FeatureConfig& cfg,
                           bool frozen) {
  using K = immunizer::v1::Value;
  if (v.kind_case() == K::kMapValue && depth < cfg.max_depth) {
    const size_t base = path_buf_.size();
    for (const auto& entry : v.map_value().fields()) {
      path_buf_.push_back('.');
      append_name(entry.key());
      collect_value(entry.value(), depth + 1, cfg, frozen);
      path_buf_.resize(base);
    }
    return;
  }
  if (v.kind_case() == K::kListValue && depth < cfg.max_depth) {
    const size_t base = path_buf_.size();
    path_buf_.append("[]");
    for (const auto& child : v.list_value().items()) collect_value(child, depth + 1, cfg, frozen);
    path_buf_.resize(base);
    return;
  }
  if (leaves_.size() >= cfg.max_leaves_per_record) {
    ++dropped_;
    return;
  }
  int idx = -1;
  if (const int found = index_.find(path_buf_, paths_); found >= 0) {
    idx = found;
  } else if (!frozen && paths_.size() < cfg.max_paths_per_model && path_buf_.size() <= 256) {
    idx = static_cast<int>(paths_.size());
    paths_.push_back(make_path_state(path_buf_, cfg));
    index_.insert(path_buf_, idx);
    grew_ = true;
    ++unseen_;
  } else {
    ++unseen_;
    ++columnless_;
  }
  leaves_.emplace_back(idx, &v);
}

// Paths become feature names (proto3 strings): invalid UTF-8 in a name is escaped, counted.
void Schema::append_name(std::string_view name) {
  if (immunizer::v1::is_valid_utf8(name)) {
    path_buf_.append(name);
  } else {
    ++invalid_names_;
    immunizer::v1::append_escaped_utf8(path_buf_, name);
  }
}

void Schema::assign(uint32_t version, std::vector<PathState> paths, PathIndex index) {
  version_ = version;
  paths_ = std::move(paths);
  index_ = std::move(index);
  rebuild_names();
}

void Schema::rebuild_names() {
  names_.clear();
  names_.reserve(kGlobalFeatures + paths_.size() * kPathFeatures);
  for (int i = 0; i < kAnyBase; ++i) names_.emplace_back(kGlobalNames[i]);
  for (int i = 0; i < kPathFeatures; ++i)
    names_.emplace_back(std::string("any:") + kPathFeatureNames[i]);
  for (const auto& p : paths_) {
    for (int i = 0; i < kPathFeatures; ++i)
      names_.push_back("arg:" + p.name + ":" + kPathFeatureNames[i]);
  }
}

size_t Schema::memory_bytes() const {
  size_t m = index_.memory_bytes() + leaves_.capacity() * sizeof(Leaf) + path_buf_.capacity();
  for (const auto& p : paths_) m += p.memory_bytes();
  for (const auto& n : names_) m += n.capacity() + sizeof(std::string);
  return m;
}

}  // namespace immunizer::monitor::detail
