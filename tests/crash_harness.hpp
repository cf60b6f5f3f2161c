#pragma once
// Runs a child process and kills it with SIGKILL at a chosen moment, collecting what it printed
// to stdout before it died. Used by the crash tests.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <utility>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace dmscore::testing {

struct ChildRun {
  std::string out;  // everything the child wrote to stdout
  bool killed = false;
  int exit_code = -1;  // when it exited by itself
};

namespace harness {

// Forks and execs `argv` with its stdout on a pipe; answers the pid and the pipe's read end.
inline std::pair<pid_t, int> spawn(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) std::abort();
  pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    dup2(fds[1], 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  return {pid, fds[0]};
}

// Kills the child unless it reached the end of its output, drains what it wrote, reaps it.
inline void finish(pid_t pid, int fd, bool eof, ChildRun& run) {
  char buf[4096];
  if (!eof) {
    kill(pid, SIGKILL);
    run.killed = true;
  }
  for (;;) {  // Drain what was written before the kill.
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    run.out.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    run.exit_code = WEXITSTATUS(status);
    if (eof) run.killed = false;
  } else {
    run.killed = true;
  }
}

}  // namespace harness

// Starts `argv`, waits `kill_after` (or until it exits), SIGKILLs it if still alive.
// A zero `kill_after` means: let it run to its end (up to `limit`).
inline ChildRun run_child(const std::vector<std::string>& argv,
                          std::chrono::milliseconds kill_after,
                          std::chrono::milliseconds limit = std::chrono::minutes(5)) {
  auto [pid, fd] = harness::spawn(argv);
  ChildRun run;
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + (kill_after.count() > 0 ? kill_after : limit);
  bool eof = false;
  char buf[4096];
  while (!eof) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    int wait_ms =
        static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) +
        1;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, wait_ms);
    if (r > 0) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0)
        eof = true;
      else
        run.out.append(buf, static_cast<std::size_t>(n));
    }
  }
  harness::finish(pid, fd, eof, run);
  return run;
}

// Starts `argv` and SIGKILLs it `delay` after it printed a line starting with `marker` (or lets
// it finish when it exits first). For killing inside a short phase that follows the marker.
inline ChildRun run_child_kill_after_line(const std::vector<std::string>& argv,
                                          const std::string& marker,
                                          std::chrono::microseconds delay,
                                          std::chrono::milliseconds limit = std::chrono::minutes(2)) {
  auto [pid, fd] = harness::spawn(argv);
  ChildRun run;
  const auto start = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  bool eof = false;
  char buf[4096];
  while (!eof) {
    auto now = std::chrono::steady_clock::now();
    if (kill_at && now >= *kill_at) break;
    if (now - start >= limit) break;
    auto until = kill_at ? *kill_at : start + limit;
    int wait_us = static_cast<int>(
        std::chrono::duration_cast<std::chrono::microseconds>(until - now).count());
    pollfd p{fd, POLLIN, 0};
    timespec ts{wait_us / 1000000, (wait_us % 1000000) * 1000};
    int r = ppoll(&p, 1, &ts, nullptr);
    if (r > 0) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) {
        eof = true;
      } else {
        run.out.append(buf, static_cast<std::size_t>(n));
        if (!kill_at && run.out.find(marker) != std::string::npos)
          kill_at = std::chrono::steady_clock::now() + delay;
      }
    }
  }
  harness::finish(pid, fd, eof, run);
  return run;
}

// The number in the environment variable `name` (how many kills or rounds a test runs), or
// `fallback` when it is not set.
inline int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value ? std::atoi(value) : fallback;
}

// Lines of `text` that start with `prefix`, with the prefix removed.
inline std::vector<std::string> lines_with(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;  // a torn last line does not count
    if (text.compare(pos, prefix.size(), prefix) == 0)
      out.push_back(text.substr(pos + prefix.size(), end - pos - prefix.size()));
    pos = end + 1;
  }
  return out;
}

}  // namespace dmscore::testing
