#include "immunizer/dashboard/notifier.hpp"

#include <fcntl.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "immunizer/common/logging.hpp"
#include "immunizer/dashboard/json.hpp"

namespace immunizer::dashboard {

using nlohmann::json;

namespace {
auto log() {
  static auto l = common::logger("dashboard");
  return l;
}

struct Delivery {
  bool ok = false;
  bool retryable = true;
  std::string error;
};

// Appends whole lines to a file opened O_APPEND (one write per line, so
// concurrent writers never interleave within a line).
class LineFile {
 public:
  explicit LineFile(std::string path) : path_(std::move(path)) {}
  ~LineFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  Delivery append(const std::string& line) {
    if (fd_ < 0) fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return {false, true, "cannot open " + path_ + ": " + std::strerror(errno)};
    const std::string data = line + "\n";
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n != static_cast<ssize_t>(data.size())) {
      const std::string err = n < 0 ? std::strerror(errno) : "short write";
      ::close(fd_);
      fd_ = -1;  // reopen on the next attempt (the file may have been rotated
                 // away)
      return {false, true, "cannot write " + path_ + ": " + err};
    }
    return {true, false, ""};
  }

 private:
  std::string path_;
  int fd_ = -1;
};

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}
}  // namespace

std::string webhook_signature(const std::string& secret, const std::string& timestamp,
                              const std::string& body) {
  const std::string msg = timestamp + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len))
    throw std::runtime_error("webhook signature: HMAC-SHA256 failed");
  return hex(mac, len);
}

// One destination: a bounded queue drained by its own thread, with retries and
// dead letters.
class Notifier::Destination {
 public:
  struct Item {
    std::string body;  // the JSON notification
    std::string event, id;
  };

  Destination(std::string label, const NotifierConfig& cfg, prometheus::Registry& registry,
              LineFile* deadletters, std::mutex* deadletter_mu)
      : label_(std::move(label)),
        cfg_(cfg),
        deadletters_(deadletters),
        deadletter_mu_(deadletter_mu),
        family_(common::counter_family(registry, "immunizer_dashboard_notifications_total",
                                       "Incident notifications by destination and result "
                                       "(delivered, retried, dead_letter, dropped: queue full)")),
        delivered_(family_.Add({{"destination", label_}, {"result", "delivered"}})),
        retried_(family_.Add({{"destination", label_}, {"result", "retried"}})),
        dead_(family_.Add({{"destination", label_}, {"result", "dead_letter"}})),
        dropped_(family_.Add({{"destination", label_}, {"result", "dropped"}})),
        queued_(common::register_gauge(registry, "immunizer_dashboard_notification_queue",
                                       "Notifications waiting per destination",
                                       {{"destination", label_}})) {}
  virtual ~Destination() = default;

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  void push(Item it) {
    {
      std::lock_guard l(mu_);
      if (!stopping_ && queue_.size() < static_cast<size_t>(cfg_.queue)) {
        queue_.push_back(std::move(it));
        queued_.Set(static_cast<double>(queue_.size()));
        cv_.notify_one();
        return;
      }
    }
    dropped_.Increment();
    if (drop_log_.allow(nullptr))
      log()->warn("notifier {}: queue full ({} waiting); notification dropped", label_, cfg_.queue);
  }

  void stop(std::chrono::steady_clock::time_point deadline) {
    {
      std::lock_guard l(mu_);
      stopping_ = true;
      deadline_ = deadline;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

  const std::string& label() const { return label_; }

 protected:
  virtual Delivery deliver(const Item& it) = 0;

 private:
  void run() {
    std::unique_lock l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() || (stopping_ && std::chrono::steady_clock::now() >= deadline_)) break;
      Item it = std::move(queue_.front());
      queue_.pop_front();
      queued_.Set(static_cast<double>(queue_.size()));
      l.unlock();
      const bool done = attempt_all(it);
      l.lock();
      if (!done) {  // stopping mid-retry: what remains is counted as dead
                    // letters
        dead_.Increment();
      }
    }
    // Stopped with notifications still queued: they are lost, but counted.
    for (const auto& it : queue_) {
      dead_.Increment();
      write_deadletter(it, "dashboard stopping", 0);
    }
    queue_.clear();
    queued_.Set(0);
  }

  // Returns false when stopping interrupted the retries.
  bool attempt_all(const Item& it) {
    int64_t delay = cfg_.backoff_ms;
    Delivery d;
    for (int64_t attempt = 1; attempt <= cfg_.max_attempts; ++attempt) {
      try {
        d = deliver(it);
      } catch (const std::exception& e) {
        d = {false, true, e.what()};
      }
      if (d.ok) {
        delivered_.Increment();
        return true;
      }
      if (!d.retryable || attempt == cfg_.max_attempts) break;
      retried_.Increment();
      std::unique_lock l(mu_);
      if (cv_.wait_for(l, std::chrono::milliseconds(delay), [&] { return stopping_; }) &&
          std::chrono::steady_clock::now() >= deadline_) {
        l.unlock();
        write_deadletter(it, "dashboard stopping after: " + d.error, attempt);
        return false;
      }
      delay = std::min(delay * 2, cfg_.max_backoff_ms);
    }
    dead_.Increment();
    log()->warn("notifier {}: giving up on {} notification {}: {}", label_, it.event, it.id,
                d.error);
    write_deadletter(it, d.error, cfg_.max_attempts);
    return true;
  }

  void write_deadletter(const Item& it, const std::string& error, int64_t attempts) {
    if (!deadletters_) return;
    json j = {{"destination", label_}, {"error", error}, {"attempts", attempts}};
    j["notification"] = json::parse(it.body, nullptr, false);
    std::lock_guard l(*deadletter_mu_);
    const auto r = deadletters_->append(dump(j));
    if (!r.ok) log()->error("notifier: dead letter lost: {}", r.error);
  }

  std::string label_;
  const NotifierConfig& cfg_;
  LineFile* deadletters_;
  std::mutex* deadletter_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point deadline_{};
  std::thread thread_;
  common::LogThrottle drop_log_;
  prometheus::Family<prometheus::Counter>& family_;
  prometheus::Counter &delivered_, &retried_, &dead_, &dropped_;
  prometheus::Gauge& queued_;
};

namespace {

class WebhookDestination final : public Notifier::Destination {
 public:
  WebhookDestination(const std::string& url, const NotifierConfig& cfg,
                     prometheus::Registry& registry, LineFile* dl, std::mutex* dl_mu,
                     const common::Clock& clock)
      : Destination(label_of(url), cfg, registry, dl, dl_mu), cfg_(cfg), clock_(clock) {
    const auto scheme_end = url.find("://");
    const auto path_start = url.find('/', scheme_end + 3);
    origin_ = url.substr(0, path_start);
    path_ = path_start == std::string::npos ? "/" : url.substr(path_start);
  }

  // "webhook:host:port" (never the path or query, which may hold a token).
  static std::string label_of(const std::string& url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos ||
        (url.compare(0, scheme_end, "http") != 0 && url.compare(0, scheme_end, "https") != 0))
      throw std::invalid_argument("webhook URL must start with http:// or https://: " + url);
    const auto host_end = url.find_first_of("/?#", scheme_end + 3);
    const std::string host =
        url.substr(scheme_end + 3,
                   host_end == std::string::npos ? std::string::npos : host_end - scheme_end - 3);
    if (host.empty() || host.find('@') != std::string::npos)
      throw std::invalid_argument("webhook URL needs a host (and no user:password@): " + url);
    return "webhook:" + host;
  }

 protected:
  Delivery deliver(const Item& it) override {
    httplib::Client client(origin_);
    const auto t = std::chrono::milliseconds(cfg_.timeout_ms);
    client.set_connection_timeout(t);
    client.set_read_timeout(t);
    client.set_write_timeout(t);
    const std::string ts = std::to_string(clock_.now_unix_nanos() / 1'000'000'000);
    httplib::Headers headers = {
        {"X-Immunizer-Event", "incident." + it.event},
        {"X-Immunizer-Delivery", it.id},
        {"X-Immunizer-Timestamp", ts},
        {"X-Immunizer-Signature", "sha256=" + webhook_signature(cfg_.webhook_secret, ts, it.body)},
        {"User-Agent", "immunizer-dashboard"}};
    auto res = client.Post(path_, headers, it.body, "application/json");
    if (!res) return {false, true, "POST " + origin_ + ": " + httplib::to_string(res.error())};
    if (res->status >= 200 && res->status < 300) return {true, false, ""};
    // 408/429 and 5xx are worth another try; any other answer will not change.
    const bool retry = res->status == 408 || res->status == 429 || res->status >= 500;
    return {false, retry, "POST " + origin_ + " answered " + std::to_string(res->status)};
  }

 private:
  const NotifierConfig& cfg_;
  const common::Clock& clock_;
  std::string origin_, path_;
};

class JsonlDestination final : public Notifier::Destination {
 public:
  JsonlDestination(const NotifierConfig& cfg, prometheus::Registry& registry, LineFile* dl,
                   std::mutex* dl_mu)
      : Destination("jsonl", cfg, registry, dl, dl_mu), file_(cfg.jsonl_path) {}

 protected:
  Delivery deliver(const Item& it) override { return file_.append(it.body); }

 private:
  LineFile file_;
};

}  // namespace

// Shared by every destination of one notifier.
struct Notifier::DeadLetterSink {
  std::mutex mu;
  std::unique_ptr<LineFile> file;
};

Notifier::Notifier(NotifierConfig cfg, prometheus::Registry& registry, const common::Clock& clock)
    : cfg_(std::move(cfg)), clock_(clock) {
  if (!cfg_.webhook_urls.empty() && cfg_.webhook_secret.empty())
    throw std::invalid_argument(
        "a webhook needs a signing secret (dashboard.notify_webhook_secret)");
  // A short HMAC key can be guessed offline from one signed delivery.
  if (!cfg_.webhook_urls.empty() && cfg_.webhook_secret.size() < 32)
    throw std::invalid_argument(
        "dashboard.notify_webhook_secret: " + std::to_string(cfg_.webhook_secret.size()) +
        " bytes; at least 32 are required (e.g. head -c 32 /dev/urandom | base64)");
  for (const auto& e : cfg_.events)
    if (e != "opened" && e != "escalated" && e != "resolved")
      throw std::invalid_argument("unknown notification event '" + e +
                                  "' (opened, escalated, resolved)");
  cfg_.max_attempts = std::max<int64_t>(1, cfg_.max_attempts);
  cfg_.queue = std::max<int64_t>(1, cfg_.queue);
  deadletters_ = std::make_unique<DeadLetterSink>();
  auto& dl = *deadletters_;
  if (!cfg_.deadletter_path.empty()) dl.file = std::make_unique<LineFile>(cfg_.deadletter_path);
  for (const auto& url : cfg_.webhook_urls)
    dests_.push_back(
        std::make_unique<WebhookDestination>(url, cfg_, registry, dl.file.get(), &dl.mu, clock_));
  if (!cfg_.jsonl_path.empty())
    dests_.push_back(std::make_unique<JsonlDestination>(cfg_, registry, dl.file.get(), &dl.mu));
  for (auto& d : dests_) d->start();
}

Notifier::~Notifier() { stop(std::chrono::milliseconds(0)); }

void Notifier::stop(std::chrono::milliseconds drain) {
  const auto deadline = std::chrono::steady_clock::now() + drain;
  for (auto& d : dests_) d->stop(deadline);
}

void Notifier::notify(const std::string& event, const json& incident) {
  if (dests_.empty() ||
      std::find(cfg_.events.begin(), cfg_.events.end(), event) == cfg_.events.end())
    return;
  Destination::Item it;
  it.event = event;
  it.id = common::random_id();
  it.body = dump({{"type", "incident." + event},
                  {"delivery_id", it.id},
                  {"at_unix_nanos", clock_.now_unix_nanos()},
                  {"incident", incident}});
  for (auto& d : dests_) d->push(it);
}

}  // namespace immunizer::dashboard
