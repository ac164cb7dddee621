// One pipeline stage (monitor, analyze, plan, execute, dashboard) as data, and the runtime
// that runs any of them: every stage's main() is `return run_stage(argc, argv, kStage);`.
// run_stage() adds the stream wiring to run_service() (flags, configuration, logging, the
// metrics/health endpoint, signals): the stage's setup reads its configuration and builds its
// processor; then, in order, the latest snapshots of the stage's kind are read back, the
// snapshot producer attached, the processor started, the consumer group joined on the
// stage's inputs and the stream loop run until SIGTERM/SIGINT; then the processor is stopped.
// docs/conventions.md ("Stages") describes the shape of a stage's folder.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "immunizer/common/kafka.hpp"
#include "immunizer/common/stage_processor.hpp"

namespace immunizer::common {

class Config;
struct ServiceContext;

// What a stage's setup returns: its processor and the settings it read for the runtime.
struct StageSetup {
  std::unique_ptr<StageProcessor> processor;
  std::string group;  // consumer group on the stage's inputs
  // How long to wait reading back the stage's snapshots at start-up (0: start without them).
  std::chrono::milliseconds restore_timeout{0};
};

// Throughput knobs of one stream stage, keys under its own name (`<stage>.max_batch`,
// `.poll_timeout_ms`, `.linger_ms`, `.fetch_wait_max_ms`): read and range-checked in the
// stage's setup (an out-of-range or malformed value is a ConfigError naming the key).
struct StreamTuning {
  size_t max_batch = 500;          // messages per consumed batch (one flush and commit each)
  int64_t poll_timeout_ms = 20;    // the longest a poll waits for its first message
  int64_t linger_ms = 5;           // producer: how long messages gather into one request
  int64_t fetch_wait_max_ms = 20;  // consumer: how long the broker may wait to fill a fetch
  static StreamTuning from_config(const Config& c, const std::string& service);
};

// A subcommand of the stage's binary (`immunizer-analyze score ...`): gets argv from the
// subcommand's name on, returns the exit code.
struct StageCommand {
  std::string_view name;
  std::function<int(int argc, char** argv)> run;
};

struct Stage {
  std::string_view name;  // "monitor" (a literal): logger, metrics label, client ids
  int default_port = 0;   // metrics/health (and, for the dashboard, UI) port: http.port
  std::vector<std::string Topics::*> inputs;   // the topics the stage consumes
  std::vector<std::string Topics::*> outputs;  // and those it writes (logged at start-up)
  SnapshotSpec snapshots;                      // kind empty: the stage keeps no snapshots
  // false: the consumer never commits, every start replays the retained history (dashboard).
  bool commits = true;
  std::vector<StageCommand> commands;
  // Whether the StreamTuning keys (`<name>.max_batch`, ...) are read: monitor, analyze, plan.
  bool tunable = false;
  // Reads and checks every key the stage uses (throws ConfigError naming the key) and builds
  // the processor; connects to nothing (a bad configuration fails before any connection).
  std::function<StageSetup(ServiceContext& ctx)> setup;
};

// Runs `stage`: a first argument naming one of its commands runs that command; a first
// argument `run` is the same as none. Exit code as run_service(): 0 after a clean stop, 2 for
// bad configuration or flags, 1 when the stage failed.
int run_stage(int argc, char** argv, const Stage& stage);

// A Consumer that never commits (Stage::commits == false).
class NonCommittingConsumer final : public Consumer {
 public:
  explicit NonCommittingConsumer(std::unique_ptr<Consumer> inner) : inner_(std::move(inner)) {}
  std::vector<Message> poll(size_t max, std::chrono::milliseconds timeout) override {
    return inner_->poll(max, timeout);
  }
  void commit(const std::vector<Message>&) override {}
  void rewind(const std::vector<Message>& batch) override { inner_->rewind(batch); }
  void close() override { inner_->close(); }
  uint64_t lost() const override { return inner_->lost(); }
  uint64_t partitions_gained() const override { return inner_->partitions_gained(); }

 private:
  std::unique_ptr<Consumer> inner_;
};

}  // namespace immunizer::common
