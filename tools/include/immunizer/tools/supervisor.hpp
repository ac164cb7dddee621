// Starts and supervises child processes for `immunizer up`: each child's output is
// prefixed with its name, the first child to die is reported with its status, and
// stop_all() ends the rest in stages (highest stop_order first: the app, then the services,
// then the broker; each stage SIGTERM, then SIGKILL after a grace period).
// Thread-safe for the calls below; one Supervisor per launcher.
// Lifetime: a child's on_line runs on that child's reader thread until its output closes,
// which may be long after spawn() returned (the reader is joined by stop_all() and the
// destructor). It must therefore own what it uses (capture by value / shared_ptr), never
// the caller's locals by reference; spawn_until() is the safe way to wait for a line.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace immunizer::tools {

struct ChildSpec {
  std::string name;
  std::string path;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;  // added to the launcher's environment
  bool may_exit = false;                   // exit 0 is normal (the replayer), not a failure
  // Called with each output line (before it is echoed); used to read the broker's address.
  // Runs on the reader thread (see Lifetime above).
  std::function<void(const std::string&)> on_line;
  // stop_all() stops children in stages, highest stop_order first; equal ones together.
  int stop_order = 0;
};

struct ChildExit {
  std::string name;
  pid_t pid = 0;
  std::string how;  // "exited with status 1", "killed by signal 9 (SIGKILL)"
  bool clean = false;
};

class Supervisor {
 public:
  explicit Supervisor(bool echo = true) : echo_(echo) {}
  ~Supervisor();
  // Throws std::runtime_error when the program cannot be started.
  pid_t spawn(ChildSpec spec);
  // Spawns `spec` and waits for its first output line matching `pattern` (ECMAScript);
  // returns capture group 1 (the whole match without groups). spec.on_line still sees every
  // line. Throws std::runtime_error when no line matched within `limit` or the child's
  // output closed first. The waiting state is shared with the reader, not on this stack.
  std::string spawn_until(ChildSpec spec, const std::string& pattern,
                          std::chrono::milliseconds limit);
  // Returns the first child to exit that was not allowed to, or nullopt once `stop` is set.
  std::optional<ChildExit> wait_any(const std::atomic<bool>& stop);
  // Stops every live child, stage by stage (highest stop_order first): SIGTERM to the
  // stage's children, wait until they exited, SIGKILL those still running after `grace`,
  // then the next stage. Children exiting on their own meanwhile are reaped.
  void stop_all(std::chrono::milliseconds grace);
  // The newest child of that name (a restarted child replaces its predecessor).
  bool alive(const std::string& name);
  // Sends `sig` to the newest running child of that name and waits until it exited (reaped
  // here, so wait_any() does not report it). nullopt when none runs. For crash tests.
  std::optional<ChildExit> kill_child(const std::string& name, int sig);

 private:
  struct Child {
    ChildSpec spec;
    pid_t pid = 0;
    bool running = true;
    std::thread reader;
  };
  pid_t spawn_impl(ChildSpec spec, std::function<void()> on_eof);
  std::optional<ChildExit> reap(bool block);
  void stop_stage(int order, std::chrono::milliseconds grace);
  bool echo_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Child>> children_;
};

std::string describe_status(int status);

}  // namespace immunizer::tools
