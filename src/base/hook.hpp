#pragma once
// Runs an operator's hook: an executable with a minimal environment (a standard PATH, LC_ALL=C
// and the variables given, nothing inherited from the service) and no descriptor of the
// service's (stdin and the outputs are /dev/null: a hook's output is the operator's business and
// may hold anything), in its own process group, killed (the whole group) when it outlives its
// timeout.

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "dmscore/result.hpp"
#include "dmscore/status.hpp"

namespace dmscore::detail {

// OK when `path` exits 0 within `timeout`; FAILED_PRECONDITION saying how it ended otherwise
// (exit status, signal, timeout, cannot be started).
Status run_hook(const std::string& path,
                const std::vector<std::pair<std::string, std::string>>& env,
                std::chrono::milliseconds timeout);

// What a program said and how it ended.
struct ProgramRun {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;     // stdout, at most 1 MiB kept
  std::string err;     // stderr, at most 64 KiB kept
};

// Runs `path` with `args` the way run_hook does (the same minimal environment and no descriptor
// of the service's), but with its stdout and stderr captured. It ends within `timeout` (the
// process group is killed then: DEADLINE_EXCEEDED). FAILED_PRECONDITION when it cannot be
// started (a `path` without a slash is looked up in the standard PATH). Any exit code is OK:
// the caller reads it.
Result<ProgramRun> run_program(const std::string& path, const std::vector<std::string>& args,
                               std::chrono::milliseconds timeout);

}  // namespace dmscore::detail
