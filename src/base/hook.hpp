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

#include "dmscore/status.hpp"

namespace dmscore::detail {

// OK when `path` exits 0 within `timeout`; FAILED_PRECONDITION saying how it ended otherwise
// (exit status, signal, timeout, cannot be started).
Status run_hook(const std::string& path,
                const std::vector<std::pair<std::string, std::string>>& env,
                std::chrono::milliseconds timeout);

}  // namespace dmscore::detail
