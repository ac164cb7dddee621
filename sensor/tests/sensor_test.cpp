// Sensor behaviour against librdkafka's in-process mock cluster (127.0.0.1, random ports):
// records arrive intact, the caller never blocks whatever the broker does, every record is
// either sent or dropped under exactly one reason, and recording resumes after an outage.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "immunizer/sensor/sensor.hpp"
#include "immunizer/v1/call_records.hpp"
#include "immunizer/v1/records.pb.h"
#include "sensor_impl.hpp"

namespace immunizer::sensor {
struct SensorTestAccess {
  static rd_kafka_t* producer(Sensor& s) { return s.impl_->rk_; }
};
}  // namespace immunizer::sensor

namespace {

using namespace std::chrono_literals;
using immunizer::sensor::CallScope;
using immunizer::sensor::DropReason;
using immunizer::sensor::Principal;
using immunizer::sensor::Sensor;
using immunizer::sensor::SensorConfig;
using immunizer::sensor::SensorStats;

// A generous bound for one call: far below what blocking on the broker would cost (the
// slow-broker test answers after 2 s), far above scheduling noise on a loaded machine.
#if defined(__SANITIZE_THREAD__)
constexpr auto kNeverBlocks = 1500ms;
#else
constexpr auto kNeverBlocks = 250ms;
#endif

// Polls `pred` until true or the deadline passes (no sleeps as synchronisation).
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds deadline = 30s) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::yield();
  }
  return pred();
}

class MockKafka {
 public:
  explicit MockKafka(const std::string& topic) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    mc_ = rd_kafka_mock_cluster_new(rk_, 1);
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(mc_);
    rd_kafka_mock_topic_create(mc_, topic.c_str(), 1, 1);
  }
  ~MockKafka() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  const std::string& bootstrap() const { return bootstrap_; }
  void broker_down() { rd_kafka_mock_broker_set_down(mc_, 1); }
  void broker_up() { rd_kafka_mock_broker_set_up(mc_, 1); }
  void broker_rtt(int ms) { rd_kafka_mock_broker_set_rtt(mc_, 1, ms); }

  // Reads `n` messages from partition 0 of `topic` (from the beginning).
  std::vector<std::pair<std::string, std::string>> consume(const std::string& topic, size_t n) {
    std::vector<std::pair<std::string, std::string>> out;
    read(topic, [&](std::string key, std::string payload) {
      out.emplace_back(std::move(key), std::move(payload));
      return out.size() >= n;
    });
    return out;
  }

  // Reads messages until they hold `n` call records (batched or not).
  struct Records {
    size_t messages = 0;
    size_t batches = 0;  // messages that were CallRecordBatches
    std::vector<std::pair<std::string, immunizer::v1::CallRecord>>
        records;  // with their message key
    bool parsed = true;
  };
  Records consume_records(const std::string& topic, size_t n) {
    Records out;
    read(topic, [&](std::string key, std::string payload) {
      ++out.messages;
      out.batches += immunizer::v1::is_call_record_batch(payload);
      std::vector<immunizer::v1::CallRecord> recs;
      if (!immunizer::v1::parse_call_records(payload, &recs)) out.parsed = false;
      for (auto& r : recs) out.records.emplace_back(key, std::move(r));
      return out.records.size() >= n;
    });
    return out;
  }

 private:
  // Calls `take(key, payload)` for each message from the beginning until it returns true
  // or 20 s pass.
  void read(const std::string& topic, const std::function<bool(std::string, std::string)>& take) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "test", err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    const auto until = std::chrono::steady_clock::now() + 20s;
    bool done = false;
    while (!done && std::chrono::steady_clock::now() < until) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100);
      if (!m) continue;
      if (!m->err)
        done = take(std::string(static_cast<const char*>(m->key), m->key_len),
                    std::string(static_cast<const char*>(m->payload), m->len));
      rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
  }

  rd_kafka_t* rk_;
  rd_kafka_mock_cluster_t* mc_;
  std::string bootstrap_;
};

SensorConfig config_for(const MockKafka& k) {
  SensorConfig c;
  c.app = "shop";
  c.instance = "i1";
  c.bootstrap = k.bootstrap();
  c.topic_prefix = "t.";
  c.cpu_budget = 0;  // controller off: tests decide the sampling
  c.linger_ms = 1;
  c.kafka_properties["log_level"] = "0";
  return c;
}

void expect_balanced(const SensorStats& s) {
  EXPECT_EQ(s.inflight, 0u);
  EXPECT_EQ(s.sent + s.dropped_total(), s.recorded)
      << "sent " << s.sent << " dropped " << s.dropped_total() << " recorded " << s.recorded;
}

// Records one call and returns how long the caller was held.
std::chrono::nanoseconds record_one(Sensor& s, int i) {
  const auto t0 = std::chrono::steady_clock::now();
  {
    CallScope c(s, "http.request");
    c.principal(Principal{"alice", "s1", "10.0.0.1"}).arg("i", i).arg("path", "/tienda1/index.jsp");
    c.arg("q", std::string(200, 'q')).arg("ok", true).result(200);
  }
  return std::chrono::steady_clock::now() - t0;
}

TEST(Sensor, RecordsArriveIntactWithContextAndKey) {
  MockKafka k("t.calls");
  auto s = Sensor::create(config_for(k));
  {
    CallScope outer(*s, "http.request");
    outer.principal(Principal{"alice", "sess", "1.2.3.4"}).arg("method", "GET").arg("n", 3);
    outer.label("trace", "t1");
    {
      CallScope inner(*s, "db.query");
      inner.arg("sql", "select 1").arg("args", std::vector<double>{1.5, 2.5});
      inner.error("Timeout", "too slow");
    }
    outer.result(200);
  }
  ASSERT_TRUE(s->flush(30s));
  expect_balanced(s->stats());
  EXPECT_EQ(s->stats().sent, 2u);

  auto got = k.consume_records("t.calls", 2);
  ASSERT_TRUE(got.parsed);
  ASSERT_EQ(got.records.size(), 2u);
  EXPECT_EQ(got.messages, 2u);  // two keys: two messages
  std::map<std::string, immunizer::v1::CallRecord> by_key;
  for (auto& [key, rec] : got.records) by_key[key] = rec;
  ASSERT_TRUE(by_key.count("shop|db.query|http.request"));
  ASSERT_TRUE(by_key.count("shop|http.request|"));
  const auto& in = by_key["shop|db.query|http.request"];
  EXPECT_EQ(in.call(), "db.query");
  EXPECT_EQ(in.context(), "http.request");
  EXPECT_EQ(in.error().type(), "Timeout");
  EXPECT_EQ(in.arguments(1).value().list_value().items(1).double_value(), 2.5);
  const auto& out = by_key["shop|http.request|"];
  EXPECT_EQ(out.id().app(), "shop");
  EXPECT_EQ(out.id().instance(), "i1");
  EXPECT_NE(out.id().seq(), in.id().seq());
  EXPECT_EQ(out.principal().user(), "alice");
  EXPECT_EQ(out.principal().ip(), "1.2.3.4");
  ASSERT_EQ(out.arguments_size(), 2);
  EXPECT_EQ(out.arguments(0).name(), "method");
  EXPECT_EQ(out.arguments(0).value().string_value(), "GET");
  EXPECT_EQ(out.arguments(1).value().int_value(), 3);
  EXPECT_EQ(out.result().int_value(), 200);
  ASSERT_NE(immunizer::v1::find_label(out, "trace"), nullptr);
  EXPECT_EQ(*immunizer::v1::find_label(out, "trace"), "t1");
  EXPECT_GT(out.duration_nanos(), 0);
  EXPECT_GE(out.duration_nanos(), in.duration_nanos());
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  EXPECT_LT(std::llabs(now - out.timestamp_unix_nanos()), 60'000'000'000LL);
}

// Issue 11: a POST with a ~1 MB body was dropped whole ("Message size too large"). Size is
// truncation, not loss: the record arrives, each long string cut to its prefix and suffix
// with its original length, arguments past the record cap left out and counted, and
// hostile bytes (an invalid UTF-8 cookie) carried as they were.
TEST(Sensor, OversizedCallsAreCutNotLostAndHostileBytesKept) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.max_string_bytes = 1024;
  cfg.max_record_bytes = 16 << 10;
  auto s = Sensor::create(cfg);
  std::string body(1 << 20, 'b');
  body.replace(0, 5, "HEAD:");
  body.replace(body.size() - 5, 5, ":TAIL");
  const std::string session("\xff\xfe JSESSIONID \xc0\xaf");
  {
    CallScope c(*s, "http.request");
    c.principal("", session, "10.0.0.1").arg("query", "id=1' OR '1'='1").arg("body", body);
    for (int i = 0; i < 40; ++i)
      c.arg("p" + std::to_string(i), std::string(900, 'x'));  // 36 KB more
    c.arg_with("headers", [&](immunizer::sensor::ValueWriter& w) {
      auto m = w.map();
      for (int i = 0; i < 100; ++i) m.field("h" + std::to_string(i), std::string(500, 'h'));
    });
    c.result(200);
  }
  ASSERT_TRUE(s->flush(30s));
  expect_balanced(s->stats());
  EXPECT_EQ(s->stats().sent, 1u);
  auto got = k.consume_records("t.calls", 1);
  ASSERT_TRUE(got.parsed);
  ASSERT_EQ(got.records.size(), 1u);
  const auto& r = got.records[0].second;
  EXPECT_EQ(r.principal().session(), session);
  ASSERT_GE(r.arguments_size(), 2);
  EXPECT_EQ(r.arguments(0).value().string_value(), "id=1' OR '1'='1");
  const auto& b = r.arguments(1).value();
  EXPECT_TRUE(b.truncated());
  EXPECT_EQ(b.original_length(), body.size());
  ASSERT_EQ(b.string_value().size(), 1024u);
  EXPECT_EQ(b.string_value().substr(0, 5), "HEAD:");
  EXPECT_EQ(b.string_value().substr(1019), ":TAIL");
  EXPECT_FALSE(r.arguments(0).value().truncated());
  EXPECT_TRUE(r.truncated());
  EXPECT_GT(r.dropped_arguments(), 0u);
  EXPECT_LT(r.arguments_size(), 42);
  EXPECT_GT(r.original_size(), static_cast<uint64_t>(1 << 20));
  EXPECT_LE(r.ByteSizeLong(),
            static_cast<size_t>(16 << 10) + 2 * 1024 + 256);  // the cap + two strings
  EXPECT_EQ(r.result().int_value(), 200);
}

// Records of one key recorded together travel as CallRecordBatches: fewer messages than
// records, every record intact and once, each message holding its key's records only.
TEST(Sensor, BatchesRecordsOfOneKeyIntoFewMessages) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.max_batch_records = 50;
  auto s = Sensor::create(cfg);
  constexpr int kCalls = 600;
  for (int i = 0; i < kCalls; ++i) {
    CallScope c(*s, i % 3 == 0 ? "db.query" : "http.request");
    c.arg("i", i);
  }
  ASSERT_TRUE(s->flush(30s));
  expect_balanced(s->stats());
  EXPECT_EQ(s->stats().sent, static_cast<uint64_t>(kCalls));
  auto got = k.consume_records("t.calls", kCalls);
  ASSERT_TRUE(got.parsed);
  ASSERT_EQ(got.records.size(), static_cast<size_t>(kCalls));
  EXPECT_LT(got.messages, static_cast<size_t>(kCalls) / 2);
  EXPECT_EQ(got.batches, got.messages);
  EXPECT_GE(got.messages, static_cast<size_t>(kCalls) / 50);  // max_batch_records holds
  std::set<int64_t> seen;
  for (const auto& [key, rec] : got.records) {
    EXPECT_EQ(key, "shop|" + rec.call() + "|");
    const int64_t i = rec.arguments(0).value().int_value();
    EXPECT_EQ(rec.call(), i % 3 == 0 ? "db.query" : "http.request");
    EXPECT_TRUE(seen.insert(i).second) << "record " << i << " twice";
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kCalls));
}

// max_batch_records = 1 sends plain CallRecords, one per message (for consumers that do not
// read batches).
TEST(Sensor, BatchingCanBeTurnedOff) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.max_batch_records = 1;
  auto s = Sensor::create(cfg);
  for (int i = 0; i < 20; ++i) CallScope(*s, "http.request").arg("i", i);
  ASSERT_TRUE(s->flush(30s));
  auto msgs = k.consume("t.calls", 20);
  ASSERT_EQ(msgs.size(), 20u);
  for (const auto& [key, payload] : msgs) {
    EXPECT_FALSE(immunizer::v1::is_call_record_batch(payload));
    immunizer::v1::CallRecord r;
    EXPECT_TRUE(r.ParseFromString(payload));
  }
  cfg.max_batch_records = 0;
  EXPECT_THROW(Sensor::create(cfg), std::invalid_argument);
}

TEST(Sensor, BrokerDownNeverBlocksCountsDropsAndResumes) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.max_inflight_bytes = 64 * 1024;  // fills up while the broker is down
  auto s = Sensor::create(cfg);
  k.broker_down();

  std::chrono::nanoseconds worst{0};
  for (int i = 0; i < 3000; ++i) worst = std::max(worst, record_one(*s, i));
  EXPECT_LT(worst, kNeverBlocks);
  auto st = s->stats();
  EXPECT_EQ(st.recorded, 3000u);
  EXPECT_GT(st.dropped_by(DropReason::kBudget), 0u);
  EXPECT_EQ(st.sent, 0u);

  k.broker_up();
  ASSERT_TRUE(s->flush(30s));
  st = s->stats();
  expect_balanced(st);
  EXPECT_GT(st.sent, 0u);  // what was held within the budget went out after the outage
  EXPECT_EQ(st.dropped_by(DropReason::kDeliveryFailed), 0u);

  const uint64_t sent_before = st.sent;
  for (int i = 0; i < 100; ++i) record_one(*s, i);
  ASSERT_TRUE(s->flush(30s));
  st = s->stats();
  EXPECT_EQ(st.sent, sent_before + 100);
  expect_balanced(st);
}

TEST(Sensor, DeliveryFailuresAreCountedNotThrown) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.delivery_timeout_ms = 300;
  auto s = Sensor::create(cfg);
  k.broker_down();
  for (int i = 0; i < 50; ++i) record_one(*s, i);
  ASSERT_TRUE(s->flush(30s));  // every record times out in librdkafka, each is reported
  auto st = s->stats();
  EXPECT_EQ(st.dropped_by(DropReason::kDeliveryFailed), 50u);
  expect_balanced(st);

  k.broker_up();
  ASSERT_TRUE(eventually([&] {
    record_one(*s, 0);
    s->flush(1s);
    return s->stats().sent > 0;
  }));
  expect_balanced(s->stats());
}

TEST(Sensor, SlowBrokerKeepsCallerLatencyFlat) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.max_inflight_bytes = 128 * 1024;
  auto s = Sensor::create(cfg);
  k.broker_rtt(2000);  // every produce request takes two seconds

  std::chrono::nanoseconds worst{0};
  for (int i = 0; i < 5000; ++i) worst = std::max(worst, record_one(*s, i));
  EXPECT_LT(worst, kNeverBlocks);
  k.broker_rtt(0);
  ASSERT_TRUE(s->flush(30s));
  const auto st = s->stats();
  expect_balanced(st);
  EXPECT_EQ(st.recorded, 5000u);
  EXPECT_GT(st.sent, 0u);
  EXPECT_GT(st.dropped_by(DropReason::kBudget), 0u);
}

TEST(Sensor, ManyThreadsRecordAtOnce) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.queue_capacity = 1024;  // small ring: some queue_full drops are expected, all counted
  auto s = Sensor::create(cfg);
  constexpr int kThreads = 8, kCalls = 2000;
  std::atomic<int64_t> worst_ns{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        {
          CallScope outer(*s, "worker");
          outer.arg("t", t).arg("i", i);
          CallScope inner(*s, "step");
          inner.arg("v", std::map<std::string, int>{{"a", i}});
        }
        const int64_t d = (std::chrono::steady_clock::now() - t0).count();
        int64_t w = worst_ns.load();
        while (d > w && !worst_ns.compare_exchange_weak(w, d)) {
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_LT(std::chrono::nanoseconds(worst_ns.load()), kNeverBlocks);
  ASSERT_TRUE(s->flush(30s));
  const auto st = s->stats();
  EXPECT_EQ(st.recorded, uint64_t{kThreads} * kCalls * 2);
  expect_balanced(st);
  EXPECT_GT(st.sent, 0u);
}

TEST(Sensor, SamplingAndRuntimeSwitch) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.sample_rate = 0.25;
  auto s = Sensor::create(cfg);
  for (int i = 0; i < 4000; ++i) record_one(*s, i);
  ASSERT_TRUE(s->flush(30s));
  auto st = s->stats();
  expect_balanced(st);
  EXPECT_EQ(st.recorded, 4000u);
  EXPECT_GT(st.dropped_by(DropReason::kSampledOut), 2500u);
  EXPECT_LT(st.dropped_by(DropReason::kSampledOut), 3500u);

  s->set_enabled(false);
  {
    CallScope c(*s, "off");
    EXPECT_FALSE(c.recording());
    EXPECT_EQ(c.id().seq, 0u);
  }
  EXPECT_EQ(s->stats().recorded, 4000u);
}

// A budget that samples everything away (rate 0) still records the calls a cheap check
// flags, each counted under its reason; the unflagged ones stay sampled out.
TEST(Sensor, SampledOutCallsThatAFlagCheckFlagsAreKept) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.sample_rate = 0;
  cfg.max_string_bytes = 64;
  prometheus::Registry reg;
  auto s = Sensor::create(cfg);
  s->bind_metrics(reg);
  using immunizer::sensor::KeepReason;
  auto call = [&](std::string_view arg_name, std::string_view value) {
    CallScope c(*s, "search");
    EXPECT_TRUE(c.recording());
    c.principal("alice", "s1", "10.0.0.1").arg("q", value).arg(arg_name, 1);
  };
  // Learning: the first call has names never seen for "search": kept as new_arg_name.
  call("page", "shoes");
  for (int i = 0; i < 100; ++i) call("page", "shoes");  // known, plain: out
  call("debug", "shoes");                               // a new name: kept
  call("page", std::string(100, 'x'));                  // over the cap: kept
  call("page", std::string("caf\xc3", 4));              // bad UTF-8: kept
  call("page", std::string("caf\xc3\xa9", 5));          // good UTF-8: out
  {  // another call name has its own names: "page" is new there
    CallScope c(*s, "cart");
    c.arg("page", 2);
  }
  ASSERT_TRUE(s->flush(30s));
  const SensorStats st = s->stats();
  expect_balanced(st);
  EXPECT_EQ(st.recorded, 106u);
  EXPECT_EQ(st.kept_by(KeepReason::kNewArgName), 3u);
  EXPECT_EQ(st.kept_by(KeepReason::kTooLong), 1u);
  EXPECT_EQ(st.kept_by(KeepReason::kInvalidUtf8), 1u);
  EXPECT_EQ(st.kept_by(KeepReason::kNameTableFull), 0u);
  EXPECT_EQ(st.sent, 5u);
  EXPECT_EQ(st.dropped_by(DropReason::kSampledOut), 101u);

  const auto got = k.consume_records("t.calls", 5);
  ASSERT_EQ(got.records.size(), 5u);
  std::multiset<std::string> names;
  for (const auto& [key, r] : got.records) {
    EXPECT_EQ(r.id().seq() != 0, true);
    if (r.call() == "search") {
      EXPECT_EQ(r.principal().user(), "alice");  // the whole record, not a stub
      ASSERT_EQ(r.arguments_size(), 2);
      names.insert(r.arguments(1).name());
    } else {
      names.insert("cart:" + r.arguments(0).name());
    }
  }
  EXPECT_EQ(names, (std::multiset<std::string>{"cart:page", "debug", "page", "page", "page"}));

  double kept_new = -1;
  for (const auto& fam : reg.Collect())
    for (const auto& m : fam.metric)
      if (fam.name == "immunizer_sensor_sampled_kept_total")
        for (const auto& l : m.label)
          if (l.name == "reason" && l.value == "new_arg_name") kept_new = m.counter.value;
  EXPECT_EQ(kept_new, 3);
}

// A sampled-out value holding a character class under 1% of its argument's learnt values is
// kept (rare_characters); classes common for that argument are not; nothing is judged before
// 100 values are learnt; a flood of one rare class is never learnt, so it stays flagged; each
// argument of each call name learns on its own.
TEST(Sensor, SampledOutValuesWithRareCharactersAreKept) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.sample_rate = 0;
  auto s = Sensor::create(cfg);
  using immunizer::sensor::KeepReason;
  auto call = [&](std::string_view name, std::string_view q, std::string_view agent) {
    CallScope c(*s, name);
    c.arg("q", q).arg("agent", agent);
  };
  call("search", "shoes", "Mozilla/5.0 (X11)");  // learns the names: kept as new_arg_name
  // Learning: quotes once in the first 100 values, spaces, slashes and brackets in every
  // agent: none of them is judged yet.
  call("search", "o'neil", "Mozilla/5.0 (X11)");
  for (int i = 0; i < 98; ++i) call("search", "red shoes", "Mozilla/5.0 (X11)");
  EXPECT_EQ(s->stats().kept_by(KeepReason::kRareCharacters), 0u);
  call("search", "red shoes", "Mozilla/5.0 (X11; Linux)");  // the 100th value: out
  // Judged from now on: quotes are 1 in 100 (not under 1%), '=' never seen: kept.
  call("search", "x' or '1'='1", "Mozilla/5.0 (X11)");
  call("search", "<script>", "Mozilla/5.0 (X11)");       // angle brackets: kept
  call("search", "shoes", "Mozilla/5.0 (X11)\r\nX: 1");  // escapes in agent: kept
  for (int i = 0; i < 300; ++i) call("search", "a'b", "Mozilla/5.0 (X11)");  // a flood: kept
  call("cart", "shoes", "<x>");  // another call name: its names are new there (kept)
  for (int i = 0; i < 100; ++i) call("cart", "shoes", "Mozilla");
  call("cart", "shoes", "<x>");  // never learnt for cart's agent: kept
  ASSERT_TRUE(s->flush(30s));
  const SensorStats st = s->stats();
  expect_balanced(st);
  EXPECT_EQ(st.kept_by(KeepReason::kNewArgName), 2u);
  EXPECT_EQ(st.kept_by(KeepReason::kRareCharacters), 304u);
  EXPECT_EQ(st.dropped_by(DropReason::kSampledOut), 100u + 100);
  const auto got = k.consume_records("t.calls", 306);
  ASSERT_EQ(got.records.size(), 306u);
  size_t floods = 0;
  for (const auto& [key, r] : got.records)
    floods += r.call() == "search" && r.arguments(0).value().string_value() == "a'b";
  EXPECT_EQ(floods, 300u);
}

// A watched principal's calls are all recorded under a sampling that leaves out everyone
// else's; the hook is asked only for calls sampling left out, and a new binding replaces it.
TEST(Sensor, WatchedPrincipalsCallsAreRecordedWhateverTheSampling) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.sample_rate = 0;
  auto s = Sensor::create(cfg);
  using immunizer::sensor::KeepReason;
  struct Watch {
    std::string session;
    std::atomic<int> asked{0};
  } watch{"evil"};
  auto hook = [](const void* ctx, std::string_view, std::string_view session,
                 std::string_view) noexcept {
    auto* w = static_cast<Watch*>(const_cast<void*>(ctx));
    w->asked.fetch_add(1);
    return session == w->session;
  };
  auto call = [&](const char* session) {
    CallScope c(*s, "search");
    c.principal("", session, "10.0.0.1").arg("q", "shoes");
  };
  call("warmup");  // learns "q" (kept as a new name, before any hook)
  ASSERT_TRUE(s->set_watch(hook, &watch));
  for (int i = 0; i < 50; ++i) {
    call("good");
    call("evil");
  }
  ASSERT_TRUE(s->set_watch(nullptr, nullptr));
  call("evil");  // no hook: sampled out
  ASSERT_TRUE(s->flush(30s));
  const SensorStats st = s->stats();
  expect_balanced(st);
  EXPECT_EQ(watch.asked.load(), 100);
  EXPECT_EQ(st.kept_by(KeepReason::kWatched), 50u);
  EXPECT_EQ(st.kept_by(KeepReason::kNewArgName), 1u);
  EXPECT_EQ(st.dropped_by(DropReason::kSampledOut), 51u);
  const auto got = k.consume_records("t.calls", 51);
  ASSERT_EQ(got.records.size(), 51u);
  size_t evil = 0;
  for (const auto& [key, r] : got.records) evil += r.principal().session() == "evil";
  EXPECT_EQ(evil, 50u);
}

// Off, sampled-out calls are not even encoded: the old cheap path.
TEST(Sensor, FlagChecksCanBeTurnedOff) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.sample_rate = 0;
  cfg.keep_flagged = false;
  auto s = Sensor::create(cfg);
  {
    CallScope c(*s, "search");
    EXPECT_FALSE(c.recording());
    c.arg("debug", std::string(10000, 'x'));
  }
  ASSERT_TRUE(s->flush(30s));
  const SensorStats st = s->stats();
  EXPECT_EQ(st.dropped_by(DropReason::kSampledOut), 1u);
  EXPECT_EQ(st.sent, 0u);
}

// A flood of distinct names fills a call's bounded table; past it, unknown names are still
// flagged (name_table_full), known ones are not.
TEST(Sensor, ArgNameTableIsBoundedAndFlagsPastTheBound) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.sample_rate = 0;
  auto s = Sensor::create(cfg);
  using immunizer::sensor::KeepReason;
  for (int i = 0; i < 200; ++i) {
    CallScope c(*s, "flood");
    c.arg("n" + std::to_string(i), i);
  }
  for (int i = 0; i < 10; ++i) {
    CallScope c(*s, "flood");
    c.arg("n3", i);  // learnt before the table filled
  }
  ASSERT_TRUE(s->flush(30s));
  const SensorStats st = s->stats();
  expect_balanced(st);
  EXPECT_EQ(st.kept_by(KeepReason::kNewArgName), 64u);
  EXPECT_EQ(st.kept_by(KeepReason::kNameTableFull), 136u);
  EXPECT_EQ(st.dropped_by(DropReason::kSampledOut), 10u);
}

TEST(Sensor, CpuBudgetLowersSamplingRate) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a CPU-share measurement, meaningless under TSan's slowdown";
#endif
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.cpu_budget = 0.01;  // a loop that does nothing but record is far above 1%
  cfg.min_sample_rate = 0.01;
  auto s = Sensor::create(cfg);
  // The share is reported per 100 ms tick (0 for a tick in which this process was starved of
  // CPU, as on a loaded CI machine), so keep the largest one seen while the loop runs.
  double max_share = 0;
  ASSERT_TRUE(eventually([&] {
    for (int i = 0; i < 200; ++i) record_one(*s, i);
    const auto st = s->stats();
    max_share = std::max(max_share, st.overhead_share);
    return st.sample_rate < 0.5;
  }));
  EXPECT_GT(max_share, 0.01);
  ASSERT_TRUE(s->flush(30s));
  expect_balanced(s->stats());
  // Load gone: the process is nearly idle, so the budget no longer binds and the rate climbs
  // back to the configured one (it used to stay at the floor).
  const double low = s->stats().sample_rate;
  ASSERT_TRUE(eventually([&] {
    std::this_thread::sleep_for(100ms);
    return s->stats().sample_rate >= 1.0;
  })) << "rate stayed at "
      << s->stats().sample_rate << " (was " << low << " under load)";
}

TEST(Sensor, ExportsPrometheusMetrics) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.sample_rate = 0;
  prometheus::Registry reg;  // must outlive the sensor bound to it
  auto s = Sensor::create(cfg);
  s->bind_metrics(reg);
  for (int i = 0; i < 10; ++i) record_one(*s, i);
  ASSERT_TRUE(s->flush(30s));
  s->stats();
  double sampled = -1, sent = -1;
  for (const auto& fam : reg.Collect()) {
    for (const auto& m : fam.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (fam.name == "immunizer_sensor_records_dropped_total" &&
          labels["reason"] == "sampled_out" && labels["app"] == "shop")
        sampled = m.counter.value;
      if (fam.name == "immunizer_sensor_records_sent_total") sent = m.counter.value;
    }
  }
  EXPECT_EQ(sampled, 9);  // the first call's argument names were new: kept (flag checks)
  EXPECT_EQ(sent, 1);
}

TEST(Sensor, ShutdownFlushesAndCountsLeftovers) {
  MockKafka k("t.calls");
  auto cfg = config_for(k);
  cfg.shutdown_flush_timeout = 200ms;
  auto s = Sensor::create(cfg);
  k.broker_down();
  for (int i = 0; i < 20; ++i) record_one(*s, i);
  const auto t0 = std::chrono::steady_clock::now();
  s.reset();  // must give up after ~200 ms, not hang on the dead broker
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(Sensor, ReplacesAProducerThatFailedFatally) {
  MockKafka k("t.calls");
  auto s = Sensor::create(config_for(k));
  for (int i = 0; i < 10; ++i) record_one(*s, i);
  ASSERT_TRUE(s->flush(30s));
  rd_kafka_t* before = immunizer::sensor::SensorTestAccess::producer(*s);
  rd_kafka_test_fatal_error(before, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                            "injected by the test");
  ASSERT_TRUE(eventually([&] { return s->stats().producer_restarts == 1; }));
  ASSERT_TRUE(eventually([&] {
    record_one(*s, 0);
    s->flush(1s);
    return s->stats().sent > 10;
  }));
  expect_balanced(s->stats());
}

TEST(SensorConfig, FromEnvironment) {
  setenv("IMMUNIZER_APP", "envapp", 1);
  setenv("IMMUNIZER_KAFKA_BOOTSTRAP", "k:1", 1);
  setenv("IMMUNIZER_SENSOR_SAMPLE_RATE", "0.5", 1);
  setenv("IMMUNIZER_SENSOR_KAFKA_PROPERTIES", "socket.timeout.ms=1000,client.rack=r1", 1);
  auto c = SensorConfig::from_env();
  EXPECT_EQ(c.app, "envapp");
  EXPECT_EQ(c.bootstrap, "k:1");
  EXPECT_EQ(c.sample_rate, 0.5);
  EXPECT_EQ(c.kafka_properties.at("client.rack"), "r1");
  EXPECT_EQ(c.max_string_bytes, 4096u);
  EXPECT_TRUE(c.keep_flagged);
  setenv("IMMUNIZER_SENSOR_KEEP_FLAGGED", "false", 1);
  EXPECT_FALSE(SensorConfig::from_env().keep_flagged);
  unsetenv("IMMUNIZER_SENSOR_KEEP_FLAGGED");
  setenv("IMMUNIZER_SENSOR_MAX_STRING_BYTES", "100", 1);
  setenv("IMMUNIZER_SENSOR_MAX_RECORD_BYTES", "2048", 1);
  c = SensorConfig::from_env();
  EXPECT_EQ(c.max_string_bytes, 100u);
  EXPECT_EQ(c.max_record_bytes, 2048u);
  unsetenv("IMMUNIZER_SENSOR_MAX_STRING_BYTES");
  unsetenv("IMMUNIZER_SENSOR_MAX_RECORD_BYTES");
  setenv("IMMUNIZER_SENSOR_SAMPLE_RATE", "2", 1);
  try {
    SensorConfig::from_env();
    FAIL() << "expected a configuration error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("IMMUNIZER_SENSOR_SAMPLE_RATE"), std::string::npos);
  }
  for (const char* bad : {"0x10", " 0.5", "+0.5", "0.5 ", "nan"}) {
    setenv("IMMUNIZER_SENSOR_SAMPLE_RATE", bad, 1);
    EXPECT_THROW(SensorConfig::from_env(), std::invalid_argument) << "'" << bad << "'";
  }
  unsetenv("IMMUNIZER_SENSOR_SAMPLE_RATE");
  for (const char* bad : {"0x10", " 5000", "+5000"}) {
    setenv("IMMUNIZER_SENSOR_LINGER_MS", bad, 1);
    EXPECT_THROW(SensorConfig::from_env(), std::invalid_argument) << "'" << bad << "'";
  }
  unsetenv("IMMUNIZER_SENSOR_LINGER_MS");
  // A misspelled variable of the sensor's own namespace is an error with a suggestion.
  setenv("IMMUNIZER_SENSOR_SAMPLERATE", "0.5", 1);
  try {
    SensorConfig::from_env();
    FAIL() << "expected a configuration error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("IMMUNIZER_SENSOR_SAMPLERATE"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("did you mean IMMUNIZER_SENSOR_SAMPLE_RATE"),
              std::string::npos)
        << e.what();
  }
  unsetenv("IMMUNIZER_SENSOR_SAMPLERATE");
  setenv("IMMUNIZER_MONITOR_GROUP", "g", 1);  // another component's: not the sensor's business
  EXPECT_NO_THROW(SensorConfig::from_env());
  unsetenv("IMMUNIZER_MONITOR_GROUP");
  unsetenv("IMMUNIZER_APP");
  unsetenv("IMMUNIZER_KAFKA_BOOTSTRAP");
  unsetenv("IMMUNIZER_SENSOR_KAFKA_PROPERTIES");
}

}  // namespace
