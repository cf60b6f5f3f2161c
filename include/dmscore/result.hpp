#pragma once
// Result<T>: either a value of T or a non-OK Status.
//
// The public API never throws; functions that produce a value return Result<T>. Reading the
// value of a failed Result is a bug (asserted in debug builds). Same thread-safety as T.

#include <cassert>
#include <optional>
#include <utility>

#include "dmscore/status.hpp"

namespace dmscore {

template <typename T>
class [[nodiscard]] Result {
 public:
  // A successful result holding `value`.
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  // A failed result. REQUIRES: !status.ok().
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!status_.ok() && "Result constructed from an OK Status without a value");
    if (status_.ok()) status_ = Status::Internal("result without value");
  }

  bool ok() const noexcept { return value_.has_value(); }
  // OK when a value is held, otherwise the error.
  const Status& status() const noexcept { return status_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T value_or(T fallback) const& { return ok() ? *value_ : std::move(fallback); }

  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace dmscore
