#pragma once
// What the migration files share (migrations.hpp): the checksum files, the live streams of
// disks, and the few transitions both the operator's calls and the workflow make.
//
// Per migrated disk the service keeps, in <data_dir>/migrations/<migration>/<disk>.sums, 16
// bytes per chunk: the XXH3-128 of what the destination volume holds there, all zero for a chunk
// that reads as zeros (a fresh file: a fresh volume), all 0xff for one it cannot vouch for.
// A window is written in this order, so that a crash anywhere leaves no checksum that claims
// what the volume does not hold:
//   1. the entries of the chunks about to be written become 0xff, fdatasync;
//   2. the chunks are written into the volume, which is synced;
//   3. their new entries are written, fdatasync;
//   4. the acknowledged offset commits in the store.
// A window without chunks (nothing changed in its range) is step 4 alone.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "copy/file_io.hpp"
#include "dmscore/backend.hpp"
#include "dmscore/copy.hpp"
#include "dmscore/migrations.hpp"

namespace dmscore::detail {

struct ServiceImpl;

inline constexpr const char* kMigrateSourceServer = "MIGRATE_SOURCE_SERVER";
inline constexpr std::size_t kChecksumBytes = 16;

// The checksum file of a disk.
std::string sums_dir(const std::string& data_dir, const std::string& migration_id);
std::string sums_path(const std::string& data_dir, const std::string& migration_id,
                      std::size_t disk);
inline std::uint64_t chunk_count(std::uint64_t size, std::uint64_t chunk) {
  return (size + chunk - 1) / chunk;
}

// One disk's stream in this process: its session, its open volume and checksum file. Windows
// and opens of a disk are serialized by `mu`.
struct DiskStream {
  std::mutex mu;
  std::string session;
  std::unique_ptr<BlockSink> sink;
  Fd sums;
};

class MigrationStreams {
 public:
  std::shared_ptr<DiskStream> disk(const std::string& migration_id, std::size_t idx) {
    std::lock_guard lock(mu_);
    auto& d = disks_[{migration_id, idx}];
    if (!d) d = std::make_shared<DiskStream>();
    return d;
  }
  // Closes the migration's volumes and files (its end, a stop, a cancel).
  void drop(const std::string& migration_id) {
    std::lock_guard lock(mu_);
    for (auto it = disks_.begin(); it != disks_.end();) {
      if (it->first.first == migration_id) {
        std::lock_guard dl(it->second->mu);
        it->second->session.clear();
        it->second->sink.reset();
        it->second->sums = Fd();
        it = disks_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  std::mutex mu_;
  std::map<std::pair<std::string, std::size_t>, std::shared_ptr<DiskStream>> disks_;
};

// The source's states as the migration moves them (SMS's lower-case states and cycles).
Status set_source_stage(ServiceImpl& im, Txn& t, const std::string& source_id,
                        const std::string& state, const std::string& cycle);

// Registers MIGRATE_SOURCE_SERVER (workflows/migrate_source.cpp).
Status register_migrate_source(WorkflowEngine& engine, ServiceImpl& im);

}  // namespace dmscore::detail
