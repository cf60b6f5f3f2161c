#pragma once
// Small readers the catalogs share.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/result.hpp"
#include "dmscore/store.hpp"

namespace dmscore::detail::rows {

// The first column of the first row as text; "" when there is no row.
inline Result<std::string> first_text(Txn& t, std::string_view sql,
                                      const std::vector<SqlValue>& params) {
  auto r = t.query_one(sql, params);
  if (!r.ok()) return r.status();
  return *r ? (*r)->text(0) : std::string();
}

// The first column of the first row as an integer (a COUNT); 0 when there is no row.
inline Result<std::int64_t> integer(Txn& t, std::string_view sql,
                                    const std::vector<SqlValue>& params) {
  auto r = t.query_one(sql, params);
  if (!r.ok()) return r.status();
  return *r ? (*r)->int64(0) : 0;
}

// What `body(Txn&)` (a Result<T>) answers, read in one read transaction of `store`.
template <class T, class F>
Result<T> read(Store& store, F&& body) {
  std::optional<T> out;
  Status s = store.read([&](Txn& t) -> Status {
    auto r = body(t);
    if (!r.ok()) return r.status();
    out = std::move(r).value();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return std::move(*out);
}

}  // namespace dmscore::detail::rows
