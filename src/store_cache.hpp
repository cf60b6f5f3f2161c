#pragma once
// A value read from the store and kept in memory until the next write made through write():
// exact as long as one process owns the store (the data directory's lock) and every write to
// the rows it reflects goes through write(). While a write is under way nothing is served from
// it or put into it, so a read that starts after a write was acknowledged always sees that
// write; the generation keeps a read that overlapped a write from caching what it read.

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "dmscore/result.hpp"
#include "dmscore/store.hpp"

namespace dmscore::detail {

template <class T>
class StoreCache {
 public:
  // The kept value, or read()'s (kept unless a write overlapped it).
  Result<T> get(const std::function<Result<T>()>& read) const {
    std::uint64_t gen;
    {
      std::lock_guard lock(mu_);
      if (writers_ == 0 && value_) return *value_;
      gen = gen_;
    }
    auto v = read();
    if (!v.ok()) return v.status();
    std::lock_guard lock(mu_);
    if (gen == gen_ && writers_ == 0) value_ = *v;
    return v;
  }

  // store.transact(fn), with the kept value dropped before and after.
  Status write(Store& store, const std::function<Status(Txn&)>& fn) {
    {
      std::lock_guard lock(mu_);
      ++writers_;
      ++gen_;
      value_.reset();
    }
    Status s = store.transact(fn);
    std::lock_guard lock(mu_);
    --writers_;
    ++gen_;
    value_.reset();
    return s;
  }

 private:
  mutable std::mutex mu_;
  mutable std::optional<T> value_;
  std::uint64_t gen_ = 0;
  int writers_ = 0;
};

}  // namespace dmscore::detail
