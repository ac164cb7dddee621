#include "immunizer/replay/replayer.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <mutex>
#include <thread>

using namespace immunizer;

TEST(Replayer, TargetParsing) {
  auto t = replay::Target::parse("http://127.0.0.1:9999/x");
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(t.port, 9999);
  EXPECT_THROW(replay::Target::parse("https://a:1"), std::invalid_argument);
  EXPECT_THROW(replay::Target::parse("http://a:notaport"), std::invalid_argument);
}

TEST(Replayer, InterleaveKeepsProportionAndEverything) {
  std::vector<monitor::csic::Request> a(6), b(3);
  for (size_t i = 0; i < a.size(); ++i) a[i].method = "A";
  for (size_t i = 0; i < b.size(); ++i) b[i].method = "B";
  auto m = replay::interleave(a, b);
  ASSERT_EQ(m.size(), 9u);
  std::string seq;
  for (auto& r : m) seq += r.method;
  EXPECT_EQ(seq, "ABAABAABA");
}

// Sends the requests as they are: method, raw target, headers, body, session and trace.
TEST(Replayer, SendsRequestsAsTheyAreWithSessionOverride) {
  httplib::Server srv;
  std::mutex mu;
  std::vector<std::string> seen;
  srv.Post(".*", [&](const httplib::Request& r, httplib::Response& res) {
    std::lock_guard<std::mutex> g(mu);
    seen.push_back(r.method + " " + r.target + " " + r.get_header_value("Cookie") + " " +
                   r.get_header_value("X-Immunizer-Trace") + " " +
                   r.get_header_value("X-Forwarded-For") + " " + r.body);
    res.status = seen.size() >= 2 ? 403 : 200;
  });
  const int port = srv.bind_to_any_port("127.0.0.1");
  std::thread th([&] { srv.listen_after_bind(); });
  auto reqs = monitor::csic::parse(
      "POST http://localhost:8080/tienda1/publico/anadir.jsp?x=%27a HTTP/1.1\r\nCookie: "
      "JSESSIONID=ORIG\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nid=2%2F\r\n\r\n"
      "POST http://localhost:8080/tienda1/publico/anadir.jsp HTTP/1.1\r\nCookie: "
      "JSESSIONID=ORIG\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\nb=1\r\n\r\n"
      "POST http://localhost:8080/tienda1/publico/anadir.jsp HTTP/1.1\r\nCookie: "
      "JSESSIONID=ORIG\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\nc=1\r\n\r\n");
  ASSERT_EQ(reqs.size(), 3u);
  replay::SendOptions o;
  o.concurrency = 1;
  o.session_override = "ATK";
  o.ip = "203.0.113.66";
  o.trace_prefix = "attack";
  int answers = 0;
  o.on_answer = [&](const replay::Sent& s) { return ++answers < 2 || s.status != 403; };
  std::atomic<bool> stop{false};
  auto sum = replay::send_all({"127.0.0.1", port}, reqs, o, stop, "t");
  srv.stop();
  th.join();
  EXPECT_EQ(sum.sent, 2u) << "stops when on_answer says so";
  EXPECT_EQ(sum.ok, 1u);
  EXPECT_EQ(sum.forbidden, 1u);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0],
            "POST /tienda1/publico/anadir.jsp?x=%27a JSESSIONID=ATK attack:0 203.0.113.66 id=2%2F");
}
