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
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  // And no descriptor of the service: whatever is not close-on-exec yet (a socket accepted a
  // moment ago) is closed in the child before the hook runs.
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

}  // namespace dmscore::detail
