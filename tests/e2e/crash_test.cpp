// kill -9 of each service in turn (monitor, analyze, plan, execute, dashboard) mid-stream under
// the replayer (generated traffic: training, then rounds of normal traffic mixed with attacks
// and an attacker session), each restarted at once from the same command line `up` uses.
// Checked from the topics themselves and from what users see:
//  - nothing lost: every call record the shop delivered (but the ones its effector denied,
//    which are deliberately not scored) has a score, and no service counted a lost record;
//  - nothing doubled: the dashboard's alarms and its incident store hold each alarm id once
//    (however often the alarms topic carries it after replays), execute's active list holds
//    each action once and the audit trail dispatches each action once.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "immunizer/common/grpc_tls.hpp"
#include "immunizer/common/metrics_text.hpp"
#include "immunizer/replay/replayer.hpp"
#include "immunizer/tools/commands.hpp"
#include "immunizer/tools/pki.hpp"
#include "immunizer/tools/supervisor.hpp"
#include "immunizer/v1/call_records.hpp"
#include "immunizer/v1/control.grpc.pb.h"
#include "immunizer/v1/records.pb.h"
#include "ports.hpp"
#include "topic_reader.hpp"

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace tools = immunizer::tools;
namespace v1 = immunizer::v1;

namespace {

struct Lines {
  std::mutex mu;
  std::vector<std::string> lines;
  bool has(const std::string& s) {
    std::lock_guard<std::mutex> g(mu);
    for (const auto& l : lines)
      if (l.find(s) != std::string::npos) return true;
    return false;
  }
};

bool wait_ready(const std::string& host, int port, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    httplib::Client c(host, port);
    c.set_connection_timeout(0, 300'000);
    if (auto r = c.Get("/readyz"); r && r->status == 200) return true;
    std::this_thread::sleep_for(200ms);
  }
  return false;
}

std::string id_of(const v1::RecordId& r) {
  return r.app() + "/" + r.instance() + "/" + std::to_string(r.seq());
}

}  // namespace

TEST(Crash, KillNineOfEachServiceLosesNothingAndDoublesNothing) {
  const std::string bin = IMMUNIZER_BIN_DIR;
  const int base = immunizer::e2e::free_base(7);
  ASSERT_GT(base, 0);
  const std::string tmp = fs::temp_directory_path().string();
  const std::string state = tmp + "/immunizer_crash_" + std::to_string(getpid());
  const std::string summary = state + "/replay.json";
  fs::remove_all(state);
  fs::create_directories(state);
  tools::pki::init(tools::pki::Layout{state});

  tools::Supervisor sup(true);
  const std::string bootstrap = sup.spawn_until(
      {.name = "broker", .path = bin + "/immunizer", .args = {"broker"}}, "^bootstrap=(.+)$", 15s);

  tools::UpOptions o;
  o.demo = true;
  o.datasets = state;  // no csic2010 there: generated traffic, the same on every machine
  o.port_base = base;
  o.dashboard_port = base + 6;
  o.shop_port = base + 7;
  o.state_dir = state;
  // Models leave their grace period early, so alarms and plans flow while services die; the
  // dashboard keeps every alarm in memory, so its list can be compared with the topic.
  o.env = {{"IMMUNIZER_ANALYZE_GRACE_RECORDS", "300"},
           {"IMMUNIZER_DASHBOARD_MAX_ALARMS", "100000"},
           {"IMMUNIZER_DASHBOARD_DATA_DIR", state + "/dashboard"}};
  o.replay_args = {"--train-count", "2500", "--mix-count",    "1000", "--rounds", "4",
                   "--rate",        "200",  "--attack-count", "60",   "--json",   summary,
                   "--time-limit",  "200"};
  const auto children = tools::up_children(o, bootstrap, bin);
  for (const auto& s : children.services) sup.spawn(s);
  for (size_t i = 0; i < children.services.size(); ++i)
    ASSERT_TRUE(wait_ready(children.host, children.service_ports[i], 90s))
        << children.services[i].name << " not ready";
  sup.spawn(children.shop);
  auto replay_out = std::make_shared<Lines>();
  auto replay = children.replay;
  replay.on_line = [replay_out](const std::string& l) {
    std::lock_guard<std::mutex> g(replay_out->mu);
    replay_out->lines.push_back(l);
  };
  {
    httplib::Client c(children.host, o.shop_port);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline && !c.Get("/healthz"))
      std::this_thread::sleep_for(100ms);
  }
  const auto t0 = std::chrono::steady_clock::now();
  sup.spawn(replay);

  // kill -9 and restart at once, from the same command line and environment.
  std::map<std::string, std::string> killed;
  auto crash = [&](size_t i) {
    const auto& spec = children.services[i];
    const auto e = sup.kill_child(spec.name, SIGKILL);
    ASSERT_TRUE(e) << spec.name << " was not running";
    killed[spec.name] = e->how;
    std::cout << "[crash test] " << spec.name << " " << e->how << " after "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
              << " s; restarting" << std::endl;
    sup.spawn(spec);
    ASSERT_TRUE(wait_ready(children.host, children.service_ports[i], 90s))
        << spec.name << " not ready again after its restart";
  };
  // monitor while the training traffic streams in, the others while alarms and plans flow.
  std::this_thread::sleep_for(4s);
  ASSERT_TRUE(sup.alive("replay")) << "the replayer ended before the first crash";
  crash(0);
  while (!replay_out->has("after training") && sup.alive("replay") &&
         std::chrono::steady_clock::now() - t0 < 240s)
    std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(replay_out->has("after training")) << "the training phase did not end";
  for (size_t i = 1; i < children.services.size(); ++i) {
    std::this_thread::sleep_for(3s);
    crash(i);
  }
  while (sup.alive("replay") && std::chrono::steady_clock::now() - t0 < 300s)
    std::this_thread::sleep_for(500ms);
  ASSERT_FALSE(sup.alive("replay")) << "the replayer did not finish";
  ASSERT_EQ(killed.size(), 5u);

  // Let the pipeline catch up with the last requests (bounded), then read what it wrote.
  const std::string mon = "http://" + children.host + ":" + std::to_string(base + 1) + "/metrics";
  const std::string ana = "http://" + children.host + ":" + std::to_string(base + 2) + "/metrics";
  std::atomic<bool> never{false};
  EXPECT_TRUE(immunizer::replay::wait_for_pipeline({mon, ana}, 120s, never, nullptr))
      << "monitor and analyze did not catch up";
  std::this_thread::sleep_for(5s);  // plan, execute and the dashboard behind them

  const auto topics = immunizer::common::Topics::with_prefix("immunizer.");
  const auto msgs = immunizer::e2e::read_topics(
      bootstrap,
      {topics.calls, topics.scores, topics.alarms, topics.plans, topics.actions, topics.deadletter},
      3s, 120s);
  std::set<std::string> delivered, denied, scored;
  std::map<std::string, int> alarm_copies, plan_copies, dispatched, score_copies;
  size_t deadletters = 0;
  for (const auto& m : msgs) {
    if (m.topic == topics.calls) {
      std::vector<v1::CallRecord> recs;
      ASSERT_TRUE(v1::parse_call_records(m.payload, &recs));
      for (const auto& r : recs)
        (v1::find_label(r, "immunizer.denied") ? denied : delivered).insert(id_of(r.id()));
    } else if (m.topic == topics.scores) {
      v1::Score s;
      ASSERT_TRUE(s.ParseFromString(m.payload));
      scored.insert(id_of(s.record_id()));
      ++score_copies[id_of(s.record_id()) + "|" + s.model_key()];
    } else if (m.topic == topics.alarms) {
      v1::Alarm a;
      ASSERT_TRUE(a.ParseFromString(m.payload));
      ++alarm_copies[a.id()];
    } else if (m.topic == topics.plans) {
      v1::Plan p;
      ASSERT_TRUE(p.ParseFromString(m.payload));
      ++plan_copies[p.id()];
    } else if (m.topic == topics.actions) {
      v1::ActionEvent e;
      ASSERT_TRUE(e.ParseFromString(m.payload));
      if (e.type() == v1::ACTION_EVENT_DISPATCHED) ++dispatched[e.action_id()];
    } else if (m.topic == topics.deadletter) {
      ++deadletters;
    }
  }
  size_t unscored = 0;
  for (const auto& id : delivered) unscored += !scored.count(id);
  auto replays = [](const std::map<std::string, int>& copies) {
    size_t n = 0;
    for (const auto& [id, c] : copies) n += static_cast<size_t>(c - 1);
    return n;
  };
  std::cout << "[crash test] records delivered " << delivered.size() << " (+" << denied.size()
            << " denied by the effector), scored " << scored.size() << ", not scored " << unscored
            << " (" << replays(score_copies) << " replayed scores); dead letters " << deadletters
            << "; alarms " << alarm_copies.size() << " (+" << replays(alarm_copies)
            << " replayed copies on the topic), plans " << plan_copies.size() << " (+"
            << replays(plan_copies) << " replayed copies)" << std::endl;
  EXPECT_GT(delivered.size(), 5000u) << "too little traffic to mean anything";
  EXPECT_EQ(unscored, 0u) << "records lost: delivered but never scored";
  EXPECT_EQ(deadletters, 0u);
  ASSERT_GT(alarm_copies.size(), 0u) << "no alarms: the duplicate checks below would be vacuous";
  ASSERT_GT(plan_copies.size(), 0u) << "no plans: the duplicate checks below would be vacuous";

  // No service counted a lost record (each restarted process counts from its start, and checks
  // its first offsets against the group's committed ones).
  double lost = 0;
  for (int port : children.service_ports) {
    const auto page = immunizer::replay::fetch_metrics("http://" + children.host + ":" +
                                                       std::to_string(port) + "/metrics");
    ASSERT_TRUE(page) << "no /metrics on port " << port;
    lost += immunizer::common::metric_sum(*page, "immunizer_records_lost_total");
    if (port == children.service_ports[3])  // execute, restarted: what it recalled and dropped
      std::cout << "[crash test] execute dropped "
                << immunizer::common::metric_sum(*page, "immunizer_duplicates_dropped_total",
                                                 "what=\"action\"")
                << " replayed action(s) and "
                << immunizer::common::metric_sum(*page, "immunizer_duplicates_dropped_total",
                                                 "what=\"plan\"")
                << " replayed plan(s) after its restart" << std::endl;
    // The dashboard (restarted last, it re-read the whole alarms topic) dropped each replayed
    // copy and counted it.
    if (port == o.dashboard_port) {
      EXPECT_EQ(immunizer::common::metric_sum(*page, "immunizer_duplicates_dropped_total",
                                              "what=\"alarm\""),
                static_cast<double>(replays(alarm_copies)));
    }
  }
  EXPECT_EQ(lost, 0) << "immunizer_records_lost_total";

  // The dashboard: each alarm once in its list and once in its incident store.
  httplib::Client dash(children.host, o.dashboard_port);
  dash.set_read_timeout(20);
  {
    std::ifstream in(state + "/dashboard.credentials");
    std::string line;
    std::getline(in, line);
    const auto colon = line.find(':');
    ASSERT_NE(colon, std::string::npos);
    dash.set_basic_auth(line.substr(0, colon), line.substr(colon + 1));
  }
  auto r = dash.Get("/api/alarms?limit=100000");
  ASSERT_TRUE(r && r->status == 200);
  const json alarms = json::parse(r->body);
  const json& list = alarms.is_array() ? alarms : alarms["alarms"];
  std::map<std::string, int> shown;
  for (const auto& a : list) ++shown[a["id"].get<std::string>()];
  EXPECT_EQ(replays(shown), 0u) << "the dashboard lists an alarm twice";
  EXPECT_EQ(shown.size(), alarm_copies.size()) << "the dashboard lost or invented alarms";
  // Incidents and pattern rows (alarms without enough evidence for an incident of their own):
  // each alarm in exactly one of them.
  r = dash.Get("/api/incidents/export?format=json&kind=all");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  int64_t in_incidents = 0;
  for (const auto& i : json::parse(r->body)) in_incidents += i["alarms"].get<int64_t>();
  EXPECT_EQ(in_incidents, static_cast<int64_t>(alarm_copies.size()))
      << "the incident store counts alarms twice (or misses some)";

  // execute: each action once in force, each dispatched once.
  {
    const tools::pki::Layout l{state};
    auto stub = v1::Operations::NewStub(grpc::CreateChannel(
        children.execute_grpc, immunizer::common::client_credentials(
                                   l.tls(immunizer::common::Role::kOperator, "cli"), "e2e")));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::ListActiveResponse active;
    ASSERT_TRUE(stub->ListActive(&ctx, {}, &active).ok());
    std::map<std::string, int> ids, targets;
    for (const auto& a : active.actions()) {
      ++ids[a.action().id()];
      ++targets[std::to_string(a.action().kind()) + "|" +
                std::to_string(a.action().target_field()) + "|" + a.action().target_value() + "|" +
                a.action().call()];
    }
    std::cout << "[crash test] execute: " << active.actions_size() << " active actions, "
              << dispatched.size() << " dispatched" << std::endl;
    EXPECT_EQ(replays(ids), 0u) << "execute holds an action twice";
    EXPECT_EQ(replays(targets), 0u) << "execute holds two actions for the same target";
  }
  EXPECT_EQ(replays(dispatched), 0u) << "an action was dispatched twice";

  sup.stop_all(15s);
  fs::remove_all(state);
}
