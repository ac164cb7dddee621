// Shared by the fuzz targets and the seed generator: one fuzz input carries several
// messages, each framed as [u8 tag][u16 little-endian length][bytes] (a length running past
// the end takes the rest), so a single input can drive a stream processor through a
// sequence of messages on different topics (the tag picks the topic). Header-only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "immunizer/common/kafka.hpp"
#include "immunizer/common/logging.hpp"
#include "immunizer/common/stream_loop.hpp"

namespace immunizer::fuzz {

// Quiet at start-up: the services' logs and protobuf's parse complaints would otherwise
// cost more than the code under test (crash reports still go to stderr).
inline const bool kQuiet = [] {
  google::protobuf::SetLogHandler(nullptr);
  common::init_logging("off");
  return true;
}();

struct Framed {
  uint8_t tag = 0;
  std::string_view bytes;
};

inline std::vector<Framed> split(const uint8_t* data, size_t size, size_t max_messages = 64) {
  std::vector<Framed> out;
  size_t pos = 0;
  while (pos < size && out.size() < max_messages) {
    Framed f;
    f.tag = data[pos++];
    size_t len = size - pos;
    if (size - pos >= 2) {
      len = static_cast<size_t>(data[pos]) | (static_cast<size_t>(data[pos + 1]) << 8);
      pos += 2;
      if (len > size - pos) len = size - pos;
    }
    f.bytes = std::string_view(reinterpret_cast<const char*>(data) + pos, len);
    pos += len;
    out.push_back(f);
  }
  return out;
}

inline void append_frame(std::string& out, uint8_t tag, std::string_view bytes) {
  const size_t len = bytes.size() > 0xffff ? 0xffff : bytes.size();
  out.push_back(static_cast<char>(tag));
  out.push_back(static_cast<char>(len & 0xff));
  out.push_back(static_cast<char>(len >> 8));
  out.append(bytes.substr(0, len));
}

// A Producer that keeps nothing (thread-safe: it only counts).
class NullProducer final : public common::Producer {
 public:
  void produce(const std::string&, std::string_view, std::string_view) override { ++produced; }
  common::FlushResult flush(std::chrono::milliseconds) override { return {true, 0}; }
  std::atomic<uint64_t> produced{0};
};

// Runs `p` over the input's messages as a service's stream loop does (one batch: per-message
// failures become rejects, i.e. dead letters; anything escaping process_batch would make the
// service re-read the batch forever and is left to crash the fuzzer), then tick and drain.
// topics[tag % topics.size()] is each message's topic.
inline size_t run_processor(common::Processor& p, const std::vector<std::string>& topics,
                            const uint8_t* data, size_t size, common::Producer& out) {
  std::vector<common::Message> batch;
  int64_t offset = 0;
  for (const auto& f : split(data, size)) {
    common::Message m;
    m.topic = topics[f.tag % topics.size()];
    m.offset = offset++;
    m.key = "k";
    m.payload = std::string(f.bytes);
    batch.push_back(std::move(m));
  }
  size_t rejected = 0;
  p.process_batch(batch, out, [&](const common::Message&, const std::string&, const std::string&) {
    ++rejected;
  });
  p.tick(out);
  p.drain(out);
  return rejected;
}

// One message through `p` outside a batch, as fuzz_seeds runs the pipeline to make seeds: a
// message the processor throws on is skipped (it would be a dead letter in the service).
inline void process_one(common::Processor& p, const std::string& topic, const std::string& payload,
                        common::Producer& out) {
  common::Message m;
  m.topic = topic;
  m.payload = payload;
  try {
    p.process(m, out);
  } catch (const std::exception&) {
  }
}

}  // namespace immunizer::fuzz
