// All model keys of one analyze instance: a batch of observations is scored in parallel
// across keys (each key's vectors stay in order on one thread). Not thread-safe itself: one
// owner thread calls it; it owns the ModelKeyStates and its ThreadPool.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "immunizer/analyze/models/model_key_state.hpp"
#include "immunizer/analyze/models/thread_pool.hpp"

namespace immunizer::analyze {

struct Observation {
  std::string model_key;
  std::vector<double> values;
  std::vector<std::string> feature_names;
  uint32_t schema_version = 0;
};

// The outcome of one observation; error is set (and verdict empty) when it was rejected.
struct ObservationResult {
  Verdict verdict;
  std::string error;
};

class ModelRegistry {
 public:
  ModelRegistry(DetectorConfig cfg, std::size_t threads);

  // Results in batch order. Never throws for a bad observation: it gets an error instead.
  std::vector<ObservationResult> observe_batch(std::span<const Observation> batch);

  ModelKeyState* find(const std::string& key);
  ModelKeyState& get_or_create(const std::string& key);
  // Replaces the key's state from a snapshot; throws std::runtime_error when corrupt.
  void restore(const std::string& key, const std::string& bytes);
  void erase(const std::string& key) { keys_.erase(key); }
  std::vector<std::string> keys() const;
  std::size_t size() const { return keys_.size(); }
  std::size_t memory_bytes() const;
  // Runs fn(0..n-1) on the registry's threads (the caller helps); one task per model key
  // keeps that key's work on one thread. From the owner thread only.
  void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn) {
    pool_.parallel_for(n, fn);
  }
  std::size_t threads() const { return pool_.size(); }
  // Background refits started and not installed yet.
  std::size_t refits_pending() const;

 private:
  DetectorConfig cfg_;
  ThreadPool pool_;
  TaskQueue refits_;  // background refits (DetectorConfig::background_refit); outlives keys_
  std::map<std::string, std::unique_ptr<ModelKeyState>, std::less<>> keys_;
};

}  // namespace immunizer::analyze
