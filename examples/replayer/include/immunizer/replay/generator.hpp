// Built-in traffic for the demo shop when the CSIC 2010 dataset is not at hand: browsing
// sessions over the shop's pages and forms (products, names, addresses, quantities from word
// lists written for this project) and attacks of the usual classes on the same forms, with
// ground truth. Deterministic for a seed. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "immunizer/monitor/csic.hpp"

namespace immunizer::replay {

struct GeneratorOptions {
  uint64_t seed = 2010;
  size_t training = 36000;   // normal training requests
  size_t normal = 18000;     // normal test requests
  size_t anomalous = 12000;  // attack test requests
};

struct GeneratedTraffic {
  std::vector<monitor::csic::Request> training, normal, anomalous;
  std::vector<std::string> attack_class;  // per anomalous request: sqli, xss, traversal, ...
};

// The attack classes generated, in rotation.
const std::vector<std::string>& attack_classes();

GeneratedTraffic generate(const GeneratorOptions& options);

// Writes requests in the CSIC 2010 text format (readable by monitor::csic::read_file), so
// `immunizer eval csic` runs on generated traffic too. Throws std::runtime_error on I/O errors.
void write_csic(const std::string& file, const std::vector<monitor::csic::Request>& requests);

}  // namespace immunizer::replay
