// The heart of execute: turns plan actions and manual requests into signed Directives,
// keeps the set of active ones (deduplicated per target), pushes them to every connected
// effector, replays them on (re)connect, tracks acknowledgements, expires TTLs and queues the
// ActionEvent audit trail for the Kafka producer. Plans are admitted only with a valid
// signature by a trusted plan key, and automatic plans pass a guard policy (allowed kinds,
// a TTL cap, a circuit breaker on the rate of new automatic blocks); manual requests do not.
// Thread-safe: the stream loop, gRPC callbacks and the TTL timer call it concurrently; one
// internal mutex guards all state. Never blocks on I/O: links only queue directives.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "immunizer/common/ids.hpp"
#include "immunizer/common/kafka.hpp"
#include "immunizer/common/metrics.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/execute/config.hpp"
#include "immunizer/v1/control.pb.h"
#include "immunizer/v1/records.pb.h"

namespace immunizer::execute {

// One connected effector as the dispatcher sees it: a non-blocking outbound queue.
class EffectorLink {
 public:
  virtual ~EffectorLink() = default;
  // Queues a directive; never blocks. False when the link is closed or its queue is full.
  virtual bool send(const v1::Directive& d) = 0;
  // Queues a signed batch of directives (a replay, to an effector that takes batches) as one
  // message; never blocks. False as send(). By default, each directive on its own.
  virtual bool send_batch(const v1::DirectiveBatch& b) {
    for (const auto& d : b.directives())
      if (!send(d)) return false;
    return true;
  }
  // Queues the end-of-replay marker after the replayed directives; never blocks. False as send().
  virtual bool end_replay(uint32_t directives) = 0;
  // Ends the stream (the effector will reconnect). Called without dispatcher locks held.
  virtual void close(const std::string& reason) = 0;
};

// Thrown by block() for a request that cannot become an action.
class InvalidRequest : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class Dispatcher {
 public:
  Dispatcher(ExecuteConfig cfg, common::Topics topics, const common::Clock& clock,
             prometheus::Registry& registry);
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Empty when `plan` carries a valid signature by a trusted plan key (cfg.plan_public_keys_pem),
  // else the reason it is refused ("unsigned_plan", "untrusted_plan_key", "bad_plan_signature"),
  // counted in immunizer_execute_plans_refused_total. Call before on_plan.
  std::string admit(const v1::Plan& plan);
  // Enforces every action of a non-shadow plan under the guard policy; LOG/ESCALATE are only
  // recorded. The plan is assumed admitted (see admit()). A plan id handled recently, an action
  // already decided (dispatched or refused, here or by a previous run, see recall()) or already
  // in force is dropped and counted (immunizer_duplicates_dropped_total{what=plan|action}).
  void on_plan(const v1::Plan& plan);
  // At start-up, after restore() and before any plan: the recent action events on
  // <prefix>actions (read back to its end), so that a plan read again after a crash (its offset
  // not committed, its events already written) is not dispatched twice. Every event written at
  // or after `complete_since_unix_nanos` must be in `events` (0: all ever written;
  // INT64_MAX: unknown). A restored entry dispatched within that time whose DISPATCHED event
  // is missing (its state was acknowledged, the process died before the event) gets the event
  // now. Returns how many action decisions were recalled.
  size_t recall(const std::vector<v1::ActionEvent>& events, int64_t complete_since_unix_nanos);
  // Where the state of active entries goes (<prefix>models), apart from the action events: a
  // producer of its own, so that a manual Block/Unblock returns only once its state is
  // produced and acknowledged by Kafka (within `timeout`), and a restart right after keeps it.
  // Unset (tests): state goes out with the events in drain(). Call before any traffic.
  void set_state_sink(common::Producer* sink, std::chrono::milliseconds timeout);
  // With a state sink: waits until every state record queued so far is acknowledged; false
  // when not (then every active entry is persisted again with the next drain).
  bool flush_state();
  // Manual action (Operations.Block); returns its action id once persisted. Throws
  // InvalidRequest, or std::runtime_error when its state could not be persisted in time (the
  // action is in force meanwhile, but the caller is not told it is durable).
  std::string block(const v1::BlockRequest& req);
  // Revokes the active action with this id (or one folded into it); false when none. Returns
  // once persisted, like block().
  bool unblock(const std::string& action_id);
  v1::ListActiveResponse list_active() const;

  // An effector said hello: replays every active directive to it, then it gets new ones.
  // Returns the session id used by on_ack/disconnect.
  uint64_t connect(const v1::EffectorHello& hello, std::shared_ptr<EffectorLink> link);
  void disconnect(uint64_t session);
  void on_ack(uint64_t session, const v1::DirectiveAck& ack);

  // Removes directives whose expiry has passed and records EXPIRED; returns how many.
  size_t expire();
  // Hands queued outputs to `out`: ActionEvents (<prefix>actions, key: action id) and the
  // state of each active entry (<prefix>models, kind "execute", see restore()). With a state
  // sink, an event queued after a state record waits until that record is acknowledged (this
  // call flushes the state first when events wait), so an event on the topic implies its state
  // survives a restart; events still waiting stay queued for the next drain.
  size_t drain(common::Producer& out);
  // At start-up, before effectors connect: takes back the active directives persisted by a
  // previous run (read_snapshots(..., topics.models, kSnapshotKind)), so a restart does not
  // lift blocks. Expired or ended entries are skipped. Returns how many were restored.
  size_t restore(const std::map<std::string, v1::ModelSnapshot>& snapshots);

  size_t active_count() const;
  size_t effectors_connected() const;
  // Whether the circuit breaker currently stops automatic enforcement.
  bool breaker_open() const;
  const common::Clock& clock() const { return clock_; }

 private:
  struct Active {
    v1::Directive directive;           // current signed directive (action id = primary)
    std::vector<std::string> aliases;  // every action id folded into it, primary first
    std::set<std::string> acked_by;    // effectors that applied the current directive
    std::string alarm_id;
  };
  // What an ack for a directive is reported as.
  struct Sent {
    std::string action_id;  // the requested action (alias), for the audit trail
    v1::Action action;
    std::string plan_id, alarm_id;
    int64_t call_ts = 0;
    bool revoke = false;
    std::set<std::string> acked_by;
  };
  struct Session {
    v1::EffectorHello hello;
    std::string name;  // app/instance
    std::shared_ptr<EffectorLink> link;
  };
  using Links = std::vector<std::shared_ptr<EffectorLink>>;

  // One action of an admitted, non-shadow plan (on_plan holds mu_).
  void plan_action_locked(const v1::Plan& plan, const v1::Action& a, int64_t now,
                          Links& overflowed);
  void enforce_plan_action_locked(const v1::Plan& plan, const v1::Action& a, int64_t now,
                                  Links& overflowed);
  // Remembers that `action_id` was decided (bounded, oldest forgotten first); false if known.
  bool remember_decided_locked(const std::string& action_id);
  // Folds `action` into the active entry `primary` of the same target (directive `d` gets the
  // later expiry); returns the DISPATCHED event's reason.
  std::string extend_locked(const std::string& primary, const v1::Action& action, v1::Directive& d,
                            int64_t expires, const std::string& note, Links& overflowed);
  std::string enforce_locked(const v1::Action& requested, const std::string& plan_id,
                             const std::string& alarm_id, int64_t call_ts, const std::string& note,
                             Links& overflowed);
  void sign_and_send_locked(v1::Directive& d, Links& overflowed);
  void remember_locked(const v1::Directive& d, Sent s);
  void event_locked(v1::ActionEventType type, const std::string& action_id,
                    const v1::Action& action, const std::string& plan_id,
                    const std::string& alarm_id, int64_t call_ts, const std::string& effector,
                    const std::string& reason);
  void count(const std::string& type);
  void update_gauges_locked();
  void persist_locked(const std::string& primary, const Active* a);  // nullptr: entry ended
  // Guard policy for one automatic action: empty to enforce `a` (its TTL possibly clamped,
  // `note` saying so), else why it is refused.
  std::string guard_locked(const v1::Plan& plan, v1::Action& a, std::string& note, int64_t now);
  static void close_all(const Links& links);

  ExecuteConfig cfg_;
  common::Topics topics_;
  const common::Clock& clock_;

  mutable std::mutex mu_;
  std::map<std::string, Active> active_;                    // by primary action id
  std::unordered_map<std::string, std::string> by_target_;  // dedupe key -> primary
  std::unordered_map<std::string, std::string> alias_;      // any action id -> primary
  std::unordered_map<std::string, Sent> sent_;              // by directive id
  std::multimap<int64_t, std::string> forget_;              // when to drop sent_ entries
  std::map<uint64_t, Session> sessions_;
  uint64_t next_session_ = 1;
  struct Out {
    std::string topic, key, payload;
  };
  std::vector<Out> outbox_;
  // With a state sink: events queued after state records not yet acknowledged, each with the
  // state generation it follows (released in order once acked_gen_ reaches it).
  std::deque<std::pair<uint64_t, Out>> held_;
  uint64_t state_gen_ = 0;  // state records queued so far
  uint64_t acked_gen_ = 0;  // of them, acknowledged by Kafka (a prefix)
  void release_held_locked();
  std::vector<Out> state_outbox_;  // with a state sink: state records not yet produced
  std::mutex state_mu_;            // taken before mu_: one writer of state at a time, in order
  common::Producer* state_sink_ = nullptr;
  std::chrono::milliseconds state_timeout_{5000};
  bool repersist_all_ = false;  // a state flush failed: persist every active entry again
  // state_outbox_ -> state_sink_ (state_mu_ held); returns the generation it produced up to.
  uint64_t produce_state();

  std::unordered_set<std::string>
      seen_plans_;  // plan ids recently handled (a plan read again is dropped)
  std::deque<std::string> seen_plans_order_;
  // Action ids decided (DISPATCHED, or REJECTED by execute) by this run or, through recall(),
  // by a previous one: an action of a plan read again is not decided twice. Bounded.
  std::unordered_set<std::string> decided_;
  std::deque<std::string> decided_order_;

  crypto::KeyRing plan_keys_;
  std::set<v1::ActionKind> automatic_kinds_;  // enforcing kinds automatic plans may ask for
  std::deque<int64_t> automatic_blocks_;      // times of new automatic blocks, last minute
  int64_t breaker_open_until_ = 0;            // unix ns; 0: closed

  prometheus::Family<prometheus::Counter>& actions_;
  prometheus::Histogram& latency_;
  prometheus::Gauge& connected_;
  prometheus::Gauge& active_gauge_;
  prometheus::Family<prometheus::Counter>& acks_;
  prometheus::Counter& events_dropped_;
  prometheus::Counter& slow_effectors_;
  prometheus::Family<prometheus::Counter>& plans_refused_;
  prometheus::Family<prometheus::Counter>& guard_;
  prometheus::Gauge& breaker_gauge_;
  prometheus::Family<prometheus::Counter>& duplicates_;
};

// ModelSnapshot.kind of execute's persisted active entries on the models topic.
inline constexpr const char* kSnapshotKind = "execute";
// Their format: a ValueMap {directive: bytes, aliases: [string], alarm_id: string} per entry.
inline constexpr uint32_t kSnapshotFormat = 1;

// The dedupe key of an action: kind, target field and value, call.
std::string target_key(const v1::Action& a);
// "block", "abort", "throttle", "disable", "log", "escalate" (the immunizer_actions_total type).
std::string kind_label(v1::ActionKind k);

}  // namespace immunizer::execute
