// HttpServer's limits against hostile clients on 127.0.0.1: oversized bodies refused from
// their Content-Length without being read (RSS measured), slow-header sockets that do not
// stop /healthz, the connection limit, header and body deadlines, refused body framings,
// and that ordinary keep-alive and pipelined requests still work.
#include "immunizer/common/http_server.hpp"

#include "immunizer/common/config.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using immunizer::common::HttpLimits;
using immunizer::common::HttpServer;
using namespace std::chrono_literals;

namespace {

long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until the peer closes, `until` appears, or the timeout.
std::string read_some(int fd, std::chrono::milliseconds timeout, std::string_view until = {}) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1))) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (!until.empty() && out.find(until) != std::string::npos) break;
  }
  return out;
}

// Whether the peer closes the connection within `timeout`, reading (and dropping) whatever it
// sends first: a server that answers 408 and then closes wakes poll() with the answer, and the
// end of the stream may arrive a moment later.
bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
  }
}

double refused(HttpServer& s, const std::string& reason) {
  httplib::Client c("127.0.0.1", s.port());
  auto r = c.Get("/metrics");
  if (!r) return -1;
  const std::string key = "immunizer_http_refused_total{reason=\"" + reason + "\"} ";
  const auto at = r->body.find(key);
  return at == std::string::npos ? -1 : std::stod(r->body.substr(at + key.size()));
}

struct Started {
  explicit Started(HttpLimits l = {})
      : server("127.0.0.1", 0, std::make_shared<prometheus::Registry>(), l) {
    server.routes().Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(std::to_string(req.body.size()), "text/plain");
    });
    server.start();
    server.set_ready(true);
  }
  HttpServer server;
};

}  // namespace

TEST(HttpServer, FiftyMegabyteBodyIsRefusedEarlyWith413AndNotBuffered) {
  Started s;
  const std::string chunk(64 * 1024, 'x');
  const long before = rss_kb();
  ASSERT_GT(before, 0);
  const int fd = connect_to(s.server.port());
  ASSERT_GE(fd, 0);
  const size_t total = 50u * 1024 * 1024;
  ASSERT_TRUE(send_all(
      fd,
      "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
          std::to_string(total) + "\r\n\r\n"));
  // Send the body as a client that does not wait would, reading the answer as soon as it comes.
  std::string answer;
  size_t sent = 0, sent_at_answer = 0, next_sample = 0;
  long peak = before;  // sampled while sending: a buffered body is freed once handled
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (sent < total && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN | POLLOUT, 0};
    if (::poll(&p, 1, 2000) <= 0) break;
    if ((p.revents & POLLIN) && answer.empty()) {
      answer = read_some(fd, 500ms, "\r\n\r\n");
      sent_at_answer = sent;
      if (answer.empty()) break;  // closed
    }
    if (p.revents & (POLLERR | POLLHUP)) break;
    if (sent >= next_sample) {
      peak = std::max(peak, rss_kb());
      next_sample = sent + 512 * 1024;
    }
    if (p.revents & POLLOUT) {
      const ssize_t n = ::send(fd, chunk.data(), std::min(chunk.size(), total - sent),
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN) break;
      if (n > 0) sent += static_cast<size_t>(n);
    }
  }
  if (answer.empty()) answer = read_some(fd, 2s, "\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  peak = std::max(peak, rss_kb());
  ::close(fd);
  const long grown_kb = peak - before;
  std::cout << "sent " << sent << " bytes of the body (" << sent_at_answer
            << " when the answer came); peak RSS grew " << grown_kb << " kB" << std::endl;
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
  EXPECT_LT(sent_at_answer, 8u * 1024 * 1024)
      << "the 413 came only after most of the body was sent";
  EXPECT_LT(grown_kb, 4 * 1024);
  EXPECT_EQ(refused(s.server, "body_too_large"), 1);
}

TEST(HttpServer, TenSlowHeaderSocketsDoNotStopHealthz) {
  Started s;
  std::vector<int> slow;
  for (int i = 0; i < 10; ++i) {
    const int fd = connect_to(s.server.port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "));
    slow.push_back(fd);
  }
  std::this_thread::sleep_for(200ms);  // let the server pick them all up
  for (int fd : slow) ASSERT_TRUE(send_all(fd, "a"));
  httplib::Client c("127.0.0.1", s.server.port());
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(1, 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.Get("/healthz");
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::cout << "/healthz with 10 slow-header sockets open: " << took.count() << " ms" << std::endl;
  ASSERT_TRUE(r) << "no answer within 1 s";
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(took, 1000ms);
  for (int fd : slow) ::close(fd);
}

TEST(HttpServer, AHeadNotCompleteInTimeIsAnswered408AndClosed) {
  HttpLimits l;
  l.header_timeout = 300ms;
  Started s(l);
  const int fd = connect_to(s.server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n"));
  // Trickling bytes does not extend the deadline.
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(50ms);
    send_all(fd, "X");
  }
  const std::string answer = read_some(fd, 2s);
  EXPECT_EQ(answer.rfind("HTTP/1.1 408", 0), 0u) << answer;
  ::close(fd);
  EXPECT_EQ(refused(s.server, "header_timeout"), 1);
}

TEST(HttpServer, ABodyNotCompleteInTimeFreesTheWorker) {
  HttpLimits l;
  l.read_timeout = 300ms;
  l.worker_threads = 1;
  Started s(l);
  const int fd = connect_to(s.server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(
      send_all(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789"));
  EXPECT_TRUE(closed_by_peer(fd, 2000ms));
  ::close(fd);
  httplib::Client c("127.0.0.1", s.server.port());
  auto r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(refused(s.server, "body_timeout"), 1);
}

TEST(HttpServer, ConnectionsOverTheLimitAreAnswered503) {
  HttpLimits l;
  l.max_connections = 3;
  Started s(l);
  std::vector<int> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(connect_to(s.server.port()));
  std::this_thread::sleep_for(100ms);
  const int extra = connect_to(s.server.port());
  ASSERT_GE(extra, 0);
  const std::string answer = read_some(extra, 2s);
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  ::close(extra);
  for (int fd : idle) ::close(fd);
  std::this_thread::sleep_for(100ms);
  httplib::Client c("127.0.0.1", s.server.port());
  auto r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(refused(s.server, "connection_limit"), 1);
}

TEST(HttpServer, OversizedHeadChunkedAndCompressedBodiesAreRefused) {
  Started s;
  struct Case {
    std::string request;
    const char* status;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", "431",
       "header_too_large"},
      {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
       "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "411", "transfer_encoding"},
      {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
       "415", "content_encoding"},
      {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
       "400", "bad_request"},
  };
  for (const auto& c : cases) {
    const int fd = connect_to(s.server.port());
    ASSERT_GE(fd, 0);
    send_all(fd, c.request);
    const std::string answer = read_some(fd, 2s, "\r\n\r\n");
    EXPECT_EQ(answer.rfind(std::string("HTTP/1.1 ") + c.status, 0), 0u)
        << c.reason << ": " << answer;
    ::close(fd);
    EXPECT_EQ(refused(s.server, c.reason), 1) << c.reason;
  }
}

TEST(HttpServer, KeepAlivePipeliningAndBodiesWithinTheLimitWork) {
  Started s;
  httplib::Client c("127.0.0.1", s.server.port());
  c.set_keep_alive(true);
  for (int i = 0; i < 3; ++i) {
    auto r = c.Post("/echo", std::string(1000, 'b'), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "1000");
  }
  const int fd = connect_to(s.server.port());
  ASSERT_GE(fd, 0);
  // Two requests in one write; a POST without Content-Length has an empty body.
  send_all(fd,
           "POST /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: "
           "close\r\n\r\n");
  const std::string answers = read_some(fd, 2s);
  ::close(fd);
  EXPECT_EQ(answers.rfind("HTTP/1.1 200", 0), 0u) << answers;
  EXPECT_NE(answers.find("\r\n\r\n0HTTP/1.1 200"), std::string::npos) << answers;
  EXPECT_NE(answers.find("ok\n"), std::string::npos) << answers;
}

TEST(HttpServer, LimitsComeFromTheHttpKeys) {
  auto c = immunizer::common::Config::from_map({{"http.max_body_bytes", "1024"},
                                                {"http.max_connections", "10"},
                                                {"http.header_timeout_ms", "700"}});
  const auto l = HttpLimits::from_config(c);
  EXPECT_EQ(l.max_body_bytes, 1024u);
  EXPECT_EQ(l.max_connections, 10);
  EXPECT_EQ(l.header_timeout, 700ms);
  EXPECT_NO_THROW(c.reject_unknown());
  EXPECT_THROW(
      HttpLimits::from_config(immunizer::common::Config::from_map({{"http.max_connections", "0"}})),
      immunizer::common::ConfigError);
}
