// Starts and supervises child processes for `immunizer up`: each child's output is
// prefixed with its name, the first child to die is reported with its status, and
// stop_all() ends the rest (SIGTERM, then SIGKILL after a grace period).
// Thread-safe for the calls below; one Supervisor per launcher.
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
  bool may_exit = false;                    // exit 0 is normal (the replayer), not a failure
  // Called with each output line (before it is echoed); used to read the broker's address.
  std::function<void(const std::string&)> on_line;
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
  // Returns the first child to exit that was not allowed to, or nullopt once `stop` is set.
  std::optional<ChildExit> wait_any(const std::atomic<bool>& stop);
  // SIGTERM to every live child in reverse start order, SIGKILL after `grace`.
  void stop_all(std::chrono::milliseconds grace);
  bool alive(const std::string& name);

 private:
  struct Child {
    ChildSpec spec;
    pid_t pid = 0;
    bool running = true;
    std::thread reader;
  };
  std::optional<ChildExit> reap(bool block);
  bool echo_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Child>> children_;
};

std::string describe_status(int status);

}  // namespace immunizer::tools
