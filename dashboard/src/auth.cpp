#include "immunizer/dashboard/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <fstream>
#include <stdexcept>

#include "immunizer/common/config.hpp"

namespace immunizer::dashboard {

namespace {

constexpr int64_t kMinute = 60'000'000'000LL;
constexpr int kMinIterations = 10'000;

std::string sha256(std::string_view a, std::string_view b = {}) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, a.data(), a.size());
  const unsigned char sep = 0;
  EVP_DigestUpdate(ctx, &sep, 1);
  EVP_DigestUpdate(ctx, b.data(), b.size());
  EVP_DigestFinal_ex(ctx, out, nullptr);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

bool equal_digests(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string b64encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> b64decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  std::string out(3 * in.size() / 4 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t len = static_cast<size_t>(n);
  for (size_t i = in.size(); i > 0 && in[i - 1] == '='; --i)
    --len;  // EVP_DecodeBlock keeps padding bytes
  out.resize(len);
  return out;
}

std::optional<std::string> pbkdf2(std::string_view password, std::string_view salt, int iterations,
                                  size_t len) {
  std::string out(len, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(),
                        static_cast<int>(len), reinterpret_cast<unsigned char*>(out.data())) != 1)
    return std::nullopt;
  return out;
}

struct Parsed {
  int iterations;
  std::string salt, hash;
};

std::optional<Parsed> parse_hash(std::string_view encoded) {
  static constexpr std::string_view kPrefix = "pbkdf2-sha256$";
  if (encoded.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  encoded.remove_prefix(kPrefix.size());
  const size_t a = encoded.find('$');
  if (a == std::string_view::npos) return std::nullopt;
  const size_t b = encoded.find('$', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  Parsed p{};
  try {
    size_t used = 0;
    const std::string it(encoded.substr(0, a));
    p.iterations = std::stoi(it, &used);
    if (used != it.size()) return std::nullopt;
  } catch (...) {
    return std::nullopt;
  }
  if (p.iterations < kMinIterations || p.iterations > 100'000'000) return std::nullopt;
  auto salt = b64decode(encoded.substr(a + 1, b - a - 1));
  auto hash = b64decode(encoded.substr(b + 1));
  if (!salt || !hash || salt->size() < 8 || hash->size() < 16) return std::nullopt;
  p.salt = std::move(*salt);
  p.hash = std::move(*hash);
  return p;
}

std::string trim_line(std::string s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

}  // namespace

std::string role_name(Role r) { return r == Role::kOperator ? "operator" : "viewer"; }

std::string random_token(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes);
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string hash_password(std::string_view password, int iterations) {
  if (iterations < kMinIterations) throw std::invalid_argument("at least 10000 PBKDF2 iterations");
  std::string salt(16, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) != 1)
    throw std::runtime_error("RAND_bytes failed");
  auto h = pbkdf2(password, salt, iterations, 32);
  if (!h) throw std::runtime_error("PBKDF2 failed");
  return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + b64encode(salt) + "$" +
         b64encode(*h);
}

bool verify_password(std::string_view password, std::string_view encoded) {
  auto p = parse_hash(encoded);
  if (!p) return false;
  auto h = pbkdf2(password, p->salt, p->iterations, p->hash.size());
  return h && equal_digests(*h, p->hash);
}

bool RateLimiter::allow(const std::string& key, int64_t now) {
  std::lock_guard l(mu_);
  auto it = windows_.find(key);
  if (it == windows_.end() || now - it->second.start >= window_) {
    if (it == windows_.end()) {
      while (windows_.size() >= max_keys_ && !order_.empty()) {
        auto& [k, start] = order_.front();
        auto w = windows_.find(k);
        if (w != windows_.end() && w->second.start == start) windows_.erase(w);
        order_.pop_front();
      }
      it = windows_.emplace(key, Window{}).first;
    }
    it->second = Window{now, 0};
    order_.emplace_back(key, now);
    if (order_.size() > 4 * max_keys_) {
      // Stale entries of re-opened windows; rebuild from the live ones.
      order_.clear();
      for (const auto& [k, w] : windows_) order_.emplace_back(k, w.start);
    }
  }
  if (it->second.count >= limit_) return false;
  ++it->second.count;
  return true;
}

bool RateLimiter::would_allow(const std::string& key, int64_t now) const {
  std::lock_guard l(mu_);
  auto it = windows_.find(key);
  return it == windows_.end() || now - it->second.start >= window_ || it->second.count < limit_;
}

int64_t RateLimiter::retry_after(const std::string& key, int64_t now) const {
  std::lock_guard l(mu_);
  auto it = windows_.find(key);
  if (it == windows_.end() || it->second.count < limit_) return 0;
  return std::max<int64_t>(0, it->second.start + window_ - now);
}

Authenticator::Authenticator(const DashboardConfig& cfg, const common::Clock& clock)
    : enabled_(cfg.auth != "none"),
      clock_(clock),
      session_ttl_nanos_(cfg.session_ttl_ms * 1'000'000),
      max_sessions_(1000),
      login_failures_(cfg.login_attempts_per_minute, kMinute),
      feedback_limit_(cfg.feedback_per_minute, kMinute) {
  if (!enabled_) return;
  if (!cfg.credentials_file.empty()) {
    std::ifstream f(cfg.credentials_file);
    if (!f)
      throw common::ConfigError("dashboard.credentials_file: cannot read '" + cfg.credentials_file +
                                "' (immunizer up writes <state-dir>/dashboard.credentials)");
    std::string line;
    std::getline(f, line);
    line = trim_line(line);
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == line.size())
      throw common::ConfigError("dashboard.credentials_file: '" + cfg.credentials_file +
                                "' must hold one line user:password");
    add_user(line.substr(0, colon), {Role::kOperator, "", sha256(line.substr(colon + 1))},
             "credentials file");
  }
  if (!cfg.auth_user.empty())
    add_user(cfg.auth_user, {Role::kOperator, "", sha256(cfg.auth_password)},
             "dashboard.auth_user");
  for (const auto& entry : cfg.users) {
    // name:role:hash (the hash holds no ':')
    const size_t a = entry.find(':');
    const size_t b = a == std::string::npos ? a : entry.find(':', a + 1);
    if (b == std::string::npos)
      throw common::ConfigError("dashboard.users: '" + entry.substr(0, entry.find(':')) +
                                "...' must be name:role:pbkdf2-sha256$iterations$salt$hash");
    const std::string name = entry.substr(0, a), role = entry.substr(a + 1, b - a - 1),
                      hash = entry.substr(b + 1);
    if (name.empty()) throw common::ConfigError("dashboard.users: an entry has an empty name");
    if (role != "viewer" && role != "operator")
      throw common::ConfigError("dashboard.users: user '" + name +
                                "': role must be viewer or operator, not '" + role + "'");
    if (!parse_hash(hash))
      throw common::ConfigError(
          "dashboard.users: user '" + name +
          "': the password must be a hash from `immunizer-dashboard hash-password` "
          "(pbkdf2-sha256$iterations>=10000$salt$hash)");
    add_user(name, {role == "operator" ? Role::kOperator : Role::kViewer, hash, ""},
             "dashboard.users");
  }
  if (users_.empty())
    throw common::ConfigError(
        "dashboard.auth: no users. Set dashboard.credentials_file (immunizer up writes "
        "<state-dir>/dashboard.credentials and passes IMMUNIZER_DASHBOARD_CREDENTIALS_FILE), "
        "dashboard.users, or "
        "dashboard.auth_user and dashboard.auth_password; or dashboard.auth=none to run without "
        "authentication");
  // Same cost as the configured hashes, so unknown names are not faster.
  int iterations = kMinIterations;
  for (const auto& [n, u] : users_)
    if (auto p = parse_hash(u.pbkdf2)) iterations = std::max(iterations, p->iterations);
  dummy_hash_ = hash_password(random_token(8), iterations);
}

void Authenticator::add_user(const std::string& name, User u, const std::string& source) {
  if (name.find(':') != std::string::npos)
    throw common::ConfigError(source + ": user names cannot contain ':'");
  if (!users_.emplace(name, std::move(u)).second)
    throw common::ConfigError(source + ": user '" + name + "' is defined twice");
  if (sources_.find(source) == std::string::npos)
    sources_ += (sources_.empty() ? "" : ", ") + source;
}

std::optional<Role> Authenticator::check_password(const std::string& user,
                                                  const std::string& password) {
  auto it = users_.find(user);
  if (it == users_.end()) {
    verify_password(password, dummy_hash_.empty() ? "x" : dummy_hash_);
    return std::nullopt;
  }
  const User& u = it->second;
  if (!u.plain_sha256.empty()) {
    if (equal_digests(sha256(password), u.plain_sha256)) return u.role;
    return std::nullopt;
  }
  const std::string key = sha256(user, password);
  const int64_t now = clock_.now_unix_nanos();
  {
    std::lock_guard l(mu_);
    auto c = cache_.find(key);
    if (c != cache_.end() && c->second.expires > now && c->second.user == user)
      return c->second.role;
  }
  if (!verify_password(password, u.pbkdf2)) return std::nullopt;
  std::lock_guard l(mu_);
  if (cache_.size() >= 256) cache_.clear();
  cache_[key] = {user, u.role, now + 5 * kMinute};
  return u.role;
}

std::pair<std::string, Session> Authenticator::create_session(const std::string& user, Role role) {
  Session s{user, role, random_token(), clock_.now_unix_nanos()};
  std::string id = random_token();
  std::lock_guard l(mu_);
  while (sessions_.size() >= max_sessions_ && !session_order_.empty()) {
    sessions_.erase(session_order_.front());
    session_order_.pop_front();
  }
  sessions_[id] = s;
  session_order_.push_back(id);
  return {id, s};
}

std::optional<Session> Authenticator::find_session(const std::string& id) {
  if (id.empty()) return std::nullopt;
  std::lock_guard l(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (clock_.now_unix_nanos() - it->second.created_unix_nanos > session_ttl_nanos_) {
    sessions_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void Authenticator::end_session(const std::string& id) {
  std::lock_guard l(mu_);
  sessions_.erase(id);
  // session_order_ keeps the id until it reaches the front; erasing a missing id is harmless.
}

}  // namespace immunizer::dashboard
