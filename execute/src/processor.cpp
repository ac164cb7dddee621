#include "immunizer/execute/processor.hpp"

#include "immunizer/common/service.hpp"
#include "immunizer/execute/control_server.hpp"
#include "immunizer/execute/recent_events.hpp"

namespace immunizer::execute {

void ExecuteProcessor::process(const common::Message& m, common::Producer& out) {
  v1::Plan plan;
  if (!plan.ParseFromString(m.payload)) throw common::BadMessage("unparsable_plan", "not a Plan");
  if (plan.id().empty()) throw common::BadMessage("plan_without_id", "plan has no id");
  // Anyone with write access to the topic could have written it: only plan's key is trusted.
  if (std::string why = dispatcher_.admit(plan); !why.empty())
    throw common::BadMessage(why, "plan " + plan.id().substr(0, 64) + " (key id '" +
                                      plan.key_id().substr(0, 64) + "') refused, nothing enforced");
  dispatcher_.on_plan(plan);
}

void ExecuteProcessor::process_batch(const std::vector<common::Message>& batch,
                                     common::Producer& out, const Reject& reject) {
  common::Processor::process_batch(batch, out, reject);
  // The state first: an event on the topic must imply its block survives a restart.
  if (!dispatcher_.flush_state())
    throw std::runtime_error("state of the batch's actions not acknowledged by Kafka");
  // Then the events, in the same batch: the plans' offsets are committed only once their
  // DISPATCHED events are acknowledged by the broker.
  dispatcher_.drain(out);
}

void ExecuteProcessor::tick(common::Producer& out) {
  dispatcher_.expire();
  dispatcher_.drain(out);
}

void ExecuteProcessor::drain(common::Producer& out) {
  dispatcher_.expire();
  dispatcher_.drain(out);
}

namespace {

// The stage's processor: the Dispatcher, restored from the models topic before any effector
// connects, with its state on the runtime's snapshot producer (a manual Block answers once
// that state is acknowledged); the ControlServer, started once the state is back; plans into
// the Dispatcher through an ExecuteProcessor (whose tick() also expires TTLs).
class ExecuteStage final : public common::StageProcessor {
 public:
  ExecuteStage(const ExecuteConfig& cfg, common::ServiceContext& ctx)
      : cfg_(cfg), dispatcher_(cfg, ctx.topics, ctx.clock, *ctx.registry), proc_(dispatcher_) {}
  void process(const common::Message& m, common::Producer& out) override { proc_.process(m, out); }
  void process_batch(const std::vector<common::Message>& batch, common::Producer& out,
                     const Reject& reject) override {
    proc_.process_batch(batch, out, reject);
  }
  void tick(common::Producer& out) override { proc_.tick(out); }
  void drain(common::Producer& out) override { proc_.drain(out); }
  size_t restore(const std::map<std::string, v1::ModelSnapshot>& snaps) override {
    return dispatcher_.restore(snaps);
  }
  void set_snapshot_producer(common::Producer* p) override {
    dispatcher_.set_state_sink(p, std::chrono::seconds(5));
  }
  void start(common::ServiceContext& ctx) override {
    log_ = ctx.log;
    if (cfg_.restore_timeout_ms > 0) recall(ctx);
    server_ = std::make_unique<ControlServer>(dispatcher_, cfg_, ctx.registry.get());
    server_->start();
  }
  void stop(common::Producer& out) override {
    server_->stop();
    // Events from acks that arrived while the loop was draining.
    dispatcher_.drain(out);
    if (!out.flush(std::chrono::seconds(10)).ok())
      log_->error("final flush of action events incomplete");
    if (!dispatcher_.flush_state()) log_->error("final flush of active-action state incomplete");
  }

 private:
  // What the previous run decided, from the end of the audit trail: a plan it handled but did
  // not commit is read again and must not be dispatched twice.
  void recall(common::ServiceContext& ctx) {
    ctx.starting("reading back recent action events");
    const RecentEvents r = read_recent_events(ctx.kafka, ctx.topics.actions, cfg_.recall_events,
                                              std::chrono::milliseconds(cfg_.restore_timeout_ms));
    dispatcher_.recall(r.events, r.complete_since_unix_nanos);
  }

  ExecuteConfig cfg_;
  Dispatcher dispatcher_;
  ExecuteProcessor proc_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<ControlServer> server_;  // stops first: its callbacks use the dispatcher
};

}  // namespace

const common::Stage kStage{
    .name = "execute",
    .default_port = 9104,
    .inputs = {&common::Topics::plans},
    .outputs = {&common::Topics::actions, &common::Topics::models},
    .snapshots = {.kind = kSnapshotKind, .format = kSnapshotFormat},
    .setup =
        [](common::ServiceContext& ctx) {
          // Read every key first, so bad configuration fails before any connection is made.
          const auto cfg = ExecuteConfig::from_config(ctx.config);
          ctx.config.stop_if_errors();  // --check-config: build nothing on a bad value
          return common::StageSetup{std::make_unique<ExecuteStage>(cfg, ctx), cfg.group,
                                    std::chrono::milliseconds(cfg.restore_timeout_ms)};
        },
};

}  // namespace immunizer::execute
