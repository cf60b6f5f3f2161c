#pragma once
// A latch a test opens to let the workflow steps blocked on it continue.

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "dmscore/workflow.hpp"

namespace dmscore::testing {

class StepGate {
 public:
  void open() {
    std::lock_guard l(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits until opened or `ctx` should stop; returns false in the latter case.
  bool wait(StepContext& ctx) {
    std::unique_lock l(mu_);
    ++waiting_;
    cv_.notify_all();
    while (!open_) {
      if (ctx.should_stop()) return false;
      cv_.wait_for(l, std::chrono::milliseconds(5));
    }
    return true;
  }
  void await_waiters(int n) {
    std::unique_lock l(mu_);
    cv_.wait_for(l, std::chrono::seconds(10), [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

}  // namespace dmscore::testing
