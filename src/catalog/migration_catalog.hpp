#pragma once
// The migrations and migration_disks tables (migrations.hpp). Only this catalog names them in
// SQL. Every function works inside the caller's transaction.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/migrations.hpp"
#include "dmscore/result.hpp"
#include "dmscore/store.hpp"

namespace dmscore::detail {

class MigrationCatalog {
 public:
  // The migration with its disks (in index order); nullopt when there is none.
  static Result<std::optional<SourceMigration>> by_id(Txn& t, const std::string& id);
  // The source's most recent migration.
  static Result<std::optional<SourceMigration>> latest_of(Txn& t, const std::string& source_id);
  // Inserts `m` and its disks. ALREADY_EXISTS for a known id.
  static Status insert(Txn& t, const SourceMigration& m, std::int64_t now_ms);
  // Writes the migration's own columns (not its disks). NOT_FOUND.
  static Status update(Txn& t, const SourceMigration& m);
  // Writes one disk's columns. NOT_FOUND.
  static Status update_disk(Txn& t, const std::string& migration_id, std::size_t idx,
                            const MigrationDisk& d);
  // What drivers made to reach the migration's volumes: "<cluster>\t<resource>" lines.
  static Status add_held(Txn& t, const std::string& migration_id, const std::string& line);
  static Result<std::vector<std::string>> held(Txn& t, const std::string& migration_id);
  static Status clear_held(Txn& t, const std::string& migration_id);
  // Starts pass `pass`: every disk back to offset 0 with its pass counters cleared.
  static Status begin_pass(Txn& t, const std::string& migration_id, std::int64_t pass,
                           std::int64_t now_ms);
};

}  // namespace dmscore::detail
