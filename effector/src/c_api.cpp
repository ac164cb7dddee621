// C API (immunizer/effector.h) over the C++ core. Nothing here throws across the C boundary.
#include "immunizer/effector.h"

#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "immunizer/agent/c_api.hpp"
#include "immunizer/effector/effector.hpp"
#include "immunizer/v1/control.pb.h"
#include "immunizer/version.hpp"

using immunizer::effector::Effector;
using immunizer::effector::EffectorConfig;
using immunizer::effector::PrincipalView;

struct immunizer_effector {
  std::shared_ptr<Effector> effector;
};

using immunizer::agent::c_view;
using immunizer::agent::guard_c_call;
using immunizer::agent::write_c_error;

namespace {

immunizer_effector* make(const char* app, const char* execute_address, const char* signing_key,
                         char* err, size_t err_size) {
  return guard_c_call<immunizer_effector*>(err, err_size, nullptr, [&] {
    EffectorConfig cfg = EffectorConfig::from_env();
    if (app) cfg.app = app;
    if (execute_address) cfg.execute_address = execute_address;
    // Execute's Ed25519 public key: PEM text, or the path of a PEM file.
    if (signing_key && *signing_key) {
      const std::string k(signing_key);
      if (k.rfind("-----BEGIN", 0) == 0)
        cfg.directive_public_keys = {k};
      else
        cfg.directive_public_key_files = {k};
    }
    auto h = std::make_unique<immunizer_effector>();
    h->effector = Effector::create(std::move(cfg));
    return h.release();
  });
}

}  // namespace

extern "C" {

const char* immunizer_effector_version(void) { return IMMUNIZER_VERSION; }

immunizer_effector* immunizer_effector_new_from_env(const char* app, char* err, size_t err_size) {
  return make(app, nullptr, nullptr, err, err_size);
}

immunizer_effector* immunizer_effector_new(const char* app, const char* execute_address,
                                           const char* signing_key, char* err, size_t err_size) {
  return make(app, execute_address, signing_key, err, err_size);
}

void immunizer_effector_start(immunizer_effector* e) {
  if (!e) return;
  try {
    e->effector->start();
  } catch (...) {
  }
}

void immunizer_effector_stop(immunizer_effector* e) {
  if (!e) return;
  try {
    e->effector->stop();
  } catch (...) {
  }
}

void immunizer_effector_free(immunizer_effector* e) {
  if (!e) return;
  immunizer_effector_stop(e);
  delete e;
}

int immunizer_effector_allows(const immunizer_effector* e, const char* user, size_t user_len,
                              const char* session, size_t session_len, const char* ip,
                              size_t ip_len, const char* call, size_t call_len) {
  if (!e) return 1;
  return e->effector->allows(PrincipalView(c_view(user, user_len), c_view(session, session_len),
                                           c_view(ip, ip_len)),
                             c_view(call, call_len))
             ? 1
             : 0;
}

int immunizer_effector_allows_z(const immunizer_effector* e, const char* user, const char* session,
                                const char* ip, const char* call) {
  if (!e) return 1;
  return e->effector->allows(PrincipalView(c_view(user), c_view(session), c_view(ip)), c_view(call))
             ? 1
             : 0;
}

int immunizer_effector_apply(immunizer_effector* e, const void* directive, size_t len, char* reason,
                             size_t reason_size) {
  if (!e) {
    write_c_error(reason, reason_size, "no effector");
    return 0;
  }
  return guard_c_call<int>(reason, reason_size, 0, [&] {
    immunizer::v1::Directive d;
    if (!directive || len > static_cast<size_t>(INT32_MAX) ||
        !d.ParseFromArray(directive, static_cast<int>(len))) {
      write_c_error(reason, reason_size, "not a serialized immunizer.v1.Directive");
      return 0;
    }
    std::string why;
    if (e->effector->apply(d, &why)) return 1;
    write_c_error(reason, reason_size, why.c_str());
    return 0;
  });
}

int immunizer_effector_connected(const immunizer_effector* e) {
  return e && e->effector->connected() ? 1 : 0;
}

void immunizer_effector_get_stats(const immunizer_effector* e, immunizer_effector_stats* out) {
  immunizer::agent::fill_c_stats(e, out, [e](immunizer_effector_stats& o) {
    const auto s = e->effector->stats();
    o.connected = s.connected ? 1 : 0;
    o.connects = s.connects;
    o.connect_failures = s.connect_failures;
    o.directives = s.directives;
    o.applied = s.applied;
    o.revoked = s.revoked;
    o.duplicates = s.duplicates;
    o.ignored = s.ignored;
    o.rejected_signature = s.rejected_signature;
    o.rejected_expired = s.rejected_expired;
    o.rejected_replay = s.rejected_replay;
    o.rejected_invalid = s.rejected_invalid;
    o.expired_actions = s.expired_actions;
    o.stale_actions = s.stale_actions;
    o.denied = s.denied;
    o.active_actions = s.active_actions;
  });
}

}  // extern "C"
