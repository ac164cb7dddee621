// The feature extractor: configuration checks and the map of model keys to their learned
// state (features/model_state.hpp); snapshots are in features/snapshot.cpp.
#include "immunizer/monitor/features.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>

#include "features/model_state.hpp"
#include "immunizer/monitor/sketch.hpp"
#include "immunizer/v1/text.hpp"

namespace immunizer::monitor {

FeatureConfig sanitize(FeatureConfig c) {
  auto need = [](bool ok, const char* field) {
    if (!ok)
      throw std::invalid_argument(std::string("monitor.features.") + field + " out of range");
  };
  need(c.max_paths_per_model >= 1 && c.max_paths_per_model <= 4096, "max_paths_per_model");
  need(c.max_models >= 1, "max_models");
  need(c.max_leaves_per_record >= 1, "max_leaves_per_record");
  need(c.max_depth >= 1 && c.max_depth <= 64, "max_depth");
  need(c.max_value_bytes >= 3 && c.max_value_bytes <= 4096, "max_value_bytes");
  need(c.outlier_novelty > 0, "outlier_novelty");
  need(c.outlier_learn_every >= 1, "outlier_learn_every");
  need(c.trigram_sketch_width >= 16 && c.trigram_sketch_width <= (1u << 24),
       "trigram_sketch_width");
  need(c.trigram_sketch_depth >= 1 && c.trigram_sketch_depth <= 4, "trigram_sketch_depth");
  need(c.enum_max_values >= 1 && c.enum_max_values <= 4096, "enum_max_values");
  need(c.missing_presence_threshold > 0 && c.missing_presence_threshold <= 1,
       "missing_presence_threshold");
  need(c.max_principals >= 4 && c.max_principals <= (1u << 24), "max_principals");
  need(c.principal_half_life_seconds > 0, "principal_half_life_seconds");
  need(c.max_deviation > 0, "max_deviation");
  c.trigram_sketch_width = std::bit_ceil(c.trigram_sketch_width);
  c.max_principals = std::bit_ceil(c.max_principals);
  return c;
}

size_t FeatureExtractor::Hash::operator()(std::string_view s) const noexcept {
  return stable_hash(s);
}

FeatureExtractor::FeatureExtractor(FeatureConfig cfg) : cfg_(sanitize(cfg)) {}
FeatureExtractor::~FeatureExtractor() = default;
FeatureExtractor::FeatureExtractor(FeatureExtractor&&) noexcept = default;
FeatureExtractor& FeatureExtractor::operator=(FeatureExtractor&&) noexcept = default;

namespace {
void append_model_key(std::string& k, const immunizer::v1::CallRecord& r) {
  v1::append_escaped_utf8(k, r.id().app());
  k.push_back('|');
  v1::append_escaped_utf8(k, r.call());
  k.push_back('|');
  v1::append_escaped_utf8(k, r.context());
}
}  // namespace

void FeatureExtractor::model_key(const immunizer::v1::CallRecord& r, std::string* out) {
  out->clear();
  append_model_key(*out, r);
}

std::string FeatureExtractor::model_key(const immunizer::v1::CallRecord& r) {
  std::string k;
  k.reserve(r.id().app().size() + r.call().size() + r.context().size() + 2);
  append_model_key(k, r);
  return k;
}

namespace {
// The fields a FeatureVector and a FeatureRow share, from the record: call, timestamp and
// labels. Assignments into the message's existing fields: a reused message keeps its
// allocations.
template <class Out>
void fill_record_fields(const immunizer::v1::CallRecord& r, Out* out) {
  if (v1::is_valid_utf8(r.call())) {
    out->set_call(r.call());
  } else {
    out->set_call(v1::escape_invalid_utf8(r.call()));
  }
  out->set_timestamp_unix_nanos(r.timestamp_unix_nanos());
  auto* labels = out->mutable_labels();
  labels->clear();
  for (const auto& l : r.labels()) {
    // A repeated key: the last one wins, as when labels were a map<string, string>.
    (*labels)[v1::escape_invalid_utf8(l.key())] = v1::escape_invalid_utf8(l.value());
  }
}
}  // namespace

ModelState* FeatureExtractor::observe(const immunizer::v1::CallRecord& r, std::string* reason) {
  auto fail = [&](const char* why) -> ModelState* {
    if (reason) *reason = why;
    return nullptr;
  };
  if (r.id().app().empty()) return fail("record has no app");
  if (r.call().empty()) return fail("record has no call name");
  // The model key, call and labels travel downstream as proto3 strings: hostile bytes in
  // them are escaped (and measured by the model as encoding:invalid_utf8).
  key_buf_.clear();
  append_model_key(key_buf_, r);
  auto it = models_.find(std::string_view(key_buf_));
  if (it == models_.end()) {
    if (models_.size() >= cfg_.max_models) return fail("model limit reached (max_models)");
    it = models_.emplace(key_buf_, std::make_unique<ModelState>(cfg_)).first;
  }
  ModelState& m = *it->second;
  m.process(r);
  return &m;
}

bool FeatureExtractor::extract(const immunizer::v1::CallRecord& r,
                               immunizer::v1::FeatureVector* out, std::string* reason) {
  if (out == nullptr) {
    if (reason) *reason = "no output vector";
    return false;
  }
  const ModelState* m = observe(r, reason);
  if (m == nullptr) return false;
  const auto& names = m->names();
  auto* schema = out->mutable_schema();
  if (out->model_key() != key_buf_ || schema->version() != m->version() ||
      schema->names_size() != static_cast<int>(names.size())) {
    out->set_model_key(key_buf_);
    schema->set_version(m->version());
    schema->clear_names();
    for (const auto& n : names) schema->add_names(n);
  }
  const auto& vals = m->values();
  out->mutable_values()->Assign(vals.begin(), vals.end());
  *out->mutable_record_id() = r.id();
  *out->mutable_principal() = r.principal();
  fill_record_fields(r, out);
  return true;
}

bool FeatureExtractor::extract_row(const immunizer::v1::CallRecord& r,
                                   immunizer::v1::FeatureRow* row, RowSchema* schema,
                                   std::string* reason) {
  if (row == nullptr || schema == nullptr) {
    if (reason) *reason = "no output row";
    return false;
  }
  const ModelState* m = observe(r, reason);
  if (m == nullptr) return false;
  schema->model_key = key_buf_;
  schema->version = m->version();
  schema->names = &m->names();
  schema->values = &m->values();
  fill_record_fields(r, row);
  return true;
}

bool FeatureExtractor::drop(const std::string& model_key) {
  auto it = models_.find(std::string_view(model_key));
  if (it == models_.end()) return false;
  models_.erase(it);
  return true;
}

std::vector<std::string> FeatureExtractor::model_keys() const {
  std::vector<std::string> keys;
  keys.reserve(models_.size());
  for (const auto& [k, _] : models_) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

immunizer::v1::FeatureSchema FeatureExtractor::schema(const std::string& model_key) const {
  immunizer::v1::FeatureSchema s;
  auto it = models_.find(std::string_view(model_key));
  if (it == models_.end()) return s;
  s.set_version(it->second->version());
  for (const auto& n : it->second->names()) s.add_names(n);
  return s;
}

ModelStats FeatureExtractor::stats(const std::string& model_key) const {
  ModelStats st;
  auto it = models_.find(std::string_view(model_key));
  if (it == models_.end()) return st;
  const ModelState& m = *it->second;
  st.records = m.records();
  st.schema_version = m.version();
  st.features = m.names().size();
  st.paths = m.paths();
  st.frozen = m.frozen();
  st.unseen_path_records = m.unseen_path_records();
  st.truncated_records = m.truncated_records();
  st.memory_bytes = m.memory_bytes();
  return st;
}

uint64_t FeatureExtractor::records_seen(const std::string& model_key) const {
  auto it = models_.find(std::string_view(model_key));
  return it == models_.end() ? 0 : it->second->records();
}

size_t FeatureExtractor::memory_bytes(const std::string& model_key) const {
  auto it = models_.find(std::string_view(model_key));
  return it == models_.end() ? 0 : it->second->memory_bytes() + model_key.size() + 64;
}

size_t FeatureExtractor::memory_bytes() const {
  size_t m = sizeof(*this) + key_buf_.capacity();
  for (const auto& [k, s] : models_) m += s->memory_bytes() + k.size() + 64;
  return m;
}

}  // namespace immunizer::monitor
