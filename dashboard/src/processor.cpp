#include "immunizer/dashboard/processor.hpp"

#include <prometheus/counter.h>
#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <mutex>
#include <utility>

#include "immunizer/common/service.hpp"
#include "immunizer/dashboard/api.hpp"
#include "immunizer/dashboard/auth.hpp"
#include "immunizer/dashboard/json.hpp"

namespace immunizer::dashboard {
namespace {
// The message's payload as a T; BadMessage(reason, what) when it is not one.
template <typename T>
T parse(const common::Message& m, const char* reason, const char* what) {
  T out;
  if (!out.ParseFromString(m.payload)) throw common::BadMessage(reason, what);
  return out;
}
}  // namespace

void announce(const IncidentChange& c, SseHub& hub, Notifier* notifier) {
  nlohmann::json j = incident_json(c.incident);
  j["change"] = change_name(c.kind);
  hub.publish("incident", dump(j));
  // Pattern rows whose alarms moved into the incident: updated in place on the page.
  for (const auto& p : c.patterns_updated) {
    nlohmann::json pj = incident_json(p);
    pj["change"] = "updated";
    hub.publish("incident", dump(pj));
  }
  for (const int64_t id : c.patterns_removed)
    hub.publish("incident",
                dump(nlohmann::json{{"id", id}, {"kind", "pattern"}, {"change", "removed"}}));
  if (!notifier) return;
  if (c.kind == IncidentChange::kOpened) notifier->notify("opened", j);
  if (c.kind == IncidentChange::kEscalated) notifier->notify("escalated", j);
  if (c.kind == IncidentChange::kStateChanged &&
      (c.incident.state == "resolved" || c.incident.state == "false_positive"))
    notifier->notify("resolved", j);
}

DashboardProcessor::DashboardProcessor(DashboardState& state, SseHub& hub,
                                       const common::Topics& topics, const common::Clock& clock,
                                       std::chrono::milliseconds stats_interval,
                                       DashboardParts parts)
    : state_(state),
      hub_(hub),
      topics_(topics),
      clock_(clock),
      stats_interval_nanos_(
          std::chrono::duration_cast<std::chrono::nanoseconds>(stats_interval).count()),
      parts_(parts) {}

void DashboardProcessor::process(const common::Message& m, common::Producer&) {
  if (m.topic == topics_.alarms) {
    const auto a = parse<v1::Alarm>(m, "bad_alarm", "not an Alarm protobuf");
    if (auto j = state_.add_alarm(a)) {
      hub_.publish("alarm", dump(*j));
    } else if (parts_.alarm_duplicates) {
      parts_.alarm_duplicates->Increment();  // already shown: a replayed copy
    }
    if (parts_.incidents)
      if (auto c = parts_.incidents->on_alarm(a)) announce(*c, hub_, parts_.notifier);
  } else if (m.topic == topics_.actions) {
    const auto e = parse<v1::ActionEvent>(m, "bad_action_event", "not an ActionEvent protobuf");
    if (auto j = state_.add_action(e)) hub_.publish("action", dump(*j));
    if (parts_.incidents)
      if (auto c = parts_.incidents->on_action(e)) announce(*c, hub_, parts_.notifier);
  } else if (m.topic == topics_.scores) {
    const auto s = parse<v1::Score>(m, "bad_score", "not a Score protobuf");
    state_.add_score(s);
  } else {
    throw common::BadMessage("unexpected_topic", "dashboard does not read " + m.topic);
  }
}

void DashboardProcessor::process_batch(const std::vector<common::Message>& batch,
                                       common::Producer& out, const Reject& reject) {
  if (!parts_.incidents) return Processor::process_batch(batch, out, reject);
  struct Batch {
    IncidentEngine& e;
    explicit Batch(IncidentEngine& x) : e(x) { e.begin_batch(); }
    ~Batch() { e.end_batch(); }
  } b(*parts_.incidents);
  Processor::process_batch(batch, out, reject);
}

void DashboardProcessor::tick(common::Producer&) {
  if (parts_.incidents) parts_.incidents->tick();
  const int64_t now = clock_.now_unix_nanos();
  if (now - last_stats_ < stats_interval_nanos_) return;
  last_stats_ = now;
  // The full stats (an SQLite count, execute's view) only when a browser or a sample wants them.
  if (hub_.clients() == 0 && !(parts_.series && parts_.series->due(now))) return;
  const auto stats = full_stats(state_, hub_, parts_);
  if (parts_.series) parts_.series->maybe_sample(now, stats);
  if (hub_.clients() > 0) hub_.publish("stats", dump(stats));
}

namespace {
// Forwards to the Kafka producer the body creates, so nothing connects before
// the whole configuration is validated; until then feedback fails with a
// retryable 503.
class DeferredProducer final : public common::Producer {
 public:
  void set(std::unique_ptr<common::Producer> p) {
    std::lock_guard l(mu_);
    inner_ = std::move(p);
  }
  void produce(const std::string& topic, std::string_view key, std::string_view payload) override {
    std::lock_guard l(mu_);
    if (inner_) {
      inner_->produce(topic, key, payload);
    } else {
      ++lost_;
    }
  }
  common::FlushResult flush(std::chrono::milliseconds timeout) override {
    std::lock_guard l(mu_);
    if (!inner_) return {false, std::exchange(lost_, 0)};
    return inner_->flush(timeout);
  }

 private:
  std::mutex mu_;  // the API serialises feedback anyway; this only guards set()
  std::unique_ptr<common::Producer> inner_;
  uint64_t lost_ = 0;
};

// The data folder (created owner-only) and the database in it; ":memory:" stays
// in memory.
std::string database_path(const std::string& data_dir) {
  if (data_dir == ":memory:") return data_dir;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec)
    throw std::runtime_error("dashboard.data_dir: cannot create '" + data_dir +
                             "': " + ec.message());
  ::chmod(data_dir.c_str(), 0700);
  return (std::filesystem::path(data_dir) / "dashboard.db").string();
}

IncidentConfig incident_config(const DashboardConfig& c) {
  IncidentConfig i;
  i.key = c.incident_key;
  i.window_ms = c.incident_window_ms;
  i.ipv4_prefix = static_cast<int>(c.incident_ipv4_prefix);
  i.ipv6_prefix = static_cast<int>(c.incident_ipv6_prefix);
  // "never": an alarm's severity alone opens no incident.
  i.min_severity = c.incident_min_severity == "never" ? 5 : severity_rank(c.incident_min_severity);
  i.min_alarms = static_cast<int>(c.incident_min_alarms);
  i.retention.max_age_ms = c.retention_days * 24 * 3600 * 1000;
  i.retention.max_bytes = c.retention_max_mb * 1024 * 1024;
  return i;
}

NotifierConfig notifier_config(const DashboardConfig& c) {
  NotifierConfig n;
  n.webhook_urls = c.notify_webhook_urls;
  n.webhook_secret = c.notify_webhook_secret;
  n.jsonl_path = c.notify_jsonl_path;
  n.events = c.notify_events;
  n.queue = c.notify_queue;
  n.max_attempts = c.notify_max_attempts;
  n.backoff_ms = c.notify_backoff_ms;
  n.max_backoff_ms = c.notify_max_backoff_ms;
  n.timeout_ms = c.notify_timeout_ms;
  if (c.data_dir != ":memory:")
    n.deadletter_path = (std::filesystem::path(c.data_dir) / "notify-deadletters.jsonl").string();
  return n;
}

// The stage's processor: everything the running dashboard owns (state, SSE hub, incident
// history, notifier, execute's active list, the API on the service's HTTP server) around a
// DashboardProcessor. Built by the setup, so the routes are installed before the HTTP server
// starts; nothing connects before start().
class DashboardStage final : public common::StageProcessor {
 public:
  DashboardStage(const DashboardConfig& c, common::ServiceContext& ctx)
      : cfg_(c),
        state_(cfg_, ctx.clock),
        hub_(static_cast<size_t>(cfg_.sse_max_clients), static_cast<size_t>(cfg_.sse_queue),
             *ctx.registry),
        ops_(make_grpc_operations_client(cfg_.execute_address,
                                         std::chrono::milliseconds(cfg_.execute_timeout_ms),
                                         cfg_.execute_tls)),
        incidents_(incident_config(cfg_),
                   std::make_unique<IncidentStore>(database_path(cfg_.data_dir)), ctx.clock,
                   *ctx.registry),
        notifier_(notifier_config(cfg_), *ctx.registry, ctx.clock),
        execute_(*ops_, std::chrono::milliseconds(cfg_.execute_poll_ms), ctx.clock),
        series_(cfg_.timeseries_interval_ms * 1'000'000,
                static_cast<size_t>(cfg_.timeseries_points)),
        pipeline_(cfg_.pipeline_metrics_urls, std::chrono::seconds(5)),
        duplicates_(common::register_counter(
            *ctx.registry, "immunizer_duplicates_dropped_total",
            "Messages read again (replays after a crash upstream) and dropped, by what they were",
            {{"what", "alarm"}})),
        api_(cfg_, state_, hub_, feedback_out_, ctx.topics, *ops_, ctx.clock, *ctx.registry,
             parts()),
        proc_(state_, hub_, ctx.topics, ctx.clock,
              std::chrono::milliseconds(cfg_.stats_interval_ms), parts()) {
    api_.install(*ctx.http);
  }
  // Releases the browsers before the HTTP server joins their threads, also when the loop threw.
  ~DashboardStage() override { hub_.close(); }

  void process(const common::Message& m, common::Producer& out) override { proc_.process(m, out); }
  void process_batch(const std::vector<common::Message>& batch, common::Producer& out,
                     const Reject& reject) override {
    proc_.process_batch(batch, out, reject);
  }
  void tick(common::Producer& out) override { proc_.tick(out); }

  void start(common::ServiceContext& ctx) override {
    ctx.log->info(
        "consumer group '{}' (never commits: replays retained history on start); execute at {}",
        cfg_.group, cfg_.execute_address);
    if (cfg_.auth == "none") {
      ctx.log->warn(
          "dashboard.auth=none: NO AUTHENTICATION - anyone who reaches http port {} can block, "
          "unblock "
          "and give feedback",
          ctx.http->port());
    } else {
      ctx.log->info("authentication on: {} user(s) from {}", api_.user_count(),
                    api_.user_sources());
    }
    ctx.log->info(
        "incident history in {} (incidents per {}, window {} ms); {} "
        "notification destination(s)",
        database_path(cfg_.data_dir), cfg_.incident_key, cfg_.incident_window_ms,
        notifier_.destinations());
    execute_.start();
    pipeline_.start();
    feedback_out_.set(
        common::make_kafka_producer(ctx.kafka, "dashboard-feedback", ctx.kafka_metrics.get()));
  }
  void stop(common::Producer&) override {
    feedback_out_.flush(std::chrono::seconds(5));
    execute_.stop();
    pipeline_.stop();
    notifier_.stop(std::chrono::seconds(3));
    hub_.close();
  }

 private:
  DashboardParts parts() {
    return {&incidents_, &notifier_, &execute_, &series_, &pipeline_, &duplicates_};
  }
  DashboardConfig cfg_;
  DashboardState state_;
  SseHub hub_;
  DeferredProducer feedback_out_;
  std::unique_ptr<OperationsClient> ops_;
  IncidentEngine incidents_;
  Notifier notifier_;
  ExecuteView execute_;
  TimeSeries series_;
  PipelineLoss pipeline_;
  prometheus::Counter& duplicates_;
  DashboardApi api_;
  DashboardProcessor proc_;
};

// `immunizer-dashboard hash-password`: reads a password on stdin, prints the dashboard.users
// hash.
int hash_password_command(int, char**) {
  std::string password;
  if (!std::getline(std::cin, password) || password.empty()) {
    std::cerr << "usage: echo -n PASSWORD | immunizer-dashboard hash-password\n"
                 "  prints pbkdf2-sha256$...; use it as dashboard.users entry name:role:<hash>\n";
    return 2;
  }
  std::cout << hash_password(password) << "\n";
  return 0;
}

}  // namespace

const common::Stage kStage{
    .name = "dashboard",
    .default_port = 8080,
    .inputs = {&common::Topics::alarms, &common::Topics::actions, &common::Topics::scores},
    .outputs = {&common::Topics::feedback},
    .commits = false,
    .commands = {{"hash-password", hash_password_command}},
    .setup =
        [](common::ServiceContext& ctx) {
          // Read every key first, so bad configuration fails before any connection is made.
          const auto cfg = DashboardConfig::from_config(ctx.config);
          ctx.config.stop_if_errors();  // --check-config: build nothing on a bad value
          return common::StageSetup{std::make_unique<DashboardStage>(cfg, ctx), cfg.group};
        },
};

}  // namespace immunizer::dashboard
