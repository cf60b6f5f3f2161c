#pragma once
// CallScope: the deadline of the caller a thread is serving.
//
// A request (an HTTP call, an embedder's call into Service) gives its backend work one
// deadline. The Service opens a CallScope on the calling thread; a backend bounds its waits,
// retries and long local work by CallScope::deadline(), and the cluster gate (cluster_gate.hpp)
// treats a call made inside a scope as a caller that must not wait for a cluster that is
// saturated or has just timed out. Workflow steps run outside any scope: their bounds are their
// own (cluster_operation_timeout).
//
// Thread-local; scopes nest, and an inner scope never extends the outer deadline.

#include <algorithm>
#include <optional>

#include "dmscore/env.hpp"

namespace dmscore::detail {

class CallScope {
 public:
  explicit CallScope(Env::SteadyTime deadline) : saved_(current()) {
    current() = saved_ ? std::min(*saved_, deadline) : deadline;
  }
  ~CallScope() { current() = saved_; }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

  // The deadline of the innermost scope on this thread; nullopt outside any.
  static std::optional<Env::SteadyTime> deadline() { return current(); }

  // `bound` capped by the scope's deadline, when there is one.
  static Env::SteadyTime cap(Env::SteadyTime bound) {
    auto d = current();
    return d ? std::min(*d, bound) : bound;
  }

 private:
  static std::optional<Env::SteadyTime>& current() {
    thread_local std::optional<Env::SteadyTime> d;
    return d;
  }
  std::optional<Env::SteadyTime> saved_;
};

// Marks the threads that run the HTTP server's event loop. A cluster call made on one is a bug
// (it would stall every connection of that thread); the gate counts and logs it.
inline bool& io_thread_flag() {
  thread_local bool on = false;
  return on;
}
inline bool on_io_thread() { return io_thread_flag(); }

}  // namespace dmscore::detail
