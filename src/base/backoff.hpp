#pragma once
// Backoff: the pauses between retries, waited through Env (so a manual clock moves instead of
// the test sleeping) with jitter (so callers that failed together do not retry together), and
// never past the caller's deadline.
//
//   Backoff b(env, 100ms, 1s, deadline);
//   for (;;) {
//     auto r = try_once();
//     if (done(r) || !b.wait()) return r;   // wait() is false when the deadline would pass
//   }

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "dmscore/env.hpp"

namespace dmscore::detail {

class Backoff {
 public:
  // Pauses start at `initial` and grow by half up to `max`; each is drawn uniformly from
  // [pause/2, pause] ("equal jitter").
  Backoff(Env& env, std::chrono::milliseconds initial, std::chrono::milliseconds max,
          Env::SteadyTime deadline)
      : env_(env), next_(initial), max_(std::max(initial, max)), deadline_(deadline) {}

  // Waits the next pause and returns true; returns false at once when the pause would end
  // past the deadline.
  bool wait() {
    const auto pause = jittered(next_);
    if (env_.steady_now() + pause > deadline_) return false;
    env_.sleep_for(pause);
    next_ = std::min(max_, next_ + next_ / 2);
    ++attempts_;
    return true;
  }

  // Pauses waited so far.
  int attempts() const { return attempts_; }
  Env::SteadyTime deadline() const { return deadline_; }

 private:
  std::chrono::milliseconds jittered(std::chrono::milliseconds d) {
    std::uint32_t r = 0;
    env_.random_bytes(&r, sizeof r);
    const auto half = d.count() / 2;
    return std::chrono::milliseconds(half + (half > 0 ? static_cast<std::int64_t>(r % (half + 1)) : 0));
  }

  Env& env_;
  std::chrono::milliseconds next_;
  std::chrono::milliseconds max_;
  Env::SteadyTime deadline_;
  int attempts_ = 0;
};

}  // namespace dmscore::detail
