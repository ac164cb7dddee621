#include "immunizer/replay/replayer.hpp"

#include <httplib.h>

#include "immunizer/common/metrics_text.hpp"

#include <cstdio>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace immunizer::replay {

using common::metric_sum;

namespace {
int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void count(PhaseSummary& s, int status) {
  ++s.sent;
  if (status == 0)
    ++s.failed;
  else if (status == 403)
    ++s.forbidden;
  else if (status == 404)
    ++s.not_found;
  else if (status >= 200 && status < 300)
    ++s.ok;
  else
    ++s.other;
}

// The request as the file has it, with the session and address this run gives it.
httplib::Request build(const monitor::csic::Request& r, const SendOptions& opt) {
  httplib::Request req;
  req.method = r.method;
  req.path = r.query.empty() ? r.path : r.path + "?" + r.query;
  std::string session = opt.session_override.empty() ? r.session() : opt.session_override;
  for (const auto& [k, v] : r.headers) {
    std::string lk = k;
    for (auto& c : lk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lk == "host" || lk == "content-length" || lk == "connection") continue;
    if (lk == "cookie") {
      req.headers.emplace("Cookie", "JSESSIONID=" + session);
      continue;
    }
    req.headers.emplace(k, v);
  }
  if (!session.empty() && !req.has_header("Cookie"))
    req.headers.emplace("Cookie", "JSESSIONID=" + session);
  req.headers.emplace("X-Forwarded-For", opt.ip.empty() ? address_for(session) : opt.ip);
  if (!opt.trace_prefix.empty())
    req.headers.emplace("X-Immunizer-Trace", opt.trace_prefix + ":" + std::to_string(r.index));
  req.body = r.body;
  return req;
}
}  // namespace

Target Target::parse(const std::string& url) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0)
    rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos)
    throw std::invalid_argument("target '" + url + "': only http:// is supported");
  rest = rest.substr(0, rest.find('/'));
  Target t;
  const auto colon = rest.rfind(':');
  t.host = rest.substr(0, colon);
  if (colon != std::string::npos) {
    try {
      t.port = std::stoi(rest.substr(colon + 1));
    } catch (...) {
      throw std::invalid_argument("target '" + url + "': bad port");
    }
  }
  if (t.host.empty() || t.port <= 0 || t.port > 65535)
    throw std::invalid_argument("target '" + url + "': expected http://host:port");
  return t;
}

std::string address_for(const std::string& session) {
  const uint64_t h = std::hash<std::string>{}(session);
  return "198." + std::to_string(18 + (h & 1)) + "." + std::to_string((h >> 8) & 0xff) + "." +
         std::to_string(1 + ((h >> 16) % 254));
}

PhaseSummary send_all(const Target& target, const std::vector<monitor::csic::Request>& requests,
                      const SendOptions& opt, const std::atomic<bool>& stop,
                      const std::string& name) {
  PhaseSummary sum;
  sum.name = name;
  std::mutex mu;
  std::atomic<size_t> next{0};
  std::atomic<bool> halt{false};
  std::atomic<int64_t> paused_ns{0};  // time held by the pacer: the rate schedule moves on by it
  const int64_t t0 = steady_ns();
  const int64_t deadline =
      t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(opt.time_limit).count();
  const int workers = std::max(1, opt.concurrency);
  auto work = [&] {
    httplib::Client cli(target.host, target.port);
    cli.set_keep_alive(true);
    cli.set_url_encode(false);
    cli.set_tcp_nodelay(true);  // headers and body go out in two writes: no Nagle stall
    cli.set_connection_timeout(2);
    cli.set_read_timeout(10);
    for (;;) {
      if (stop || halt || steady_ns() > deadline) return;
      const size_t i = next.fetch_add(1);
      if (i >= requests.size()) return;
      if (opt.pacer) paused_ns += opt.pacer->wait(stop, deadline);
      if (stop || steady_ns() > deadline) return;
      if (opt.rate > 0) {  // pace: request i is due at t0 + i / rate (+ time held by the pacer)
        const int64_t due =
            t0 + paused_ns.load() + static_cast<int64_t>(static_cast<double>(i) / opt.rate * 1e9);
        const int64_t wait = due - steady_ns();
        if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
      }
      httplib::Request req = build(requests[i], opt);
      Sent s;
      s.sent_ns = steady_ns();
      s.trace = opt.trace_prefix + ":" + std::to_string(requests[i].index);
      auto res = cli.send(req);
      s.latency_ns = steady_ns() - s.sent_ns;
      s.status = res ? res->status : 0;
      {
        std::lock_guard<std::mutex> lock(mu);
        count(sum, s.status);
      }
      if (opt.on_answer && !opt.on_answer(s)) halt = true;
    }
  };
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  sum.seconds = static_cast<double>(steady_ns() - t0) / 1e9;
  return sum;
}

AttackResult attack(const Target& target, const std::vector<monitor::csic::Request>& anomalous,
                    const std::vector<monitor::csic::Request>& normal, const AttackOptions& opt,
                    const std::atomic<bool>& stop) {
  AttackResult r;
  std::atomic<bool> attacker_done{false};
  // The bystander: one normal session browsing at a steady pace until the attacker is done.
  std::thread bystander([&] {
    SendOptions o;
    o.rate = 20;
    o.concurrency = 1;
    o.session_override = "BYSTANDER000000000000000000000BB";
    o.trace_prefix = "bystander";
    o.time_limit = opt.time_limit;
    std::vector<monitor::csic::Request> reqs(
        normal.begin(), normal.begin() + std::min<size_t>(normal.size(), 100000));
    std::atomic<bool> any_stop{false};
    o.on_answer = [&](const Sent&) { return !attacker_done.load(); };
    r.bystander = send_all(target, reqs, o, stop, "bystander");
  });
  SendOptions o;
  o.rate = opt.rate;
  o.concurrency = 1;  // in a row
  o.session_override = opt.session;
  o.ip = opt.ip;
  o.trace_prefix = "attack";
  o.time_limit = opt.time_limit;
  int64_t first_sent = 0, last_allowed = 0;
  uint64_t after = 0;
  o.on_answer = [&](const Sent& s) {
    if (first_sent == 0) first_sent = s.sent_ns;
    if (!r.blocked) {
      if (s.status == 403) {
        r.blocked = true;
        const int64_t at = s.sent_ns + s.latency_ns;
        r.seconds_to_block = static_cast<double>(at - first_sent) / 1e9;
        if (last_allowed)
          r.seconds_from_last_allowed = static_cast<double>(at - last_allowed) / 1e9;
      } else {
        ++r.attacks_before_block;
        last_allowed = s.sent_ns;
      }
      return true;
    }
    return ++after < opt.after_block;
  };
  std::vector<monitor::csic::Request> reqs(
      anomalous.begin(), anomalous.begin() + std::min<size_t>(anomalous.size(), opt.max_attacks));
  r.attacker = send_all(target, reqs, o, stop, "attacker");
  attacker_done = true;
  bystander.join();
  return r;
}

std::optional<std::string> fetch_metrics(const std::string& url) {
  const auto t = Target::parse(url);
  const size_t slash =
      url.find('/', url.find("://") == std::string::npos ? 0 : url.find("://") + 3);
  const std::string path = slash == std::string::npos ? "/metrics" : url.substr(slash);
  httplib::Client cli(t.host, t.port);
  cli.set_connection_timeout(1);
  cli.set_read_timeout(5);
  auto res = cli.Get(path.c_str());
  if (!res || res->status != 200) return std::nullopt;
  return res->body;
}

namespace {
// Sum of the immunizer_kafka_messages_consumed_total samples on a /metrics page; -1 if unreachable.
double consumed(const std::string& url) {
  const auto page = fetch_metrics(url);
  return page ? metric_sum(*page, "immunizer_kafka_messages_consumed_total") : -1;
}

// Sum of the consumer lag gauges over the pages; -1 when one did not answer.
double lag_of(const std::vector<std::string>& urls) {
  double lag = 0;
  for (const auto& u : urls) {
    const auto page = fetch_metrics(u);
    if (!page) return -1;
    lag += metric_sum(*page, "immunizer_kafka_consumer_lag");
  }
  return lag;
}
}  // namespace

LagPacer::LagPacer(std::vector<std::string> metrics_urls, double max_lag)
    : urls_(std::move(metrics_urls)), max_lag_(max_lag) {
  if (!urls_.empty() && max_lag_ > 0) poller_ = std::thread([this] { poll_loop(); });
}

LagPacer::~LagPacer() {
  quit_ = true;
  if (poller_.joinable()) poller_.join();
}

void LagPacer::poll_loop() {
  while (!quit_) {
    const double l = lag_of(urls_);
    if (l >= 0) {  // a service that does not answer (restarting) keeps the last verdict
      lag_ = l;
      if (l > max_lag_) behind_ = true;
      if (l <= max_lag_ / 2) behind_ = false;
    }
    for (int i = 0; i < 5 && !quit_; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int64_t LagPacer::wait(const std::atomic<bool>& stop, int64_t deadline_ns) {
  if (!behind_) return 0;
  const int64_t t0 = steady_ns();
  ++pauses_;
  while (behind_ && !stop && !quit_ && steady_ns() < deadline_ns)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int64_t waited = steady_ns() - t0;
  paused_ns_ += waited;
  return waited;
}

PipelineCounts pipeline_counts(const std::vector<std::string>& urls) {
  PipelineCounts c;
  for (const auto& u : urls) {
    const auto page = fetch_metrics(u);
    if (!page) {
      ++c.unreachable;
      continue;
    }
    const std::string& p = *page;
    c.sent += metric_sum(p, "immunizer_sensor_records_sent_total");
    c.scored += metric_sum(p, "immunizer_analyze_vectors_scored_total") +
                metric_sum(p, "immunizer_analyze_vectors_learning_total");
    c.lost += metric_sum(p, "immunizer_records_lost_total") +
              metric_sum(p, "immunizer_sensor_records_dropped_total", "", "reason=\"sampled_out\"");
    c.sampled_out +=
        metric_sum(p, "immunizer_sensor_records_dropped_total", "reason=\"sampled_out\"");
    c.denied +=
        metric_sum(p, "immunizer_monitor_records_rejected_total", "reason=\"denied_by_effector\"");
    c.rejected += metric_sum(p, "immunizer_monitor_records_rejected_total", "",
                             "reason=\"denied_by_effector\"");
    c.deadletters += metric_sum(p, "immunizer_deadletters_total");
  }
  return c;
}

std::string describe(const PipelineCounts& c) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "records sent %.0f / scored %.0f / lost %.0f", c.sent, c.scored,
                c.lost);
  std::string s = buf;
  std::string why;
  auto add = [&](double n, const char* what) {
    if (n <= 0) return;
    std::snprintf(buf, sizeof buf, "%s%.0f %s", why.empty() ? "" : ", ", n, what);
    why += buf;
  };
  add(c.denied, "denied by the effector (not scored)");
  add(c.rejected, "rejected by monitor");
  add(c.deadletters, "dead letters");
  add(c.sampled_out, "sampled out by the sensor");
  if (c.unaccounted() > 0)
    add(c.unaccounted(), "not accounted for (lost, or counted by a service since restarted)");
  if (c.unaccounted() < 0) add(-c.unaccounted(), "scored more than once (replays)");
  if (c.unreachable > 0) add(c.unreachable, "metrics pages unreachable");
  if (!why.empty()) s += " (" + why + ")";
  return s;
}

bool wait_for_pipeline(const std::vector<std::string>& urls, std::chrono::seconds limit,
                       const std::atomic<bool>& stop, const std::function<void(double)>& progress) {
  // Caught up = every service has consumed something, has no consumer lag, and none
  // consumed more for 3 s.
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::vector<double> last(urls.size(), -2);
  int quiet = 0;
  while (!stop && std::chrono::steady_clock::now() < deadline) {
    bool same = true;
    double total = 0;
    for (size_t i = 0; i < urls.size(); ++i) {
      const double c = consumed(urls[i]);
      same = same && c > 0 && c == last[i];
      last[i] = c;
      total += std::max(c, 0.0);
    }
    if (progress) progress(total);
    quiet = same && lag_of(urls) == 0 ? quiet + 1 : 0;
    if (quiet >= 3) return true;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return false;
}

std::vector<monitor::csic::Request> interleave(const std::vector<monitor::csic::Request>& a,
                                               const std::vector<monitor::csic::Request>& b) {
  std::vector<monitor::csic::Request> out;
  out.reserve(a.size() + b.size());
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    // Keep the proportion: take from a while a is behind its share.
    if (j >= b.size() || (i < a.size() && i * b.size() <= j * a.size()))
      out.push_back(a[i++]);
    else
      out.push_back(b[j++]);
  }
  return out;
}

}  // namespace immunizer::replay
