#include "immunizer/common/http_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <optional>
#include <stdexcept>
#include <vector>

#include "immunizer/common/build_info.hpp"
#include "immunizer/common/config.hpp"
#include "immunizer/common/logging.hpp"

namespace immunizer::common {

HttpLimits HttpLimits::from_config(const Config& c) {
  HttpLimits l;
  l.max_body_bytes = static_cast<size_t>(
      c.get_int("http.max_body_bytes", static_cast<int64_t>(l.max_body_bytes), 0, 1LL << 30));
  l.max_connections =
      static_cast<int>(c.get_int("http.max_connections", l.max_connections, 1, 1000));
  l.worker_threads = static_cast<int>(c.get_int("http.worker_threads", l.worker_threads, 1, 1000));
  l.header_timeout = std::chrono::milliseconds(
      c.get_int("http.header_timeout_ms", l.header_timeout.count(), 50, 600'000));
  l.read_timeout = std::chrono::milliseconds(
      c.get_int("http.read_timeout_ms", l.read_timeout.count(), 50, 600'000));
  l.keep_alive_timeout = std::chrono::milliseconds(
      c.get_int("http.keep_alive_timeout_ms", l.keep_alive_timeout.count(), 50, 600'000));
  return l;
}

namespace {

using SteadyClock = std::chrono::steady_clock;

int remaining_ms(SteadyClock::time_point deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

// Waits for `events` on fd until the deadline; true when ready (or in error: the next
// read/write reports it).
bool wait_fd(int fd, short events, SteadyClock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0 && SteadyClock::now() >= deadline) return false;
    if (r == 0) continue;
    if (errno != EINTR) return false;
  }
}

void ip_and_port(const sockaddr_storage& a, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (a.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf);
    port = ntohs(s->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf);
    port = ntohs(s->sin6_port);
  } else {
    port = -1;
  }
  ip = buf;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

// One client connection. Owned by the poller while its next request head is awaited, by a
// worker while a request runs; never by both.
struct HttpConn {
  int fd = -1;
  std::string in;  // bytes received and not yet consumed by httplib
  size_t pos = 0;  // consumed prefix of `in`
  SteadyClock::time_point deadline;
  bool in_head = false;   // the current head's first byte has arrived
  bool draining = false;  // refused: reading and discarding what the client still sends
  size_t drained = 0;
  int requests = 0;
  SteadyClock::time_point read_deadline;
  std::string remote_ip, local_ip;
  int remote_port = -1, local_port = -1;
};

// httplib's Stream over an HttpConn: buffered head bytes first, then the socket, every
// wait bounded by the request's deadlines.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(HttpConn& c, std::chrono::milliseconds write_timeout)
      : c_(c), write_timeout_(write_timeout) {}
  bool is_readable() const override {
    return c_.pos < c_.in.size() || wait_fd(c_.fd, POLLIN, c_.read_deadline);
  }
  bool is_writable() const override {
    if (!wait_fd(c_.fd, POLLOUT, SteadyClock::now() + write_timeout_)) return false;
    // Alive unless the peer has closed (readable with nothing to read).
    pollfd p{c_.fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) {
      char b;
      if (::recv(c_.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) return false;
    }
    return true;
  }
  ssize_t read(char* ptr, size_t size) override {
    if (c_.pos < c_.in.size()) {
      const size_t n = std::min(size, c_.in.size() - c_.pos);
      std::memcpy(ptr, c_.in.data() + c_.pos, n);
      c_.pos += n;
      return static_cast<ssize_t>(n);
    }
    for (;;) {
      if (!wait_fd(c_.fd, POLLIN, c_.read_deadline)) {
        failed_ = true;
        timed_out_ = true;
        return -1;
      }
      const ssize_t n = ::recv(c_.fd, ptr, size, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) failed_ = true;
      return n;
    }
  }
  // A read failed or timed out: what is left of the request may still arrive, so the
  // connection cannot carry another request.
  bool failed() const { return failed_; }
  bool timed_out() const { return timed_out_; }
  ssize_t write(const char* ptr, size_t size) override {
    for (;;) {
      if (!wait_fd(c_.fd, POLLOUT, SteadyClock::now() + write_timeout_)) return -1;
      const ssize_t n = ::send(c_.fd, ptr, size, MSG_NOSIGNAL);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return n;
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.remote_ip;
    port = c_.remote_port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.local_ip;
    port = c_.local_port;
  }
  socket_t socket() const override { return c_.fd; }

 private:
  HttpConn& c_;
  std::chrono::milliseconds write_timeout_;
  bool failed_ = false, timed_out_ = false;
};

class HttpEngine final : public httplib::Server {
 public:
  HttpEngine(prometheus::Registry& registry)
      : refused_family_(counter_family(
            registry, "immunizer_http_refused_total",
            "HTTP requests or connections refused by the server's limits, by reason")),
        connections_(
            register_gauge(registry, "immunizer_http_connections", "Open HTTP connections")),
        log_(logger("http")) {
    // Register every reason up front, so the series exist (at 0) before anything happens.
    for (const char* r :
         {"connection_limit", "header_timeout", "header_too_large", "body_too_large",
          "transfer_encoding", "content_encoding", "bad_request", "body_timeout"})
      refused_family_.Add({{"reason", r}});
  }
  ~HttpEngine() override { stop_serving(); }

  // Binds; returns the port or throws.
  int bind_listener(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res) != 0 ||
        !res)
      return -1;
    int fd = -1;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      if (fd < 0) continue;
      int yes = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 128) == 0) break;
      ::close(fd);
      fd = -1;
    }
    ::freeaddrinfo(res);
    if (fd < 0) return -1;
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    std::string ip;
    int bound = -1;
    ip_and_port(a, ip, bound);
    listen_fd_ = fd;
    return bound;
  }

  void start_serving(const HttpLimits& limits) {
    limits_ = limits;
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    svr_sock_ = listen_fd_;  // httplib's "not shutting down" test for streaming responses
    stopping_ = false;
    poller_ = std::thread([this] { poll_loop(); });
    for (int i = 0; i < std::max(1, limits_.worker_threads); ++i)
      workers_.emplace_back([this] { work_loop(); });
  }

  void stop_serving() {
    if (!poller_.joinable()) {
      if (listen_fd_ >= 0) ::close(listen_fd_);
      listen_fd_ = -1;
      return;
    }
    svr_sock_ = INVALID_SOCKET;  // streaming responses end at their next chunk
    {
      std::lock_guard l(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    wake();
    poller_.join();
    for (auto& w : workers_) w.join();
    workers_.clear();
    for (auto* c : ready_) close_conn(c);
    for (auto* c : returned_) close_conn(c);
    ready_.clear();
    returned_.clear();
    ::close(wake_fd_);
    wake_fd_ = -1;
  }

 private:
  void wake() {
    const uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
  }

  void close_conn(HttpConn* c) {
    ::close(c->fd);
    delete c;
    open_.fetch_sub(1);
    connections_.Decrement();
  }

  void count_refusal(const char* reason, const HttpConn& c) {
    refused_family_.Add({{"reason", reason}}).Increment();
    log_->debug("refused a request from {}:{}: {}", c.remote_ip, c.remote_port, reason);
  }

  // Answers with `status` and closes the connection after a short drain (so the answer is
  // not lost to a reset when the client is still sending).
  void refuse(HttpConn* c, int status, const char* reason, std::string_view text) {
    count_refusal(reason, *c);
    std::string r =
        "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
        "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(text.size() + 1) +
        "\r\nConnection: close\r\n\r\n" + std::string(text) + "\n";
    [[maybe_unused]] auto n = ::send(c->fd, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(c->fd, SHUT_WR);
    c->draining = true;
    c->drained = 0;
    c->in.clear();
    c->pos = 0;
    c->deadline = SteadyClock::now() + std::chrono::seconds(1);
  }

  // Looks at the buffered head of `c`: nullopt while incomplete, true when a request may
  // be run, false when it was refused.
  std::optional<bool> check_head(HttpConn* c) {
    const std::string_view buf(c->in.data() + c->pos, c->in.size() - c->pos);
    const size_t end = buf.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (buf.size() > limits_.max_header_bytes) {
        refuse(c, 431, "header_too_large", "request head larger than the server's limit");
        return false;
      }
      return std::nullopt;
    }
    if (end + 4 > limits_.max_header_bytes) {
      refuse(c, 431, "header_too_large", "request head larger than the server's limit");
      return false;
    }
    const std::string_view head = buf.substr(0, end + 2);
    size_t line_end = head.find("\r\n");
    const std::string_view request_line = head.substr(0, line_end);
    const std::string_view method = request_line.substr(0, request_line.find(' '));
    bool has_length = false;
    uint64_t length = 0;
    for (size_t at = line_end + 2; at < head.size();) {
      const size_t e = head.find("\r\n", at);
      const std::string_view line = head.substr(at, e - at);
      at = e + 2;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = trim(line.substr(colon + 1));
      if (iequals(name, "Transfer-Encoding")) {
        refuse(c, 411, "transfer_encoding",
               "chunked request bodies are not accepted: send a Content-Length");
        return false;
      }
      if (iequals(name, "Content-Encoding") && !iequals(value, "identity")) {
        refuse(c, 415, "content_encoding", "compressed request bodies are not accepted");
        return false;
      }
      if (iequals(name, "Content-Length")) {
        uint64_t v = 0;
        bool ok = !value.empty() && value.size() <= 18;
        for (char ch : value)
          ok = ok && ch >= '0' && ch <= '9', v = v * 10 + static_cast<uint64_t>(ch - '0');
        if (!ok || (has_length && v != length)) {
          refuse(c, 400, "bad_request", "malformed Content-Length");
          return false;
        }
        has_length = true;
        length = v;
      }
    }
    if (length > limits_.max_body_bytes) {
      refuse(c, 413, "body_too_large",
             "request body of " + std::to_string(length) + " bytes is over the limit of " +
                 std::to_string(limits_.max_body_bytes));
      return false;
    }
    if (!has_length && (method == "POST" || method == "PUT" || method == "PATCH" ||
                        method == "DELETE" || method == "PRI")) {
      // No Content-Length and no Transfer-Encoding: the body is empty (RFC 9112 6.3); say so,
      // or httplib would read until the client closes.
      c->in.insert(c->pos + end + 2, "Content-Length: 0\r\n");
    }
    return true;
  }

  void accept_all() {
    for (;;) {
      sockaddr_storage a{};
      socklen_t len = sizeof a;
      const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len,
                               SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;  // EAGAIN, or a transient error: poll again
      auto* c = new HttpConn;
      c->fd = fd;
      ip_and_port(a, c->remote_ip, c->remote_port);
      sockaddr_storage l{};
      socklen_t llen = sizeof l;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&l), &llen) == 0)
        ip_and_port(l, c->local_ip, c->local_port);
      int yes = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
      open_.fetch_add(1);
      connections_.Increment();
      c->deadline = SteadyClock::now() + limits_.header_timeout;
      if (open_.load() > limits_.max_connections) {
        refuse(c, 503, "connection_limit", "too many connections");
      }
      waiting_.push_back(c);
    }
  }

  // Receives what is available; false when the connection is finished.
  bool receive(HttpConn* c) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      if (c->draining) {
        c->drained += static_cast<size_t>(n);
        if (c->drained > 1024 * 1024) return false;
        continue;
      }
      if (!c->in_head) {
        c->in_head = true;
        c->deadline = SteadyClock::now() + limits_.header_timeout;
      }
      c->in.append(buf, static_cast<size_t>(n));
      if (c->in.size() - c->pos > limits_.max_header_bytes) return true;  // check_head refuses
      if (static_cast<size_t>(n) < sizeof buf) return true;
    }
  }

  void dispatch(HttpConn* c) {
    {
      std::lock_guard l(mu_);
      ready_.push_back(c);
    }
    cv_.notify_one();
  }

  // Takes back the connections the workers are done with; false once stopping.
  bool take_returned() {
    std::lock_guard l(mu_);
    if (stopping_) return false;
    for (auto* c : returned_) {
      c->in.erase(0, c->pos);
      c->pos = 0;
      c->in_head = !c->in.empty();
      c->deadline =
          SteadyClock::now() + (c->in_head ? limits_.header_timeout : limits_.keep_alive_timeout);
      waiting_.push_back(c);
    }
    returned_.clear();
    return true;
  }

  // Heads already complete (pipelined requests) run at once.
  void dispatch_complete_heads() {
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      HttpConn* c = *it;
      if (c->draining || c->in.size() == c->pos) {
        ++it;
        continue;
      }
      auto verdict = check_head(c);
      if (verdict && *verdict) {
        it = waiting_.erase(it);
        dispatch(c);
      } else {
        ++it;
      }
    }
  }

  // The waiting connections after a poll over `fds` (wake, listener, then waiting_ in
  // order): read what arrived, dispatch complete heads, close or refuse what timed out.
  void serve_polled(const std::vector<pollfd>& fds) {
    const auto now = SteadyClock::now();
    // waiting_ may grow below (accepts); only the first fds.size()-2 entries were polled.
    std::vector<HttpConn*> keep;
    keep.reserve(waiting_.size());
    size_t i = 2;
    for (auto* c : waiting_) {
      const short ev = i < fds.size() ? fds[i].revents : 0;
      ++i;
      if (ev & (POLLIN | POLLHUP | POLLERR)) {
        if (!receive(c)) {
          close_conn(c);
          continue;
        }
        if (!c->draining) {
          auto verdict = check_head(c);
          if (verdict && *verdict) {
            dispatch(c);
            continue;
          }
        }
      }
      if (now >= c->deadline) {
        if (c->draining || !c->in_head) {
          close_conn(c);  // drained, or idle keep-alive
          continue;
        }
        refuse(c, 408, "header_timeout", "request head not received in time");
      }
      keep.push_back(c);
    }
    waiting_ = std::move(keep);
  }

  void poll_loop() {
    std::vector<pollfd> fds;
    while (take_returned()) {
      dispatch_complete_heads();
      fds.clear();
      fds.push_back({wake_fd_, POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      auto next = SteadyClock::now() + std::chrono::seconds(1);
      for (auto* c : waiting_) {
        fds.push_back({c->fd, POLLIN, 0});
        next = std::min(next, c->deadline);
      }
      const int r = ::poll(fds.data(), fds.size(), remaining_ms(next));
      if (r < 0 && errno != EINTR) break;
      if (fds[0].revents & POLLIN) {
        uint64_t v;
        [[maybe_unused]] auto n = ::read(wake_fd_, &v, sizeof v);
      }
      serve_polled(fds);
      if (fds[1].revents & POLLIN) accept_all();
    }
    for (auto* c : waiting_) close_conn(c);
    waiting_.clear();
    ::close(listen_fd_);
    listen_fd_ = -1;
  }

  void work_loop() {
    for (;;) {
      HttpConn* c = nullptr;
      {
        std::unique_lock l(mu_);
        cv_.wait(l, [this] { return stopping_ || !ready_.empty(); });
        if (stopping_) return;
        c = ready_.front();
        ready_.pop_front();
      }
      c->read_deadline = SteadyClock::now() + limits_.read_timeout;
      ConnStream s(*c, limits_.write_timeout);
      const bool last = ++c->requests >= limits_.keep_alive_max_requests;
      bool closed = false;
      const bool ok = process_request(s, last, closed, nullptr);
      if (s.timed_out()) count_refusal("body_timeout", *c);
      bool back = false;
      if (ok && !closed && !last && !s.failed()) {
        std::lock_guard l(mu_);
        if (!stopping_) {
          returned_.push_back(c);
          back = true;
        }
      }
      if (back) {
        wake();
      } else {
        close_conn(c);
      }
    }
  }

  HttpLimits limits_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::thread poller_;
  std::vector<std::thread> workers_;
  std::vector<HttpConn*> waiting_;  // poller thread only
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<HttpConn*> ready_;      // complete heads awaiting a worker
  std::vector<HttpConn*> returned_;  // keep-alive connections back from a worker
  bool stopping_ = false;
  std::atomic<int> open_{0};
  prometheus::Family<prometheus::Counter>& refused_family_;
  prometheus::Gauge& connections_;
  std::shared_ptr<spdlog::logger> log_;
};

HttpServer::HttpServer(std::string listen, int port, std::shared_ptr<prometheus::Registry> registry,
                       HttpLimits limits)
    : listen_(std::move(listen)),
      port_(port),
      registry_(std::move(registry)),
      limits_(limits),
      engine_(std::make_unique<HttpEngine>(*registry_)) {
  register_build_info(*registry_);
  engine_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    prometheus::TextSerializer ser;
    res.set_content(ser.Serialize(registry_->Collect()), "text/plain; version=0.0.4");
  });
  engine_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  engine_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(status_mu_);
    res.status = ready_ && broker_reachable_ ? 200 : 503;
    res.set_content((broker_reachable_ ? status_ : "kafka unreachable: " + broker_why_) + "\n",
                    "text/plain");
  });
}

HttpServer::~HttpServer() { stop(); }

httplib::Server& HttpServer::routes() { return *engine_; }

void HttpServer::set_status(std::string s) {
  std::lock_guard<std::mutex> lock(status_mu_);
  status_ = std::move(s);
}

void HttpServer::set_broker_reachable(bool reachable, std::string why) {
  std::lock_guard<std::mutex> lock(status_mu_);
  broker_reachable_ = reachable;
  broker_why_ = std::move(why);
}

void HttpServer::start() {
  bound_port_ = engine_->bind_listener(listen_, port_);
  if (bound_port_ <= 0)
    throw std::runtime_error("cannot listen on http " + listen_ + ":" + std::to_string(port_) +
                             " (in use? set http.port)");
  engine_->start_serving(limits_);
}

void HttpServer::stop() { engine_->stop_serving(); }

}  // namespace immunizer::common
