#pragma once
// A child process of a test (dmsctl serve, dmsctl agent): started with its own environment and
// its stderr in a file, stopped with a signal, reaped. Never uses Catch's macros, so threads may
// use it.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace dmscore::testing {

class Process {
 public:
  Process() = default;
  // Runs `argv` with exactly `env` ("KEY=value") and stderr (and stdout) appended to `log`.
  Process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
          const std::string& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> a, e;
      for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      e.push_back(nullptr);
      ::execve(a[0], a.data(), e.data());
      ::_exit(127);
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  Process(Process&& o) noexcept : pid_(o.pid_), code_(o.code_) { o.pid_ = -1; }
  Process& operator=(Process&& o) noexcept {
    if (this != &o) {
      stop(SIGKILL);
      pid_ = o.pid_;
      code_ = o.code_;
      o.pid_ = -1;
    }
    return *this;
  }
  ~Process() { stop(SIGKILL); }

  bool running() {
    poll();
    return pid_ > 0;
  }
  // Sends `sig` and reaps the child; its exit code (128+signal when killed).
  int stop(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      reap(0);
    }
    return code_;
  }
  // Sends `sig` (SIGSTOP, SIGCONT, ...) and leaves the child be.
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  // Waits for the child to exit by itself within `within`: its exit code, nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds within) {
    const auto until = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < until) {
      if (!running()) return code_;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }

 private:
  void poll() {
    if (pid_ > 0) reap(WNOHANG);
  }
  void reap(int flags) {
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, flags);
    if (r == pid_) {
      code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      pid_ = -1;
    }
  }

  pid_t pid_ = -1;
  int code_ = -1;
};

}  // namespace dmscore::testing
