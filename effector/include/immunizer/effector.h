/* C API of the Immunizer effector, over the same core as the C++ API
 * (immunizer/effector/effector.hpp). For C programs and for other languages through their FFI.
 * Thread-safety: an immunizer_effector is shared by all threads; every function may be called
 * from any thread. immunizer_effector_allows* never block, never allocate and take no lock.
 * Strings are (pointer, length) pairs unless the name ends in _z (NUL-terminated); NULL is an
 * empty string. Every function accepts a NULL effector: allows* then answer 1 (nothing is
 * enforced), the others do nothing. Nothing throws or aborts across this boundary. */
#ifndef IMMUNIZER_EFFECTOR_H
#define IMMUNIZER_EFFECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct immunizer_effector immunizer_effector;

/* Counters since creation (see EffectorStats in effector.hpp). New fields are only ever
 * appended (docs/compatibility.md). */
typedef struct immunizer_effector_stats {
  int connected;               /* 1 while the stream to execute is up */
  uint64_t connects;           /* streams established */
  uint64_t connect_failures;   /* attempts that did not reach a stream */
  uint64_t directives;         /* received */
  uint64_t applied;            /* new actions in force */
  uint64_t revoked;            /* lifted by a revoke directive */
  uint64_t duplicates;         /* the same directive again (e.g. replay after a reconnect) */
  uint64_t ignored;            /* valid but nothing to enforce here (LOG, ESCALATE) */
  uint64_t rejected_signature; /* unsigned, forged or tampered */
  uint64_t rejected_expired;   /* expired, or issued too far in the future */
  uint64_t rejected_replay;    /* an id seen before with other content, or after revoke */
  uint64_t rejected_invalid;   /* malformed */
  uint64_t expired_actions;    /* removed when their TTL ran out */
  uint64_t stale_actions;      /* dropped after a reconnect because not replayed */
  uint64_t denied;             /* allows* answered 0 */
  uint64_t active_actions;
} immunizer_effector_stats;

/* The version of the library actually loaded (IMMUNIZER_VERSION of immunizer/version.hpp
 * at its build), e.g. "0.1.0". */
const char* immunizer_effector_version(void);

/* Creates an effector configured from IMMUNIZER_* environment variables (docs/effector.md),
 * with `app` overriding IMMUNIZER_APP when not NULL. It is not connected yet: call
 * immunizer_effector_start. Returns NULL on bad configuration (e.g. no directive public key, no TLS
 * files) and, if `err` is not NULL, writes a NUL-terminated reason into err[0..err_size). */
immunizer_effector* immunizer_effector_new_from_env(const char* app, char* err, size_t err_size);

/* Same, with an explicit execute address ("host:port") and execute's Ed25519 public key
 * (`signing_key`: PEM text, or the path of a PEM file; directives signed by another key are
 * rejected) when not NULL; every other setting (mutual TLS files, ...) still comes from the
 * environment. */
immunizer_effector* immunizer_effector_new(const char* app, const char* execute_address,
                                           const char* signing_key, char* err, size_t err_size);

/* Connects to execute in the background and returns at once; reconnects with backoff. */
void immunizer_effector_start(immunizer_effector* e);
/* Closes the stream and joins the effector's threads; allows* keep answering from the
 * directives in force. */
void immunizer_effector_stop(immunizer_effector* e);
/* Stops and releases the effector. */
void immunizer_effector_free(immunizer_effector* e);

/* 1 when `principal` (user, session, ip: any may be empty) may make `call` now, 0 when an
 * active directive denies it. A throttled principal consumes one token per call. */
int immunizer_effector_allows(const immunizer_effector* e, const char* user, size_t user_len,
                              const char* session, size_t session_len, const char* ip,
                              size_t ip_len, const char* call, size_t call_len);
int immunizer_effector_allows_z(const immunizer_effector* e, const char* user, const char* session,
                                const char* ip, const char* call);

/* Applies a directive that arrived out of band (a serialized immunizer.v1.Directive, e.g. a
 * signed blocklist loaded at start), verified exactly like one from execute. Returns 1 when
 * accepted; otherwise 0 and, if `reason` is not NULL, why (NUL-terminated). */
int immunizer_effector_apply(immunizer_effector* e, const void* directive, size_t len, char* reason,
                             size_t reason_size);

/* 1 while connected to execute (and, when fail-closed, once that mode is lifted). */
int immunizer_effector_connected(const immunizer_effector* e);
/* Fills *out (zeros for a NULL effector). */
void immunizer_effector_get_stats(const immunizer_effector* e, immunizer_effector_stats* out);

#ifdef __cplusplus
}
#endif

#endif /* IMMUNIZER_EFFECTOR_H */
