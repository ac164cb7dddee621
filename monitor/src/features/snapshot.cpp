// Snapshot encoding of the feature extractor's learned state (ModelSnapshot.state, kind
// "monitor", format FeatureExtractor::kSnapshotFormat): the framed, optionally compressed
// codec bytes of one model. Readers validate every size against the configuration.
#include <algorithm>
#include <memory>
#include <stdexcept>

#include "immunizer/common/byte_codec.hpp"
#include "immunizer/common/compress.hpp"
#include "model_state.hpp"

namespace immunizer::monitor {
namespace {
constexpr std::string_view kFrameMagic = "IMFS";  // feature state
}  // namespace

namespace detail {

void RunningStats::write(common::ByteWriter& w) const {
  w.put<double>(n), w.put<double>(mean), w.put<double>(m2);
}
void RunningStats::read(common::ByteReader& r) {
  n = r.get<double>(), mean = r.get<double>(), m2 = r.get<double>();
}

void PathState::write(common::ByteWriter& w) const {
  w.put_string(name);
  w.put<uint64_t>(present), w.put<uint64_t>(last_record);
  length.write(w);
  w.put_array(classes.data(), classes.size());
  w.put<double>(class_total);
  w.put_array(bytes.data(), bytes.size());
  w.put<uint64_t>(byte_total);
  w.put_vector(trigrams.cells());
  w.put<uint64_t>(trigrams.total());
  w.put<uint64_t>(enum_values.size());
  for (size_t i = 0; i < enum_values.size(); ++i)
    w.put<uint64_t>(enum_values[i]), w.put<uint32_t>(enum_counts[i]);
  w.put<uint8_t>(enum_state);
  w.put<uint64_t>(observations);
  numbers.write(w);
  for (const auto& fs : feature_stats) fs.write(w);
  w.put<uint64_t>(outliers);
}

void PathState::read(common::ByteReader& r, size_t width, size_t depth, size_t enum_max) {
  name = r.get_string(4096);
  present = r.get<uint64_t>(), last_record = r.get<uint64_t>();
  length.read(r);
  r.get_array(classes.data(), classes.size());
  class_total = r.get<double>();
  r.get_array(bytes.data(), bytes.size());
  byte_total = r.get<uint64_t>();
  trigrams = CountMinSketch(width, depth);
  r.get_vector_of_size(&trigrams.mutable_cells(), trigrams.width() * trigrams.depth());
  trigrams.set_total(r.get<uint64_t>());
  const uint64_t ne = r.get<uint64_t>();
  if (ne > enum_max)
    throw std::runtime_error("monitor snapshot: enumeration larger than enum_max_values");
  enum_values.clear();
  enum_counts.clear();
  enum_state = 0;
  enum_values.reserve(enum_max);
  enum_counts.reserve(enum_max);
  for (uint64_t i = 0; i < ne; ++i) {
    enum_values.push_back(r.get<uint64_t>());
    enum_counts.push_back(r.get<uint32_t>());
  }
  enum_state = r.get<uint8_t>();
  if (enum_state > 2) throw std::runtime_error("monitor snapshot: bad enumeration state");
  if (enum_state == 2) enum_values.shrink_to_fit(), enum_counts.shrink_to_fit();
  enum_mode = 0;
  for (uint32_t c : enum_counts) enum_mode = std::max(enum_mode, c);
  observations = r.get<uint64_t>();
  numbers.read(r);
  for (auto& fs : feature_stats) fs.read(r);
  outliers = r.get<uint64_t>();
}

// Only the used slots, each with its position.
void PrincipalTable::write(common::ByteWriter& w) const {
  uint64_t used = 0;
  for (const auto& s : slots_) used += s.hash != 0;
  w.put<uint64_t>(used);
  for (size_t i = 0; i < slots_.size(); ++i) {
    const auto& s = slots_[i];
    if (s.hash == 0) continue;
    w.put<uint64_t>(i), w.put<uint64_t>(s.hash), w.put<int64_t>(s.last_ns),
        w.put<double>(s.damped_calls);
    w.put<double>(s.iv_n), w.put<double>(s.iv_mean), w.put<double>(s.iv_var);
  }
}

void PrincipalTable::read(common::ByteReader& r) {
  const uint64_t used = r.get<uint64_t>();
  if (used > slots_.size()) throw std::runtime_error("monitor snapshot: too many principals");
  for (uint64_t k = 0; k < used; ++k) {
    const uint64_t i = r.get<uint64_t>();
    if (i >= slots_.size())
      throw std::runtime_error("monitor snapshot: principal slot out of range");
    auto& s = slots_[i];
    s.hash = r.get<uint64_t>(), s.last_ns = r.get<int64_t>(), s.damped_calls = r.get<double>();
    s.iv_n = r.get<double>(), s.iv_mean = r.get<double>(), s.iv_var = r.get<double>();
  }
}

}  // namespace detail

void ModelState::write(common::ByteWriter& w) const {
  w.put<uint64_t>(cfg_.trigram_sketch_width), w.put<uint64_t>(cfg_.trigram_sketch_depth),
      w.put<uint64_t>(principals_.slots());
  w.put<uint64_t>(records_), w.put<uint32_t>(schema_.version());
  w.put<uint64_t>(unseen_path_records_), w.put<uint64_t>(truncated_records_);
  arg_stats_.write(w);
  duration_.write(w);
  all_.write(w);
  w.put<uint64_t>(schema_.paths().size());
  for (const auto& p : schema_.paths()) p.write(w);
  principals_.write(w);
}

void ModelState::read(common::ByteReader& r) {
  if (r.get<uint64_t>() != cfg_.trigram_sketch_width ||
      r.get<uint64_t>() != cfg_.trigram_sketch_depth || r.get<uint64_t>() != principals_.slots()) {
    throw std::runtime_error(
        "monitor snapshot: sketch or principal table dimensions differ from config");
  }
  records_ = r.get<uint64_t>();
  const uint32_t version = r.get<uint32_t>();
  unseen_path_records_ = r.get<uint64_t>(), truncated_records_ = r.get<uint64_t>();
  arg_stats_.read(r);
  duration_.read(r);
  all_.read(r, cfg_.trigram_sketch_width, cfg_.trigram_sketch_depth, cfg_.enum_max_values);
  const uint64_t np = r.get<uint64_t>();
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
  common::ByteWriter w;
  w.put<uint32_t>(kSnapshotFormat);
  it->second->write(w);
  return common::frame_snapshot(kFrameMagic, w.bytes(), cfg_.compress_snapshots);
}

void FeatureExtractor::restore(const std::string& model_key, const std::string& bytes) {
  const std::string raw =
      common::unframe_snapshot(kFrameMagic, bytes, size_t{1} << 30, "monitor snapshot");
  common::ByteReader r(raw, "monitor snapshot");
  if (r.get<uint32_t>() != kSnapshotFormat)
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
