// What the example clients (examples/grpc_service, examples/httplib_service) share: the options
// of one session's load (session, client address, normal or attack, count, rate, time bound,
// seed), their command-line parsing with the client's own transport options, and the bounded,
// paced send loop that counts answers and prints the one result line the live tests read:
//   sent=N ok=N denied=N other=N first_denied=I seconds=S
// Header-only (the clients link nothing else of ours); single-threaded.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace immunizer::examples {

struct LoadOptions {
  std::string session = "alice";
  std::string ip;  // sent as the forwarded-for address (honoured only from a trusted proxy)
  std::string kind = "normal";
  long count = 100;
  double rate = 50;
  double seconds = 60;
  bool stop_when_denied = false;
  unsigned seed = 1;
};

// Parses argv into `o`; `transport(flag, value)` takes the client's own flags (true when it
// knew the flag). False on an unknown flag, a missing value or a value out of range.
inline bool parse_load_options(
    int argc, char** argv, LoadOptions& o,
    const std::function<bool(const std::string&, const char*)>& transport) {
  using Set = std::function<void(const char*)>;
  const std::pair<const char*, Set> flags[] = {
      {"--session", [&](const char* v) { o.session = v; }},
      {"--ip", [&](const char* v) { o.ip = v; }},
      {"--kind", [&](const char* v) { o.kind = v; }},
      {"--count", [&](const char* v) { o.count = std::atol(v); }},
      {"--rate", [&](const char* v) { o.rate = std::atof(v); }},
      {"--seconds", [&](const char* v) { o.seconds = std::atof(v); }},
      {"--seed", [&](const char* v) { o.seed = static_cast<unsigned>(std::atol(v)); }}};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--stop-when-denied") {
      o.stop_when_denied = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    const auto* f = std::find_if(std::begin(flags), std::end(flags),
                                 [&](const auto& kv) { return a == kv.first; });
    if (f != std::end(flags))
      f->second(v);
    else if (!transport(a, v))
      return false;
  }
  return (o.kind == "normal" || o.kind == "attack") && o.count > 0 && o.count <= 1'000'000 &&
         o.seconds > 0 && o.seconds <= 3600;
}

enum class Answer { kOk, kDenied, kOther };

// Sends up to o.count requests (`send(i, rng)` sends the i-th and classifies its answer) at
// o.rate per second (0: as fast as answered), within o.seconds, stopping at the first denial
// with o.stop_when_denied; prints the result line.
inline void run_load(const LoadOptions& o,
                     const std::function<Answer(long i, std::mt19937& rng)>& send) {
  std::mt19937 rng(o.seed);
  long sent = 0, ok = 0, denied = 0, other = 0, first_denied = -1;
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::duration<double>(o.seconds);
  for (long i = 0; i < o.count && std::chrono::steady_clock::now() < deadline; ++i) {
    if (o.rate > 0) std::this_thread::sleep_until(t0 + std::chrono::duration<double>(i / o.rate));
    const Answer a = send(i, rng);
    ++sent;
    if (a == Answer::kOk) {
      ++ok;
    } else if (a == Answer::kDenied) {
      if (denied++ == 0) first_denied = i;
      if (o.stop_when_denied) break;
    } else {
      ++other;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("sent=%ld ok=%ld denied=%ld other=%ld first_denied=%ld seconds=%.2f\n", sent, ok,
              denied, other, first_denied, secs);
}

// An element of `v` drawn uniformly.
template <typename T>
const T& pick(std::mt19937& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

}  // namespace immunizer::examples
