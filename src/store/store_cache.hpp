#pragma once
// Values read from the store and kept in memory until the next write made through write():
// exact as long as one process owns the store (the data directory's lock) and every write to
// the rows they reflect goes through write(). While a write is under way nothing is served from
// the cache or put into it, so a read that starts after a write was acknowledged always sees
// that write; the generation keeps a read that overlapped a write from keeping what it read.
// Used for the users (keyed by name) and the cluster list (one key).
//
// Shared stores (PostgreSQL, several instances): after share(), every write also bumps the
// cache's row in `cache_versions` in its own transaction, and get() first reads that row: a
// value is served only while the version it was read at is still current, so no instance serves
// what another has changed since (one small read per get instead of the whole value).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "dmscore/result.hpp"
#include "dmscore/store.hpp"

namespace dmscore::detail {

template <class Key, class T>
class StoreCache {
 public:
  StoreCache() = default;
  // Emptied when it would hold more than `capacity` keys (default 10000).
  explicit StoreCache(std::size_t capacity) : capacity_(capacity) {}

  // Makes the cache exact across instances sharing `store` (see above). Call before use.
  void share(Store* store, std::string name) {
    shared_store_ = store;
    name_ = std::move(name);
  }

  // The value kept for `key`, or read()'s (kept unless a write overlapped it).
  Result<T> get(const Key& key, const std::function<Result<T>()>& read) const {
    if (shared_store_) {
      std::int64_t v = -1;
      Status s = shared_store_->read([&](Txn& t) -> Status {
        auto r = t.query_one("SELECT version FROM cache_versions WHERE name = ?", {name_});
        if (!r.ok()) return r.status();
        v = *r ? (*r)->int64(0) : 0;
        return Status::Ok();
      });
      if (!s.ok()) return s;
      std::lock_guard lock(mu_);
      if (v != version_) {
        values_.clear();
        version_ = v;
        ++gen_;
      }
    }
    std::uint64_t gen;
    {
      std::lock_guard lock(mu_);
      if (auto it = values_.find(key); writers_ == 0 && it != values_.end()) return it->second;
      gen = gen_;
    }
    auto v = read();
    if (!v.ok()) return v.status();
    std::lock_guard lock(mu_);
    if (gen == gen_ && writers_ == 0) {
      if (values_.size() >= capacity_) values_.clear();
      values_.insert_or_assign(key, *v);
    }
    return v;
  }

  // store.transact(fn), with every kept value dropped before and after.
  Status write(Store& store, const std::function<Status(Txn&)>& fn) {
    begin_write();
    Status s = shared_store_ ? store.transact([&](Txn& t) -> Status {
      if (Status w = fn(t); !w.ok()) return w;
      auto r =
          t.exec("INSERT OR IGNORE INTO cache_versions (name, version) VALUES (?, 0)", {name_});
      if (!r.ok()) return r.status();
      return t.exec("UPDATE cache_versions SET version = version + 1 WHERE name = ?", {name_})
          .status();
    })
                             : store.transact(fn);
    end_write();
    return s;
  }

 private:
  void begin_write() {
    std::lock_guard lock(mu_);
    ++writers_;
    ++gen_;
    values_.clear();
  }
  void end_write() {
    std::lock_guard lock(mu_);
    --writers_;
    ++gen_;
    values_.clear();
  }

  std::size_t capacity_ = 10000;
  mutable std::mutex mu_;
  mutable std::unordered_map<Key, T> values_;
  mutable std::uint64_t gen_ = 0;
  int writers_ = 0;
  Store* shared_store_ = nullptr;
  std::string name_;
  mutable std::int64_t version_ = -1;
};

}  // namespace dmscore::detail
