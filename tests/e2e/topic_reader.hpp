// Reads whole topics back from the broker for the multi-process tests: a consumer group of its
// own from the earliest offset, until nothing more arrives for `quiet`. Bounded by `limit`.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "immunizer/common/kafka.hpp"

namespace immunizer::e2e {

inline std::vector<common::Message> read_topics(const std::string& bootstrap,
                                                const std::vector<std::string>& topics,
                                                std::chrono::milliseconds quiet,
                                                std::chrono::seconds limit) {
  common::KafkaSettings s;
  s.bootstrap = bootstrap;
  static int n = 0;
  auto c = common::make_kafka_consumer(
      s, "e2e-reader-" + std::to_string(::getpid()) + "-" + std::to_string(++n), topics, nullptr);
  std::vector<common::Message> out;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto last = std::chrono::steady_clock::now();
  bool any = false;
  while (std::chrono::steady_clock::now() < deadline) {
    auto batch = c->poll(1000, std::chrono::milliseconds(200));
    if (!batch.empty()) {
      any = true;
      last = std::chrono::steady_clock::now();
      for (auto& m : batch) out.push_back(std::move(m));
    } else if (std::chrono::steady_clock::now() - last >
               quiet + (any ? std::chrono::seconds(0) : std::chrono::seconds(5))) {
      break;  // joining the group takes a few seconds before the first message
    }
  }
  c->close();
  return out;
}

}  // namespace immunizer::e2e
