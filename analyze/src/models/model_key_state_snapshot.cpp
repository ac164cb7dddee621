// ModelKeyState's snapshot: the key's whole state (schema, reservoir, fitted detectors,
// calibrations) as bytes for the state topic, and restore() from them. The state is framed with
// its own magic and version, deflated, and checksummed, so a truncated or altered snapshot is
// rejected rather than half-restored. Learning and scoring are in model_key_state.cpp.

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <string_view>

#include "immunizer/analyze/models/model_key_state.hpp"
#include "immunizer/common/byte_codec.hpp"
#include "immunizer/common/compress.hpp"

namespace immunizer::analyze {

namespace {

constexpr uint32_t kStateMagic = 0x4D5A4D49;  // "IMZM"
constexpr uint32_t kStateVersion = 3;         // 3: feedback marks per reservoir row (2 is read too)
constexpr uint32_t kFrameMagic = 0x535A4D49;  // "IMZS": deflated state + checksum
constexpr uint32_t kFrameVersion = 1;

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// The state bytes inside snapshot()'s frame: magic, version, raw size, deflated state, then a
// checksum of all that.
std::string unframe(const std::string& bytes) {
  if (bytes.size() < 24) throw std::runtime_error("model snapshot: too short");
  const std::string_view frame(bytes.data(), bytes.size() - sizeof(uint64_t));
  common::ByteReader head(bytes, "model snapshot");
  const auto magic = head.get<uint32_t>();
  const auto version = head.get<uint32_t>();
  const auto raw_size = head.get<uint64_t>();
  if (common::ByteReader(bytes.substr(frame.size())).get<uint64_t>() != fnv1a(frame))
    throw std::runtime_error("model snapshot: checksum mismatch");
  if (magic != kFrameMagic) throw std::runtime_error("model snapshot: bad magic");
  if (version != kFrameVersion) throw std::runtime_error("model snapshot: unknown frame version");
  if (raw_size > (1ull << 31)) throw std::runtime_error("model snapshot: implausible size");
  try {
    return common::zlib_decompress_exact(frame.substr(16), raw_size);
  } catch (const std::runtime_error&) {
    throw std::runtime_error("model snapshot: corrupt compressed data");
  }
}

}  // namespace

std::string ModelKeyState::snapshot() const {
  common::ByteWriter w;
  w.put_header(kStateMagic, kStateVersion);
  w.put<uint8_t>(state_ == ModelState::kActive ? 1 : 0);
  w.put<uint8_t>(static_cast<uint8_t>(cfg_.detector));
  w.put<uint8_t>(has_schema_ ? 1 : 0);
  w.put(schema_version_);
  w.put<uint64_t>(names_->size());
  for (const auto& n : *names_) w.put_string(n);
  w.put<uint64_t>(records_seen_);
  w.put<uint64_t>(since_fit_);
  w.put<uint64_t>(fits_);
  w.put<uint64_t>(reservoir_.rows);
  w.put<uint64_t>(reservoir_.cols);
  w.put_vector(reservoir_.values);
  w.put<uint64_t>(ring_next_);
  w.put_vector(feedback_mark_);
  w.put_string(forest_.fitted() ? forest_.serialize() : std::string());
  w.put_string(ae_.fitted() ? ae_.serialize() : std::string());
  forest_cal_.write(w);
  ae_cal_.write(w);
  combined_cal_.write(w);
  // Deflated (level 1: ~half the bytes in milliseconds) so a key's snapshot stays well under
  // Kafka's default 1 MB message limit; the checksum covers the compressed frame.
  const std::string& raw = w.bytes();
  common::ByteWriter frame;
  frame.put(kFrameMagic);
  frame.put(kFrameVersion);
  frame.put<uint64_t>(raw.size());
  frame.mutable_bytes() += common::zlib_compress(raw);
  frame.put(fnv1a(frame.bytes()));
  return frame.take();
}

ModelKeyState ModelKeyState::restore(const std::string& bytes, DetectorConfig cfg) {
  const std::string body = unframe(bytes);
  common::ByteReader r(body, "model snapshot");
  const uint32_t state_version = r.get_header(kStateMagic, kStateVersion, 2);
  ModelKeyState m(cfg);
  const bool active = r.get<uint8_t>() != 0;
  const auto kind = r.get<uint8_t>();
  m.has_schema_ = r.get<uint8_t>() != 0;
  m.schema_version_ = r.get<uint32_t>();
  const auto names = r.get<uint64_t>();
  if (names > r.remaining()) throw std::runtime_error("model snapshot: corrupt schema");
  {
    std::vector<std::string> read;
    for (uint64_t i = 0; i < names; ++i) read.push_back(r.get_string());
    m.names_ = std::make_shared<const std::vector<std::string>>(std::move(read));
  }
  m.records_seen_ = r.get<uint64_t>();
  m.since_fit_ = r.get<uint64_t>();
  m.fits_ = r.get<uint64_t>();
  m.reservoir_.rows = r.get<uint64_t>();
  m.reservoir_.cols = r.get<uint64_t>();
  m.reservoir_.values = r.get_vector<float>();
  m.ring_next_ = r.get<uint64_t>();
  if (state_version >= 3) {
    m.feedback_mark_ = r.get_vector<uint8_t>();
  } else {
    m.feedback_mark_.assign(m.reservoir_.rows, 0);  // version 2 did not tell feedback rows apart
  }
  if (m.reservoir_.cols != m.names_->size() ||
      m.reservoir_.values.size() != m.reservoir_.rows * m.reservoir_.cols ||
      (m.reservoir_.rows > 0 && m.ring_next_ >= m.reservoir_.rows) ||
      m.feedback_mark_.size() != m.reservoir_.rows ||
      !std::all_of(m.reservoir_.values.begin(), m.reservoir_.values.end(),
                   [](float v) { return std::isfinite(v); }))
    throw std::runtime_error("model snapshot: corrupt reservoir");
  for (const uint8_t f : m.feedback_mark_) {
    if (f > 1) throw std::runtime_error("model snapshot: corrupt feedback marks");
    m.feedback_rows_ += f;
  }
  if (active && m.reservoir_.rows > 0) {
    const Matrix fb = m.rows_from(true);
    m.learn_constants(m.rows_from(false), &fb);
  }
  const std::string forest = r.get_string(), ae = r.get_string();
  if (!forest.empty()) m.forest_ = IsolationForest::deserialize(forest);
  if (!ae.empty()) m.ae_ = AutoencoderEnsemble::deserialize(ae);
  m.forest_cal_.read(r);
  m.ae_cal_.read(r);
  m.combined_cal_.read(r);
  if ((m.forest_.fitted() && m.forest_.dims() != m.names_->size()) ||
      (m.ae_.fitted() && m.ae_.dims() != m.names_->size()))
    throw std::runtime_error("model snapshot: model and schema disagree");
  // A reservoir bigger than the new config allows keeps its most useful (all) rows.
  m.cfg_.reservoir_size = std::max(m.cfg_.reservoir_size, m.reservoir_.rows);
  if (active) {
    m.state_ = ModelState::kActive;
    if (kind != static_cast<uint8_t>(m.cfg_.detector)) {
      m.fit_models();  // the configured detector changed since the snapshot: relearn from the
                       // reservoir
    } else {
      m.set_threshold();
    }
  }
  return m;
}

}  // namespace immunizer::analyze
