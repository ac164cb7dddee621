#include "immunizer/tools/supervisor.hpp"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <regex>
#include <set>
#include <stdexcept>

extern char** environ;

namespace immunizer::tools {

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int s = WTERMSIG(status);
    return "killed by signal " + std::to_string(s) + " (" +
           (sigabbrev_np(s) ? std::string("SIG") + sigabbrev_np(s) : "?") + ")";
  }
  return "stopped (status " + std::to_string(status) + ")";
}

Supervisor::~Supervisor() {
  stop_all(std::chrono::seconds(5));
  for (auto& c : children_)
    if (c->reader.joinable()) c->reader.join();
}

pid_t Supervisor::spawn(ChildSpec spec) { return spawn_impl(std::move(spec), nullptr); }

std::string Supervisor::spawn_until(ChildSpec spec, const std::string& pattern,
                                    std::chrono::milliseconds limit) {
  // Owned jointly by this call and the reader thread, which goes on after we return.
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    std::regex re;
    std::optional<std::string> got;
    bool eof = false;
  };
  auto w = std::make_shared<Wait>();
  w->re = std::regex(pattern);
  const std::string name = spec.name;
  auto user = std::move(spec.on_line);
  spec.on_line = [w, user](const std::string& line) {
    if (user) user(line);
    std::lock_guard<std::mutex> lock(w->mu);
    if (w->got) return;
    std::smatch m;
    if (std::regex_search(line, m, w->re)) {
      w->got = m.size() > 1 ? m[1].str() : m[0].str();
      w->cv.notify_all();
    }
  };
  spawn_impl(std::move(spec), [w] {
    std::lock_guard<std::mutex> lock(w->mu);
    w->eof = true;
    w->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(w->mu);
  if (!w->cv.wait_for(lock, limit, [&] { return w->got || w->eof; }))
    throw std::runtime_error(name + " did not print a line matching '" + pattern + "' within " +
                             std::to_string(limit.count()) + " ms");
  if (!w->got)
    throw std::runtime_error(name + " closed its output before printing a line matching '" +
                             pattern + "'");
  return *w->got;
}

pid_t Supervisor::spawn_impl(ChildSpec spec, std::function<void()> on_eof) {
  if (access(spec.path.c_str(), X_OK) != 0)
    throw std::runtime_error("cannot start " + spec.name + ": " + spec.path +
                             " is not an executable (" + strerror(errno) + ")");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + std::string(strerror(errno)));
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    const auto name = kv.substr(0, kv.find('='));
    if (!spec.env.count(name)) envs.push_back(kv);
  }
  for (const auto& [k, v] : spec.env) envs.push_back(k + "=" + v);
  std::vector<char*> argv{const_cast<char*>(spec.path.c_str())};
  for (auto& a : spec.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(envs.size() + 1);
  for (auto& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork: " + std::string(strerror(errno)));
  if (pid == 0) {
    // Child: own process group, so a terminal Ctrl-C reaches only the launcher, which
    // then stops the children in order; default signal mask and handlers.
    setpgid(0, 0);
    // If the launcher dies without stopping us (SIGKILL, a second Ctrl-C), stop too.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    execve(argv[0], argv.data(), envp.data());
    dprintf(fds[1], "exec %s failed: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  auto child = std::make_unique<Child>();
  child->spec = std::move(spec);
  child->pid = pid;
  Child* raw = child.get();
  const bool echo = echo_;
  child->reader = std::thread([raw, fd = fds[0], echo, on_eof = std::move(on_eof)] {
    FILE* f = fdopen(fd, "r");
    char* line = nullptr;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
      std::string s(line, static_cast<size_t>(n));
      if (!s.empty() && s.back() == '\n') s.pop_back();
      if (raw->spec.on_line) raw->spec.on_line(s);
      if (echo) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%-10s| ", raw->spec.name.c_str());
        std::string out = prefix + s + "\n";
        fwrite(out.data(), 1, out.size(), stdout);
        fflush(stdout);
      }
    }
    free(line);
    fclose(f);
    if (on_eof) on_eof();
  });
  std::lock_guard<std::mutex> lock(mu_);
  children_.push_back(std::move(child));
  return pid;
}

std::optional<ChildExit> Supervisor::reap(bool block) {
  int status = 0;
  const pid_t pid = waitpid(-1, &status, block ? 0 : WNOHANG);
  if (pid <= 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& c : children_) {
    if (c->pid == pid) {
      c->running = false;
      ChildExit e{c->spec.name, pid, describe_status(status),
                  WIFEXITED(status) && WEXITSTATUS(status) == 0};
      return e;
    }
  }
  return ChildExit{"?", pid, describe_status(status), false};
}

std::optional<ChildExit> Supervisor::wait_any(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    while (auto e = reap(false)) {
      bool may_exit = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& c : children_)
          if (c->pid == e->pid) may_exit = c->spec.may_exit;
      }
      if (!(may_exit && e->clean)) return e;
      std::cout << e->name << " finished (" << e->how << ")\n";
    }
    usleep(100'000);
  }
  return std::nullopt;
}

bool Supervisor::alive(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
    auto& c = *it;
    if (c->spec.name != name) continue;
    if (!c->running) return false;
    // Exited but not yet reaped? Look without reaping, so wait_any() still reports it.
    siginfo_t info{};
    const bool exited =
        waitid(P_PID, static_cast<id_t>(c->pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == c->pid;
    return !exited;
  }
  return false;
}

std::optional<ChildExit> Supervisor::kill_child(const std::string& name, int sig) {
  pid_t pid = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = children_.rbegin(); it != children_.rend() && !pid; ++it)
      if ((*it)->spec.name == name && (*it)->running) pid = (*it)->pid;
  }
  if (!pid) return std::nullopt;
  ::kill(pid, sig);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& c : children_)
    if (c->pid == pid) c->running = false;
  return ChildExit{name, pid, describe_status(status),
                   WIFEXITED(status) && WEXITSTATUS(status) == 0};
}

void Supervisor::stop_stage(int order, std::chrono::milliseconds grace) {
  std::vector<pid_t> stage;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = children_.rbegin(); it != children_.rend(); ++it)
      if ((*it)->running && (*it)->spec.stop_order == order) {
        kill((*it)->pid, SIGTERM);
        stage.push_back((*it)->pid);
      }
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  bool killed = false;
  for (;;) {
    bool any = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& c : children_)
        any = any || (c->running && std::find(stage.begin(), stage.end(), c->pid) != stage.end());
      if (any && !killed && std::chrono::steady_clock::now() >= deadline) {
        killed = true;
        for (auto& c : children_)
          if (c->running && std::find(stage.begin(), stage.end(), c->pid) != stage.end()) {
            std::cerr << c->spec.name << " did not stop within " << grace.count()
                      << " ms of SIGTERM; killing it\n";
            kill(c->pid, SIGKILL);
          }
      }
    }
    if (!any) return;
    if (auto e = reap(false)) {
      if (!e->clean && e->how.find("SIGTERM") == std::string::npos)
        std::cout << e->name << " " << e->how << "\n";
      continue;
    }
    usleep(20'000);
  }
}

void Supervisor::stop_all(std::chrono::milliseconds grace) {
  std::set<int, std::greater<int>> orders;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : children_)
      if (c->running) orders.insert(c->spec.stop_order);
  }
  for (const int order : orders) stop_stage(order, grace);
  // Join outside the lock: an on_line callback may call alive().
  std::vector<Child*> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : children_) all.push_back(c.get());
  }
  for (Child* c : all)
    if (c->reader.joinable()) c->reader.join();
}

}  // namespace immunizer::tools
