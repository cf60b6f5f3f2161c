#pragma once
// Runs a child process and kills it with SIGKILL at a chosen moment, collecting what it printed
// to stdout before it died. Used by the crash tests.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace dmscore::testing {

struct ChildRun {
  std::string out;  // everything the child wrote to stdout
  bool killed = false;
  int exit_code = -1;  // when it exited by itself
};

// Starts `argv`, waits `kill_after` (or until it exits), SIGKILLs it if still alive.
// A zero `kill_after` means: let it run to its end (up to `limit`).
inline ChildRun run_child(const std::vector<std::string>& argv,
                          std::chrono::milliseconds kill_after,
                          std::chrono::milliseconds limit = std::chrono::minutes(5)) {
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
    pollfd p{fds[0], POLLIN, 0};
    int r = poll(&p, 1, wait_ms);
    if (r > 0) {
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0)
        eof = true;
      else
        run.out.append(buf, static_cast<std::size_t>(n));
    }
  }
  if (!eof) {
    kill(pid, SIGKILL);
    run.killed = true;
  }
  for (;;) {  // Drain what was written before the kill.
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    run.out.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    run.exit_code = WEXITSTATUS(status);
    if (eof) run.killed = false;
  } else {
    run.killed = true;
  }
  return run;
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
