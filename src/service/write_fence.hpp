#pragma once
// WriteFence: holds back writes to a set of volumes while a group snapshot is taken.
//
// Writers enter() a volume for the duration of one write; a fence raised on a set of volumes
// makes new writers to any of them wait and waits for the writes in progress to finish. A
// raised fence has priority over writers that arrive after it (no starvation of the group
// snapshot by a steady stream of writes), and several fences on one volume nest.

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "dmscore/result.hpp"
#include "dmscore/status.hpp"

namespace dmscore::detail {

class WriteFence {
 public:
  // Lowers what it holds when destroyed.
  class Hold {
   public:
    Hold() = default;
    Hold(Hold&& o) noexcept : fence_(o.fence_), keys_(std::move(o.keys_)), write_(o.write_) {
      o.fence_ = nullptr;
    }
    Hold& operator=(Hold&& o) noexcept {
      if (this != &o) {
        release();
        fence_ = o.fence_;
        keys_ = std::move(o.keys_);
        write_ = o.write_;
        o.fence_ = nullptr;
      }
      return *this;
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold() { release(); }
    void release() {
      if (fence_) fence_->drop(keys_, write_);
      fence_ = nullptr;
    }

   private:
    friend class WriteFence;
    Hold(WriteFence* f, std::vector<std::string> keys, bool write)
        : fence_(f), keys_(std::move(keys)), write_(write) {}
    WriteFence* fence_ = nullptr;
    std::vector<std::string> keys_;
    bool write_ = false;
  };

  // One write to `key` may proceed. UNAVAILABLE when a fence stays up longer than `timeout`.
  Result<Hold> enter(const std::string& key, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return entries_[key].fences == 0; })) {
      prune(key);
      return Status::Unavailable("writes to the volume are held by a group snapshot for over " +
                                 std::to_string(timeout.count()) + " ms; retry");
    }
    ++entries_[key].writers;
    return Hold(this, {key}, true);
  }

  // Raises a fence on every key, then waits until no write to any of them is in progress.
  // UNAVAILABLE (and nothing stays raised) when writes do not finish within `timeout`.
  Result<Hold> raise(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    for (const auto& k : keys) ++entries_[k].fences;
    bool drained = cv_.wait_for(lock, timeout, [&] {
      for (const auto& k : keys)
        if (entries_[k].writers > 0) return false;
      return true;
    });
    if (!drained) {
      lock.unlock();
      drop(keys, false);
      return Status::Unavailable("writes in progress did not finish within " +
                                 std::to_string(timeout.count()) + " ms");
    }
    return Hold(this, keys, false);
  }

  // Volumes with writes in progress or fences raised (for tests).
  std::size_t active_keys() const {
    std::lock_guard lock(mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    int writers = 0;
    int fences = 0;
  };

  void drop(const std::vector<std::string>& keys, bool write) {
    {
      std::lock_guard lock(mu_);
      for (const auto& k : keys) {
        auto& e = entries_[k];
        if (write)
          --e.writers;
        else
          --e.fences;
        prune(k);
      }
    }
    cv_.notify_all();
  }

  void prune(const std::string& key) {
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.writers == 0 && it->second.fences == 0)
      entries_.erase(it);
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;
};

}  // namespace dmscore::detail
