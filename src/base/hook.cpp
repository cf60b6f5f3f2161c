#include "base/hook.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace dmscore::detail {

namespace {

// A child in its own process group, default signal handling, stdin /dev/null, stdout and stderr
// on `out` and `err` (-1: /dev/null), and no other descriptor of the service: whatever is not
// close-on-exec yet (a socket accepted a moment ago) is closed in the child before it runs.
void spawn_setup(posix_spawn_file_actions_t& fa, posix_spawnattr_t& attr, int out, int err) {
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (out >= 0)
    posix_spawn_file_actions_adddup2(&fa, out, 1);
  else
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  if (err >= 0)
    posix_spawn_file_actions_adddup2(&fa, err, 2);
  else
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t deflt;
  sigemptyset(&deflt);
  sigaddset(&deflt, SIGPIPE);
  sigaddset(&deflt, SIGTERM);
  sigaddset(&deflt, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &deflt);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

}  // namespace

Status run_hook(const std::string& path,
                const std::vector<std::pair<std::string, std::string>>& env,
                std::chrono::milliseconds timeout) {
  // A minimal environment: nothing of the service's own (its DMS_* secrets above all) reaches
  // the hook, only a standard PATH and what the hook is given.
  std::vector<std::string> vars = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
  for (const auto& [k, v] : env) vars.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::string arg0 = path;
  char* argv[] = {arg0.data(), nullptr};

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  spawn_setup(fa, attr, -1, -1);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, path.c_str(), &fa, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return Status::FailedPrecondition("hook " + path + " cannot be started: " + std::strerror(rc));

  // Waits on a pidfd, which becomes readable when the hook exits: no polling, no sleeping.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // (Through syscall(2): glibc 2.36 declares pidfd_open without C linkage.)
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      if (pidfd >= 0) ::close(pidfd);
      return Status::FailedPrecondition("hook " + path + ": waitpid: " + std::strerror(errno));
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      if (pidfd >= 0) ::close(pidfd);
      return Status::FailedPrecondition("hook " + path + " did not finish within " +
                                        std::to_string(timeout.count()) + " ms and was killed");
    }
    // Without a pidfd (a kernel before 5.3) the same poll is a bounded pause between checks.
    pollfd p{pidfd, POLLIN, 0};
    const int wait_ms = pidfd >= 0 ? static_cast<int>(std::min<std::int64_t>(left.count(), 60000))
                                   : static_cast<int>(std::min<std::int64_t>(left.count(), 10));
    (void)::poll(pidfd >= 0 ? &p : nullptr, pidfd >= 0 ? 1 : 0, wait_ms);
  }
  if (pidfd >= 0) ::close(pidfd);
  // What the hook left running in the background is left alone: a pre hook may keep a lock
  // held by a child (a database's read lock) until the post hook releases it.
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  if (WIFEXITED(status))
    return Status::FailedPrecondition("hook " + path + " exited with status " +
                                      std::to_string(WEXITSTATUS(status)));
  if (WIFSIGNALED(status))
    return Status::FailedPrecondition("hook " + path + " was killed by signal " +
                                      std::to_string(WTERMSIG(status)));
  return Status::FailedPrecondition("hook " + path + " ended abnormally");
}

Result<ProgramRun> run_program(const std::string& path, const std::vector<std::string>& args,
                               std::chrono::milliseconds timeout) {
  std::vector<std::string> vars = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::vector<std::string> words{path};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);

  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {out[0], out[1], err[0], err[1]})
      if (fd >= 0) ::close(fd);
    return Status::ResourceExhausted(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  spawn_setup(fa, attr, out[1], err[1]);
  pid_t pid = -1;
  // posix_spawnp looks a bare name up in the PATH of the calling process; the child's PATH is
  // the standard one, so a bare name is resolved against it here.
  std::string exe = path;
  if (path.find('/') == std::string::npos) {
    for (const char* dir :
         {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
      std::string candidate = std::string(dir) + "/" + path;
      if (::access(candidate.c_str(), X_OK) == 0) {
        exe = candidate;
        break;
      }
    }
  }
  int rc = posix_spawn(&pid, exe.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    return Status::FailedPrecondition(path + " cannot be started: " + std::strerror(rc));
  }
  ProgramRun run;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_pipes = 2;
  char buf[16384];
  while (open_pipes > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    int n = ::poll(p, 2, static_cast<int>(std::min<std::int64_t>(left.count(), 60000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(p[i].fd, buf, sizeof buf);
      if (got > 0) {
        std::string& to = i == 0 ? run.out : run.err;
        const std::size_t cap = i == 0 ? (1u << 20) : (64u << 10);
        if (to.size() < cap) to.append(buf, std::min<std::size_t>(got, cap - to.size()));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(p[i].fd);
        p[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (auto& q : p)
    if (q.fd >= 0) ::close(q.fd);
  int status = 0;
  // The pipes closed: the program is ending (or was killed). Its descendants holding the pipes
  // would have kept them open, so this wait is short.
  if (!timed_out) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    for (;;) {
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) break;
      if (std::chrono::steady_clock::now() >= deadline || left.count() <= 0) {
        timed_out = true;
        ::kill(-pid, SIGKILL);
        break;
      }
      ::usleep(1000);
    }
  }
  if (timed_out) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return Status::DeadlineExceeded(path + " did not finish within " +
                                    std::to_string(timeout.count()) + " ms and was killed");
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace dmscore::detail
