// Notifier against a webhook receiver on 127.0.0.1 (port 0): signed bodies,
// retries with backoff on 5xx, dead letters after the last attempt, no retry on
// 4xx, JSON lines to a file, and a full queue dropping (counted) instead of
// blocking the caller.
#include "immunizer/dashboard/notifier.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace immunizer;
using namespace immunizer::dashboard;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

double metric(prometheus::Registry& r, const std::string& name, const std::string& dest,
              const std::string& result) {
  for (const auto& f : r.Collect()) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (labels["destination"] == dest && (result.empty() || labels["result"] == result))
        return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return -1;
}

struct Receiver {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<httplib::Request> got;
  std::vector<int> answers;  // status per request in order; the last repeats
  bool hold = false;         // handlers wait while set
  Receiver() {
    server.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return !hold; });
      got.push_back(req);
      const size_t i = std::min(got.size() - 1, answers.size() - 1);
      res.status = answers.empty() ? 200 : answers[i];
      cv.notify_all();
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~Receiver() {
    {
      std::lock_guard l(mu);
      hold = false;
      cv.notify_all();
    }
    server.stop();
    thread.join();
  }
  bool wait_for(size_t n) {
    std::unique_lock l(mu);
    return cv.wait_for(l, 20s, [&] { return got.size() >= n; });
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/hook"; }
  std::string dest() const { return "webhook:127.0.0.1:" + std::to_string(port); }
};

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/immunizer-notifier-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::vector<json> lines(const std::filesystem::path& p) {
  std::vector<json> out;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);) out.push_back(json::parse(l));
  return out;
}

const std::string kSecret = "0123456789abcdef0123456789abcdef-test";

NotifierConfig webhook_config(const Receiver& r) {
  NotifierConfig c;
  c.webhook_urls = {r.url()};
  c.webhook_secret = kSecret;
  c.backoff_ms = 10;
  c.max_backoff_ms = 40;
  c.timeout_ms = 5000;
  return c;
}

TEST(Notifier, SignedWebhookRetriedUntilAccepted) {
  Receiver r;
  r.answers = {503, 502, 200};
  prometheus::Registry reg;
  common::SystemClock clock;
  Notifier n(webhook_config(r), reg, clock);
  n.notify("opened", {{"id", 7}, {"principal_key", "session:ATTACKER"}});
  ASSERT_TRUE(r.wait_for(3));
  n.stop(5s);
  std::lock_guard l(r.mu);
  ASSERT_EQ(r.got.size(), 3u);
  const auto& req = r.got.back();
  const std::string ts = req.get_header_value("X-Immunizer-Timestamp");
  const std::string sig = req.get_header_value("X-Immunizer-Signature");
  EXPECT_EQ(sig, "sha256=" + webhook_signature(kSecret, ts, req.body));
  EXPECT_NE(sig, "sha256=" + webhook_signature("other", ts, req.body));
  EXPECT_EQ(req.get_header_value("X-Immunizer-Event"), "incident.opened");
  EXPECT_EQ(req.get_header_value("Content-Type"), "application/json");
  // Every attempt carries the same delivery id, so a receiver can deduplicate.
  EXPECT_EQ(r.got[0].get_header_value("X-Immunizer-Delivery"),
            req.get_header_value("X-Immunizer-Delivery"));
  const json body = json::parse(req.body);
  EXPECT_EQ(body["type"], "incident.opened");
  EXPECT_EQ(body["incident"]["id"], 7);
  EXPECT_EQ(metric(reg, "immunizer_dashboard_notifications_total", r.dest(), "delivered"), 1);
  EXPECT_EQ(metric(reg, "immunizer_dashboard_notifications_total", r.dest(), "retried"), 2);
  EXPECT_EQ(metric(reg, "immunizer_dashboard_notifications_total", r.dest(), "dead_letter"), 0);
}

TEST(Notifier, SignatureIsHmacSha256OverTimestampDotBody) {
  // Python: hmac.new(b'key', b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
  EXPECT_EQ(webhook_signature("key", "1700000000", R"({"a":1})"),
            "a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03");
}

TEST(Notifier, DeadLetterAfterTheLastAttemptAndNoRetryOn4xx) {
  TempDir dir;
  Receiver r;
  r.answers = {500};
  prometheus::Registry reg;
  common::SystemClock clock;
  auto c = webhook_config(r);
  c.max_attempts = 3;
  c.deadletter_path = (dir.path / "dead.jsonl").string();
  {
    Notifier n(c, reg, clock);
    n.notify("escalated", {{"id", 1}});
    ASSERT_TRUE(r.wait_for(3));
    n.stop(5s);
  }
  EXPECT_EQ(r.got.size(), 3u);
  EXPECT_EQ(metric(reg, "immunizer_dashboard_notifications_total", r.dest(), "dead_letter"), 1);
  EXPECT_EQ(metric(reg, "immunizer_dashboard_notifications_total", r.dest(), "retried"), 2);
  auto dl = lines(c.deadletter_path);
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(dl[0]["attempts"], 3);
  EXPECT_EQ(dl[0]["notification"]["incident"]["id"], 1);
  EXPECT_NE(dl[0]["error"].get<std::string>().find("500"), std::string::npos);

  Receiver r4;
  r4.answers = {400};
  prometheus::Registry reg4;
  auto c4 = webhook_config(r4);
  {
    Notifier n(c4, reg4, clock);
    n.notify("opened", {{"id", 2}});
    ASSERT_TRUE(r4.wait_for(1));
    n.stop(5s);
  }
  EXPECT_EQ(r4.got.size(), 1u);  // a 400 will not change with another try
  EXPECT_EQ(metric(reg4, "immunizer_dashboard_notifications_total", r4.dest(), "dead_letter"), 1);
}

TEST(Notifier, JsonLinesAndEventFilter) {
  TempDir dir;
  prometheus::Registry reg;
  common::SystemClock clock;
  NotifierConfig c;
  c.jsonl_path = (dir.path / "incidents.jsonl").string();
  c.events = {"opened", "resolved"};
  {
    Notifier n(c, reg, clock);
    n.notify("opened", {{"id", 1}});
    n.notify("escalated", {{"id", 1}});  // not configured
    n.notify("resolved", {{"id", 1}, {"state", "false_positive"}});
    n.stop(5s);
  }
  auto l = lines(c.jsonl_path);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0]["type"], "incident.opened");
  EXPECT_EQ(l[1]["type"], "incident.resolved");
  EXPECT_EQ(l[1]["incident"]["state"], "false_positive");
  EXPECT_EQ(metric(reg, "immunizer_dashboard_notifications_total", "jsonl", "delivered"), 2);
  EXPECT_EQ(std::filesystem::status(c.jsonl_path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST(Notifier, AFullQueueDropsAndCountsInsteadOfBlocking) {
  Receiver r;
  {
    std::lock_guard l(r.mu);
    r.hold = true;  // the receiver does not answer: the worker is stuck in its
                    // first POST
  }
  prometheus::Registry reg;
  common::SystemClock clock;
  auto c = webhook_config(r);
  c.queue = 2;
  Notifier n(c, reg, clock);
  for (int i = 0; i < 20; ++i) n.notify("opened", {{"id", i}});
  // 1 in flight (perhaps not yet taken), 2 queued: at least 17 dropped, all
  // counted.
  const double dropped =
      metric(reg, "immunizer_dashboard_notifications_total", r.dest(), "dropped");
  EXPECT_GE(dropped, 17);
  EXPECT_LE(dropped, 18);
  {
    std::lock_guard l(r.mu);
    r.hold = false;
    r.cv.notify_all();
  }
  ASSERT_TRUE(r.wait_for(static_cast<size_t>(20 - dropped)));
  n.stop(5s);
  EXPECT_EQ(metric(reg, "immunizer_dashboard_notifications_total", r.dest(), "delivered"),
            20 - dropped);
}

TEST(Notifier, RejectsBadConfiguration) {
  prometheus::Registry reg;
  common::SystemClock clock;
  NotifierConfig c;
  c.webhook_urls = {"http://127.0.0.1:1/x"};
  EXPECT_THROW(Notifier(c, reg, clock), std::invalid_argument);  // no secret
  c.webhook_secret = "k";
  EXPECT_THROW(Notifier(c, reg, clock), std::invalid_argument);  // 1-byte key
  c.webhook_secret = std::string(31, 'k');
  EXPECT_THROW(Notifier(c, reg, clock), std::invalid_argument);  // 31 bytes
  c.webhook_secret = std::string(32, 'k');
  {
    prometheus::Registry ok_reg;
    EXPECT_NO_THROW(Notifier(c, ok_reg, clock));
  }
  c.webhook_urls = {"ftp://host/x"};
  EXPECT_THROW(Notifier(c, reg, clock), std::invalid_argument);
  c.webhook_urls = {"http://user:pw@host/x"};
  EXPECT_THROW(Notifier(c, reg, clock), std::invalid_argument);
  c.webhook_urls = {};
  c.jsonl_path = "/tmp/x";
  c.events = {"exploded"};
  EXPECT_THROW(Notifier(c, reg, clock), std::invalid_argument);
}

}  // namespace
