#pragma once
// The sources table (sources.hpp). Only this catalog names it in SQL. Every function works
// inside the caller's transaction.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/result.hpp"
#include "dmscore/sources.hpp"
#include "dmscore/store.hpp"

namespace dmscore::detail {

class SourceCatalog {
 public:
  // A row as stored; report, checks and plan are JSON texts.
  struct Stored {
    std::int64_t seq = 0;
    std::string id, name, ip, ipv6, first_mac, state, migration_cycle, migproject_id;
    std::string report, checks, plan, reported_by, workflow_id;
    std::int64_t add_date = 0, reported_at = 0, state_action_time = 0, stage_action_time = 0,
                 last_visit_time = 0, replicate_size = 0;
  };

  static Result<std::optional<Stored>> by_id(Txn& t, const std::string& id);
  static Result<std::optional<Stored>> by_mac(Txn& t, const std::string& mac);
  // ALREADY_EXISTS when the id or the first mac is taken.
  static Status insert(Txn& t, const Stored& s);
  // Writes every column of `s` (by s.id) but seq and add_date. NOT_FOUND.
  static Status update(Txn& t, const Stored& s);
  static Status visit(Txn& t, const std::string& id, std::int64_t now_ms);
  // Whether a row was removed.
  static Result<bool> remove(Txn& t, const std::string& id);

  // The rows matching `q` (its filters; `connected` against `connected_since`, the oldest
  // last_visit_time that counts as connected) newest first: offset paging, or rows before
  // sequence `before` when it is non-zero; and the number of matches ignoring paging.
  static Result<std::pair<std::int64_t, std::vector<Stored>>> list(Txn& t, const SourceQuery& q,
                                                                   std::int64_t connected_since,
                                                                   std::int64_t before,
                                                                   std::int64_t limit);
  // Sources per state.
  static Result<std::vector<std::pair<std::string, std::int64_t>>> per_state(Txn& t);
  // Sources waiting that no migration was set up for.
  static Result<std::int64_t> unconfigured(Txn& t);
};

}  // namespace dmscore::detail
