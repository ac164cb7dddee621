// Replays CSIC 2010 requests against the demo shop as they are (method, target, headers,
// body), in file order, at a bounded rate, and can play an attacker: one session (one
// cookie, one client address) sending attack requests in a row, while a normal user keeps
// browsing, so blocking is visible. Every loop is bounded by counts and a time limit.
// Thread-safe: one Replayer per run; its workers own their HTTP clients.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "immunizer/monitor/csic.hpp"

namespace immunizer::replay {

struct Target {
  std::string host = "127.0.0.1";
  int port = 8088;
  static Target parse(const std::string& url);  // "http://host:port"; throws std::invalid_argument
};

struct Sent {
  int status = 0;       // 0: no answer (connection error)
  int64_t sent_ns = 0;  // steady clock
  int64_t latency_ns = 0;
  std::string trace;
};

class LagPacer;

struct SendOptions {
  double rate = 0;  // requests per second over all workers; 0 = unlimited
  int concurrency = 4;
  std::string session_override;  // replaces JSESSIONID (attacker / normal user)
  std::string ip;                // X-Forwarded-For; empty: derived from the session
  std::string trace_prefix;      // X-Immunizer-Trace = prefix + ":" + request index
  std::chrono::seconds time_limit{600};
  // Called after each answer (any worker thread); return false to stop early.
  std::function<bool(const Sent&)> on_answer;
  // When set, no request is sent while the pipeline is too far behind (see LagPacer).
  LagPacer* pacer = nullptr;
};

struct PhaseSummary {
  std::string name;
  uint64_t sent = 0, ok = 0, forbidden = 0, not_found = 0, other = 0, failed = 0;
  double seconds = 0;
  double requests_per_second() const { return seconds > 0 ? sent / seconds : 0; }
};

// A stable synthetic client address for a session (198.18.0.0/15, the benchmarking range).
std::string address_for(const std::string& session);

// Sends `requests` to `target`; returns per-status counts. Stops at the time limit, when
// on_answer returns false, or when `stop` is set.
PhaseSummary send_all(const Target& target, const std::vector<monitor::csic::Request>& requests,
                      const SendOptions& opt, const std::atomic<bool>& stop,
                      const std::string& name);

struct AttackResult {
  PhaseSummary attacker, bystander;
  bool blocked = false;
  uint64_t attacks_before_block = 0;     // attack requests answered before the first 403
  double seconds_to_block = 0;           // first attack request sent -> first 403 answer
  double seconds_from_last_allowed = 0;  // last 200-answered attack -> first 403
};

struct AttackOptions {
  std::string session = "ATTACKER0000000000000000000000AA";
  std::string ip = "203.0.113.66";
  uint64_t max_attacks = 300;  // attack requests at most
  uint64_t after_block = 20;   // attack requests sent after the first 403
  double rate = 50;            // attacker's requests per second
  std::chrono::seconds time_limit{120};
};

// The attacker sends anomalous requests in a row under one session and address while a
// bystander session sends normal requests; returns when the attacker has finished.
AttackResult attack(const Target& target, const std::vector<monitor::csic::Request>& anomalous,
                    const std::vector<monitor::csic::Request>& normal, const AttackOptions& opt,
                    const std::atomic<bool>& stop);

// GET of a /metrics URL ("http://host:port/metrics"); nullopt when unreachable.
std::optional<std::string> fetch_metrics(const std::string& url);

// Paces the traffic on the pipeline's consumer lag: the immunizer_kafka_consumer_lag gauges
// of the services behind `metrics_urls` (monitor and analyze: messages between their
// committed offsets and the ends of their partitions), polled by a thread of its own every
// 250 ms. wait() holds a sender while their sum is above `max_lag` until it is back under
// half of it, so the broker's bounded partitions never drop what a consumer has not read.
// Thread-safe.
class LagPacer {
 public:
  LagPacer(std::vector<std::string> metrics_urls, double max_lag);
  ~LagPacer();
  LagPacer(const LagPacer&) = delete;
  LagPacer& operator=(const LagPacer&) = delete;
  // Returns the nanoseconds waited (0: not behind). Bounded by `stop` and `deadline_ns`
  // (steady clock).
  int64_t wait(const std::atomic<bool>& stop, int64_t deadline_ns);
  double lag() const { return lag_.load(); }
  uint64_t pauses() const { return pauses_.load(); }
  double paused_seconds() const { return static_cast<double>(paused_ns_.load()) / 1e9; }

 private:
  void poll_loop();
  std::vector<std::string> urls_;
  double max_lag_;
  std::atomic<double> lag_{0};
  std::atomic<bool> behind_{false};
  std::atomic<bool> quit_{false};
  std::atomic<uint64_t> pauses_{0};
  std::atomic<int64_t> paused_ns_{0};
  std::thread poller_;
};

// The pipeline's record counters, summed over /metrics pages (the shop and every service):
// what the sensor delivered, what analyze scored, what was lost on the way and why records
// were not scored.
struct PipelineCounts {
  double sent = 0;         // immunizer_sensor_records_sent_total
  double scored = 0;       // immunizer_analyze_vectors_{scored,learning}_total
  double lost = 0;         // immunizer_records_lost_total + sensor drops (not sampling)
  double denied = 0;       // monitor: denied by the effector, deliberately not scored
  double rejected = 0;     // monitor: other records it could not use (dead-lettered)
  double deadletters = 0;  // immunizer_deadletters_total of every service
  double sampled_out = 0;  // sensor sampling (configured, not a loss)
  int unreachable = 0;     // pages that did not answer
  // Records that went in and are neither scored nor accounted for by a counted reason.
  double unaccounted() const { return sent - scored - denied - rejected; }
};
PipelineCounts pipeline_counts(const std::vector<std::string>& metrics_urls);
// "records sent N / scored N / lost N" and the reasons behind any difference.
std::string describe(const PipelineCounts& c);

// Waits until the services behind the metrics URLs ("http://host:port/metrics") have
// consumed messages, their consumer lag is 0 and they consumed nothing more for 3 s: the
// pipeline has caught up.
// Returns false at the time limit. `progress` receives the total consumed so far.
bool wait_for_pipeline(const std::vector<std::string>& metrics_urls, std::chrono::seconds limit,
                       const std::atomic<bool>& stop, const std::function<void(double)>& progress);

// Interleaves two lists proportionally (normal and anomalous test requests).
std::vector<monitor::csic::Request> interleave(const std::vector<monitor::csic::Request>& a,
                                               const std::vector<monitor::csic::Request>& b);

}  // namespace immunizer::replay
