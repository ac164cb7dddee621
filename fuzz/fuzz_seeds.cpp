// Writes the fuzz targets' seed corpora from real data: the first requests of the CSIC 2010
// files are run through the pipeline's own processors in-process (shop records -> monitor ->
// analyze -> plan -> execute -> an effector link), and each stage's real messages become
// the next target's seeds. Small handwritten seeds cover the JSON bodies and configuration.
// Usage: fuzz_seeds <datasets folder (holding csic2010/)> <output folder> [requests per file]
// Nothing is written into the source tree; the output is rebuilt by each run.
#include <prometheus/registry.h>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "fuzz_execute.hpp"
#include "fuzz_util.hpp"
#include "immunizer/analyze/processor.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/execute/processor.hpp"
#include "immunizer/monitor/csic.hpp"
#include "immunizer/monitor/processor.hpp"
#include "immunizer/plan/processor.hpp"
#include "immunizer/testing/fake_kafka.hpp"
#include "immunizer/testing/manual_clock.hpp"

using namespace immunizer;
namespace fs = std::filesystem;

namespace {

fs::path out_root;
size_t written = 0;

void write_seed(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = out_root / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
  ++written;
}

// Frames `msgs` (tag, payload) into seeds of at most `per_seed` messages.
void write_framed(const std::string& target,
                  const std::vector<std::pair<uint8_t, std::string>>& msgs, size_t per_seed,
                  size_t max_seeds) {
  for (size_t i = 0, n = 0; i < msgs.size() && n < max_seeds; i += per_seed, ++n) {
    std::string s;
    for (size_t k = i; k < std::min(msgs.size(), i + per_seed); ++k)
      fuzz::append_frame(s, msgs[k].first, msgs[k].second);
    write_seed(target, "real_" + std::to_string(n), s);
  }
}

std::string request_text(const monitor::csic::Request& r) {
  std::string t = r.method + " " + r.url + (r.version.empty() ? "" : " " + r.version) + "\n";
  for (const auto& [k, v] : r.headers) t += k + ": " + v + "\n";
  t += "\n";
  if (!r.body.empty()) t += r.body + "\n";
  return t + "\n";
}

class CollectLink final : public execute::EffectorLink {
 public:
  bool send(const v1::Directive& d) override {
    directives.push_back(d);
    return true;
  }
  bool end_replay(uint32_t) override { return true; }
  void close(const std::string&) override {}
  std::vector<v1::Directive> directives;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: fuzz_seeds <datasets folder> <output folder> [requests per file]\n";
    return 2;
  }
  const fs::path csic_dir = fs::path(argv[1]) / "csic2010";
  out_root = argv[2];
  const size_t per_file = argc > 3 ? std::stoul(argv[3]) : 300;
  fs::remove_all(out_root);
  fs::create_directories(out_root);

  std::vector<monitor::csic::Request> train, attack;
  try {
    auto t = monitor::csic::read_file((csic_dir / "normalTrafficTraining.txt.gz").string());
    auto a = monitor::csic::read_file((csic_dir / "anomalousTrafficTest.txt.gz").string());
    train.assign(t.begin(), t.begin() + static_cast<long>(std::min(per_file, t.size())));
    attack.assign(a.begin(), a.begin() + static_cast<long>(std::min(per_file, a.size())));
  } catch (const std::exception& e) {
    std::cerr << "fuzz_seeds: " << e.what() << "\n";
    return 1;
  }

  // CSIC parser: raw request text, a few requests per seed.
  for (size_t i = 0; i < 40 && i < attack.size(); ++i) {
    std::string s = request_text(train[i % train.size()]) + request_text(attack[i]);
    write_seed("csic", "real_" + std::to_string(i), s);
  }

  // Shop records -> calls topic (batches as the sensor sends them, and single records).
  const common::Topics topics = common::Topics::with_prefix("f.");
  common::ManualClock clock;
  prometheus::Registry registry;
  std::vector<std::pair<uint8_t, std::string>> calls_train, calls_attack;
  uint64_t seq = 0;
  auto records_of = [&](const monitor::csic::Request& r, const char* who,
                        std::vector<std::pair<uint8_t, std::string>>& to) {
    monitor::csic::ShopRecordOptions o;
    o.seq = seq;
    seq += 2;
    o.timestamp_unix_nanos = clock.now_unix_nanos();
    o.ip = std::string(who) == "attack" ? "198.51.100.7" : "10.0.0." + std::to_string(seq % 200);
    v1::CallRecordBatch b;
    b.set_batch_format(1);
    for (auto& rec : monitor::csic::to_call_records(r, o)) {
      to.push_back({0, rec.SerializeAsString()});
      *b.add_records() = std::move(rec);
    }
    to.push_back({0, b.SerializeAsString()});
  };
  for (const auto& r : train) records_of(r, "train", calls_train);
  for (const auto& r : attack) records_of(r, "attack", calls_attack);
  {
    std::vector<std::pair<uint8_t, std::string>> mix;
    for (size_t i = 0; i < 60 && i < calls_train.size(); ++i) mix.push_back(calls_train[i]);
    for (size_t i = 0; i < 60 && i < calls_attack.size(); ++i) mix.push_back(calls_attack[i]);
    write_framed("call_records", mix, 6, 20);
  }

  // Monitor: records -> feature vectors.
  monitor::MonitorConfig mcfg;
  mcfg.features.schema_freeze_records = 50;
  monitor::MonitorProcessor monitor_proc(mcfg, topics, clock, registry);
  common::FakeProducer vectors;
  for (auto* set : {&calls_train, &calls_attack})
    for (const auto& [tag, payload] : *set) {
      if (payload.size() >= 2 && payload[0] == '\x08' && payload[1] == '\x01')
        continue;  // the batch duplicates
      fuzz::process_one(monitor_proc, topics.calls, payload, vectors);
    }
  vectors.flush(std::chrono::milliseconds(0));
  const auto fvs = vectors.on(topics.features);
  {
    // Per seed: 24 vectors of one model key (past analyze's grace in the fuzz target) then
    // the attack-side vectors of the same key.
    std::map<std::string, std::vector<std::string>> by_key;
    for (const auto& s : fvs) by_key[s.key].push_back(s.payload);
    size_t n = 0;
    for (const auto& [key, list] : by_key) {
      for (size_t start = 0; start + 24 < list.size() && n < 12; start += list.size() / 3, ++n) {
        std::string seed;
        for (size_t k = 0; k < 24; ++k) fuzz::append_frame(seed, 0, list[start + k]);
        fuzz::append_frame(seed, 0, list.back());
        write_seed("feature_vector", "real_" + std::to_string(n), seed);
      }
    }
  }

  // Analyze: vectors -> scores and alarms.
  analyze::AnalyzeConfig acfg;
  acfg.detector.grace_records = 100;
  acfg.threads = 1;
  analyze::AnalyzeProcessor analyze_proc(acfg, topics, clock, registry);
  common::FakeProducer scored;
  for (const auto& s : fvs) {
    common::Message m;
    m.topic = topics.features;
    m.payload = s.payload;
    analyze_proc.process_batch(
        {m}, scored, [](const common::Message&, const std::string&, const std::string&) {});
    clock.advance(std::chrono::milliseconds(5));
  }
  scored.flush(std::chrono::milliseconds(0));
  const auto alarms = scored.on(topics.alarms);
  const auto scores = scored.on(topics.scores);
  std::vector<std::pair<uint8_t, std::string>> alarm_msgs;
  for (const auto& a : alarms) alarm_msgs.push_back({0, a.payload});
  if (!alarms.empty()) {
    v1::Alarm a;
    a.ParseFromString(alarms.front().payload);
    v1::Feedback f;
    f.set_alarm_id(a.id());
    f.set_model_key(a.model_key());
    f.set_verdict(v1::FEEDBACK_FALSE_POSITIVE);
    *f.mutable_values() = a.values();
    *f.mutable_principal() = a.principal();
    alarm_msgs.push_back({1, f.SerializeAsString()});
    std::string seed;
    for (size_t k = 0; k < 24 && k < fvs.size(); ++k) fuzz::append_frame(seed, 0, fvs[k].payload);
    fuzz::append_frame(seed, 1, f.SerializeAsString());
    write_seed("feature_vector", "real_feedback", seed);
  }
  write_framed("alarm", alarm_msgs, 12, 20);

  // Plan: alarms -> plans. CSIC's attacks come one per session with mostly low severity, so
  // the default policy only logs them; an operator's "act on every alarm" policy blocks.
  plan::PolicyConfig pcfg;
  pcfg.min_severity_to_act = 1;
  const crypto::KeyPair plan_pair = crypto::generate_ed25519();
  plan::PlanProcessor plan_proc(pcfg, topics, clock, registry,
                                std::make_shared<const crypto::SigningKey>(
                                    crypto::SigningKey::from_pem(plan_pair.private_pem)));
  common::FakeProducer planned;
  for (const auto& a : alarms) fuzz::process_one(plan_proc, topics.alarms, a.payload, planned);
  planned.flush(std::chrono::milliseconds(0));
  std::vector<std::pair<uint8_t, std::string>> plan_msgs;
  // Tag 1: fuzz_plan re-signs them with the key its execute trusts.
  for (const auto& p : planned.on(topics.plans)) plan_msgs.push_back({1, p.payload});
  write_framed("plan", plan_msgs, 4, 20);

  // Execute: plans -> directives to an effector, action events.
  const execute::ExecuteConfig ecfg = fuzz::execute_config(plan_pair.public_pem);
  execute::Dispatcher dispatcher(ecfg, topics, clock, registry);
  auto link = std::make_shared<CollectLink>();
  v1::EffectorHello hello;
  hello.set_app("fuzz");
  hello.set_instance("fuzz-1");
  dispatcher.connect(hello, link);
  execute::ExecuteProcessor exec_proc(dispatcher);
  common::FakeProducer executed;
  for (const auto& [tag, payload] : plan_msgs)
    fuzz::process_one(exec_proc, topics.plans, payload, executed);
  if (!plan_msgs.empty())
    dispatcher.unblock([&] {
      v1::Plan p;
      p.ParseFromString(plan_msgs.front().second);
      return p.actions_size() > 0 ? p.actions(0).id() : std::string();
    }());
  exec_proc.drain(executed);
  executed.flush(std::chrono::milliseconds(0));
  std::vector<std::pair<uint8_t, std::string>> directive_msgs;
  for (const auto& d : link->directives) {
    v1::ExecuteMessage em;
    *em.mutable_directive() = d;
    directive_msgs.push_back({2, em.SerializeAsString()});  // bit 1: made current when replayed
  }
  write_framed("directive", directive_msgs, 4, 20);
  // The same directives as execute's replay sends them: batches signed once (tag 3: made
  // current, each directive and the batch re-signed; tag 0: as signed, the batch's signature
  // checked as it is).
  std::vector<std::pair<uint8_t, std::string>> batch_msgs;
  for (size_t i = 0; i < link->directives.size() && batch_msgs.size() < 20; i += 8) {
    v1::ExecuteMessage em;
    auto* b = em.mutable_batch();
    for (size_t k = i; k < std::min(link->directives.size(), i + 8); ++k)
      *b->add_directives() = link->directives[k];
    effector::sign(*b, *ecfg.signing_key);
    batch_msgs.push_back({3, em.SerializeAsString()});
    batch_msgs.push_back({0, em.SerializeAsString()});
  }
  write_framed("directive_batch", batch_msgs, 2, 20);

  // Dashboard: alarms, action events, scores.
  std::vector<std::pair<uint8_t, std::string>> dash;
  for (size_t i = 0; i < alarms.size() && i < 40; ++i) dash.push_back({0, alarms[i].payload});
  for (const auto& e : executed.on(topics.actions)) dash.push_back({1, e.payload});
  for (size_t i = 0; i < scores.size() && i < 40; ++i) dash.push_back({2, scores[i].payload});
  write_framed("dashboard_records", dash, 8, 20);

  // Dashboard API: request bodies (tag 0 feedback, 1 block, 2 unblock, 3 limit, 4 alarm id, 5
  // actions limit).
  const std::vector<std::pair<uint8_t, std::string>> api = {
      {0,
       R"({"alarm_id":"alarm-1","verdict":"false_positive","comment":"known scanner","analyst":"ann"})"},
      {0, R"({"alarm_id":"alarm-2","verdict":"confirmed"})"},
      {1, R"({"field":"ip","value":"203.0.113.9","ttl_ms":60000,"reason":"manual"})"},
      {1, R"({"alarm_id":"alarm-1","field":"session"})"},
      {2, R"({"action_id":"manual-1"})"},
      {3, "10"},
      {4, "alarm-1"},
      {5, "5"}};
  for (size_t i = 0; i < api.size(); ++i) {
    std::string s;
    fuzz::append_frame(s, api[i].first, api[i].second);
    write_seed("dashboard_api", "hand_" + std::to_string(i), s);
  }

  // Configuration: YAML (tag 0), --set (1), environment (2).
  const std::vector<std::vector<std::pair<uint8_t, std::string>>> configs = {
      {{0,
        "kafka:\n  bootstrap: 127.0.0.1:9092\n  topic_prefix: immunizer.\nsecurity:\n  "
        "signing_key: "
        "0123456789abcdef0123456789abcdef\nmonitor:\n  max_models: 100\n  principal_features: "
        "false\n"
        "analyze:\n  risk: 0.001\n  grace_records: 500\nplan:\n  repeat_alarms_to_act: 3\n"
        "dashboard:\n  max_alarms: 50\nlog:\n  level: debug\n"},
       {1, "http.port=9200"},
       {2, "ANALYZE_THREADS=4"}},
      {{1, "security.signing_key=0123456789abcdef0123456789abcdef"},
       {1, "monitor.enum_max_values=16"},
       {2, "EXECUTE_DEFAULT_TTL_MS=60000"},
       {2, "SENSOR_CPU_BUDGET=0.05"},
       {2, "EFFECTOR_FAIL_CLOSED=true"}},
      {{0, "security:\n  signing_key: ${IMMUNIZER_TEST_KEY}\nanalyze:\n  detector: iforest\n"},
       {2, "TEST_KEY=abcdefabcdefabcdefabcdefabcdefab"}}};
  for (size_t i = 0; i < configs.size(); ++i) {
    std::string s;
    for (const auto& [tag, b] : configs[i]) fuzz::append_frame(s, tag, b);
    write_seed("config", "hand_" + std::to_string(i), s);
  }

  std::cout << "fuzz_seeds: " << written << " seeds in " << out_root.string() << " from "
            << train.size() << " + " << attack.size() << " CSIC requests (" << fvs.size()
            << " vectors, " << alarms.size() << " alarms, " << plan_msgs.size() << " plans, "
            << link->directives.size() << " directives)\n";
  return 0;
}
