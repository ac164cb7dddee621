// Who may use the dashboard: users and their roles (viewer, operator), password checks,
// login sessions with their CSRF tokens, and the rate limits of login attempts and of
// feedback. Users come from the generated credentials file (`user:password`, an operator),
// from dashboard.auth_user/auth_password (an operator), and from dashboard.users
// (`name:role:pbkdf2-sha256$iterations$salt$hash`). Passwords are compared in constant
// time (OpenSSL CRYPTO_memcmp over digests); hashes are PBKDF2-HMAC-SHA256 through
// OpenSSL; session ids and CSRF tokens are 256-bit RAND_bytes values. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "immunizer/common/ids.hpp"
#include "immunizer/dashboard/config.hpp"

namespace immunizer::dashboard {

enum class Role { kViewer, kOperator };
std::string role_name(Role r);  // "viewer", "operator"

// "pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>" of `password` (fresh salt).
std::string hash_password(std::string_view password, int iterations = 600000);
// True when `password` matches `encoded` (hash_password's format); false when malformed.
bool verify_password(std::string_view password, std::string_view encoded);
// 2 * bytes lowercase hex characters from RAND_bytes.
std::string random_token(size_t bytes = 32);

// A fixed window per key: at most `limit` events per `window`; keys are bounded (the oldest
// window is forgotten first).
class RateLimiter {
 public:
  RateLimiter(int64_t limit, int64_t window_nanos, size_t max_keys = 10000)
      : limit_(limit), window_(window_nanos), max_keys_(max_keys) {}
  // Counts one event for `key`; false (and not counted) when the limit is reached.
  bool allow(const std::string& key, int64_t now);
  // Without counting: would an event be allowed?
  bool would_allow(const std::string& key, int64_t now) const;
  // Nanoseconds until `key` may try again (0 when it may now).
  int64_t retry_after(const std::string& key, int64_t now) const;

 private:
  struct Window {
    int64_t start = 0;
    int64_t count = 0;
  };
  int64_t limit_, window_;
  size_t max_keys_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Window> windows_;
  std::deque<std::pair<std::string, int64_t>> order_;  // key, window start (for eviction)
};

struct Session {
  std::string user;
  Role role = Role::kViewer;
  std::string csrf_token;
  int64_t created_unix_nanos = 0;
};

class Authenticator {
 public:
  // Reads the users (the credentials file included); throws common::ConfigError naming the
  // key when a source is missing or malformed.
  Authenticator(const DashboardConfig& cfg, const common::Clock& clock);

  bool enabled() const { return enabled_; }
  // The role of `user` when `password` is right; nullopt otherwise (unknown users take as
  // long as known ones).
  std::optional<Role> check_password(const std::string& user, const std::string& password);

  // A new session for a verified user: its id (the cookie value) and CSRF token.
  std::pair<std::string, Session> create_session(const std::string& user, Role role);
  std::optional<Session> find_session(const std::string& id);
  void end_session(const std::string& id);

  // Failed logins (and failed basic auth) per client address: at most
  // dashboard.login_attempts_per_minute failures per minute.
  RateLimiter& login_failures() { return login_failures_; }
  // Feedback per operator: at most dashboard.feedback_per_minute per minute.
  RateLimiter& feedback_limit() { return feedback_limit_; }

  size_t user_count() const { return users_.size(); }
  std::string sources() const { return sources_; }

 private:
  struct User {
    Role role = Role::kViewer;
    std::string pbkdf2;        // hash_password format, or empty
    std::string plain_sha256;  // SHA-256 of a plaintext password (credentials file, auth_password)
  };
  struct CachedCheck {
    std::string user;
    Role role;
    int64_t expires = 0;
  };
  void add_user(const std::string& name, User u, const std::string& source);

  bool enabled_ = true;
  const common::Clock& clock_;
  int64_t session_ttl_nanos_;
  size_t max_sessions_;
  std::map<std::string, User> users_;
  std::string sources_;
  std::string dummy_hash_;  // verified for unknown users, so timing does not tell names apart
  std::mutex mu_;
  std::unordered_map<std::string, Session> sessions_;
  std::deque<std::string> session_order_;  // oldest first, for the bound
  // Successful PBKDF2 checks, by SHA-256(user, password), so basic auth per request does not
  // pay the key derivation every time.
  std::unordered_map<std::string, CachedCheck> cache_;
  RateLimiter login_failures_;
  RateLimiter feedback_limit_;
};

}  // namespace immunizer::dashboard
