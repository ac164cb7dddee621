// Snapshot encoding of the feature extractor's learned state (ModelSnapshot.state, kind
// "monitor", format FeatureExtractor::kSnapshotFormat): the framed, optionally compressed
// codec bytes of one model. Readers validate every size against the configuration.
#include <algorithm>
#include <memory>
#include <stdexcept>

#include "../state_codec.hpp"
#include "model_state.hpp"

namespace immunizer::monitor {
namespace detail {

void RunningStats::write(codec::Writer& w) const { w.f64(n), w.f64(mean), w.f64(m2); }
void RunningStats::read(codec::Reader& r) { n = r.f64(), mean = r.f64(), m2 = r.f64(); }

void PathState::write(codec::Writer& w) const {
  w.str(name);
  w.u64(present), w.u64(last_record);
  length.write(w);
  for (double c : classes) w.f64(c);
  w.f64(class_total);
  for (uint32_t b : bytes) w.u32(b);
  w.u64(byte_total);
  w.u32s(trigrams.cells());
  w.u64(trigrams.total());
  w.u64(enum_values.size());
  for (size_t i = 0; i < enum_values.size(); ++i) w.u64(enum_values[i]), w.u32(enum_counts[i]);
  w.u8(enum_state);
  w.u64(observations);
  numbers.write(w);
  for (const auto& fs : feature_stats) fs.write(w);
  w.u64(outliers);
}

void PathState::read(codec::Reader& r, size_t width, size_t depth, size_t enum_max) {
  name = r.str(4096);
  present = r.u64(), last_record = r.u64();
  length.read(r);
  for (double& c : classes) c = r.f64();
  class_total = r.f64();
  for (uint32_t& b : bytes) b = r.u32();
  byte_total = r.u64();
  trigrams = CountMinSketch(width, depth);
  r.u32s(&trigrams.mutable_cells(), trigrams.width() * trigrams.depth());
  trigrams.set_total(r.u64());
  const uint64_t ne = r.u64();
  if (ne > enum_max)
    throw std::runtime_error("monitor snapshot: enumeration larger than enum_max_values");
  enum_values.clear();
  enum_counts.clear();
  enum_state = 0;
  enum_values.reserve(enum_max);
  enum_counts.reserve(enum_max);
  for (uint64_t i = 0; i < ne; ++i) {
    enum_values.push_back(r.u64());
    enum_counts.push_back(r.u32());
  }
  enum_state = r.u8();
  if (enum_state > 2) throw std::runtime_error("monitor snapshot: bad enumeration state");
  if (enum_state == 2) enum_values.shrink_to_fit(), enum_counts.shrink_to_fit();
  enum_mode = 0;
  for (uint32_t c : enum_counts) enum_mode = std::max(enum_mode, c);
  observations = r.u64();
  numbers.read(r);
  for (auto& fs : feature_stats) fs.read(r);
  outliers = r.u64();
}

// Only the used slots, each with its position.
void PrincipalTable::write(codec::Writer& w) const {
  uint64_t used = 0;
  for (const auto& s : slots_) used += s.hash != 0;
  w.u64(used);
  for (size_t i = 0; i < slots_.size(); ++i) {
    const auto& s = slots_[i];
    if (s.hash == 0) continue;
    w.u64(i), w.u64(s.hash), w.i64(s.last_ns), w.f64(s.damped_calls);
    w.f64(s.iv_n), w.f64(s.iv_mean), w.f64(s.iv_var);
  }
}

void PrincipalTable::read(codec::Reader& r) {
  const uint64_t used = r.u64();
  if (used > slots_.size()) throw std::runtime_error("monitor snapshot: too many principals");
  for (uint64_t k = 0; k < used; ++k) {
    const uint64_t i = r.u64();
    if (i >= slots_.size())
      throw std::runtime_error("monitor snapshot: principal slot out of range");
    auto& s = slots_[i];
    s.hash = r.u64(), s.last_ns = r.i64(), s.damped_calls = r.f64();
    s.iv_n = r.f64(), s.iv_mean = r.f64(), s.iv_var = r.f64();
  }
}

}  // namespace detail

void ModelState::write(codec::Writer& w) const {
  w.u64(cfg_.trigram_sketch_width), w.u64(cfg_.trigram_sketch_depth), w.u64(principals_.slots());
  w.u64(records_), w.u32(schema_.version());
  w.u64(unseen_path_records_), w.u64(truncated_records_);
  arg_stats_.write(w);
  duration_.write(w);
  all_.write(w);
  w.u64(schema_.paths().size());
  for (const auto& p : schema_.paths()) p.write(w);
  principals_.write(w);
}

void ModelState::read(codec::Reader& r) {
  if (r.u64() != cfg_.trigram_sketch_width || r.u64() != cfg_.trigram_sketch_depth ||
      r.u64() != principals_.slots()) {
    throw std::runtime_error(
        "monitor snapshot: sketch or principal table dimensions differ from config");
  }
  records_ = r.u64();
  const uint32_t version = r.u32();
  unseen_path_records_ = r.u64(), truncated_records_ = r.u64();
  arg_stats_.read(r);
  duration_.read(r);
  all_.read(r, cfg_.trigram_sketch_width, cfg_.trigram_sketch_depth, cfg_.enum_max_values);
  const uint64_t np = r.u64();
  if (np > std::max<size_t>(cfg_.max_paths_per_model, 4096))
    throw std::runtime_error("monitor snapshot: too many paths");
  std::vector<detail::PathState> paths(np);
  detail::PathIndex index;
  for (size_t i = 0; i < np; ++i) {
    paths[i].read(r, cfg_.trigram_sketch_width, cfg_.trigram_sketch_depth, cfg_.enum_max_values);
    if (index.find(paths[i].name, paths) >= 0) {
      throw std::runtime_error("monitor snapshot: duplicate path");
    }
    index.insert(paths[i].name, static_cast<int>(i));
  }
  principals_.read(r);
  if (!r.done()) throw std::runtime_error("monitor snapshot: trailing bytes");
  schema_.assign(version, std::move(paths), std::move(index));
}

std::string FeatureExtractor::snapshot(const std::string& model_key) const {
  auto it = models_.find(std::string_view(model_key));
  if (it == models_.end()) return {};
  codec::Writer w;
  w.u32(kSnapshotFormat);
  it->second->write(w);
  return codec::frame(w.bytes(), cfg_.compress_snapshots);
}

void FeatureExtractor::restore(const std::string& model_key, const std::string& bytes) {
  const std::string raw = codec::unframe(bytes, size_t{1} << 30);
  codec::Reader r(raw);
  if (r.u32() != kSnapshotFormat)
    throw std::runtime_error("monitor snapshot: unsupported format version");
  auto m = std::make_unique<ModelState>(cfg_);
  m->read(r);
  auto it = models_.find(std::string_view(model_key));
  if (it != models_.end()) {
    it->second = std::move(m);
  } else {
    if (models_.size() >= cfg_.max_models)
      throw std::runtime_error("monitor snapshot: model limit reached");
    models_.emplace(model_key, std::move(m));
  }
}

}  // namespace immunizer::monitor
