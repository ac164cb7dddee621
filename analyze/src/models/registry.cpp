#include "immunizer/analyze/models/registry.hpp"

#include <exception>

namespace immunizer::analyze {

ModelRegistry::ModelRegistry(DetectorConfig cfg, std::size_t threads)
    : cfg_(cfg), pool_(threads) {}  // DetectorConfig is trivially copyable

ModelKeyState* ModelRegistry::find(const std::string& key) {
  const auto it = keys_.find(key);
  return it == keys_.end() ? nullptr : it->second.get();
}

ModelKeyState& ModelRegistry::get_or_create(const std::string& key) {
  auto& slot = keys_[key];
  if (!slot) {
    slot = std::make_unique<ModelKeyState>(cfg_);
    slot->set_refitter(&refits_);
  }
  return *slot;
}

void ModelRegistry::restore(const std::string& key, const std::string& bytes) {
  auto state = std::make_unique<ModelKeyState>(ModelKeyState::restore(bytes, cfg_));
  state->set_refitter(&refits_);
  keys_[key] = std::move(state);
}

std::size_t ModelRegistry::refits_pending() const {
  std::size_t n = 0;
  for (const auto& [k, v] : keys_) n += v->refit_pending() ? 1 : 0;
  return n;
}

std::vector<std::string> ModelRegistry::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : keys_) out.push_back(k);
  return out;
}

std::size_t ModelRegistry::memory_bytes() const {
  std::size_t b = 0;
  for (const auto& [k, v] : keys_) b += k.capacity() + v->memory_bytes();
  return b;
}

std::vector<ObservationResult> ModelRegistry::observe_batch(std::span<const Observation> batch) {
  // Group by key (creating states on this thread), then one task per key keeps its order.
  std::vector<std::pair<ModelKeyState*, std::vector<std::size_t>>> groups;
  std::map<std::string_view, std::size_t> group_of;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto [it, fresh] = group_of.try_emplace(batch[i].model_key, groups.size());
    if (fresh) groups.push_back({&get_or_create(batch[i].model_key), {}});
    groups[it->second].second.push_back(i);
  }
  std::vector<ObservationResult> out(batch.size());
  pool_.parallel_for(groups.size(), [&](std::size_t g) {
    auto& [state, items] = groups[g];
    for (const std::size_t i : items) {
      try {
        out[i].verdict =
            state->observe(batch[i].values, batch[i].feature_names, batch[i].schema_version);
      } catch (const std::exception& e) {
        out[i].error = e.what();
      }
    }
  });
  return out;
}

}  // namespace immunizer::analyze
