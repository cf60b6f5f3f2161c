#pragma once
// What the migration files share (migrations.hpp): the checksum files, the live streams of
// disks, and the few transitions both the operator's calls and the workflow make.
//
// Per migrated disk the service keeps, in <data_dir>/migrations/<migration>/<disk>.sums, 16
// bytes per chunk: the XXH3-128 of what the destination volume holds there, all zero for a chunk
// that reads as zeros (a fresh file: a fresh volume), all 0xff for one it cannot vouch for.
// Data goes in this order, so that a crash anywhere leaves no checksum that claims what the
// volume does not hold:
//   1. (request) the entries of the chunks about to be written become 0xff, fdatasync;
//   2. (request) the chunks are written into the volume;
//   3. (flusher) the volume is synced; the new entries are written, fdatasync;
//   4. (flusher) the acknowledged offset commits in the store.
// At most the window (unacknowledged bytes) is lost to a crash and sent again.

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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

// One disk's stream in this process: its session, its open volume and checksum file, and what
// was received but is not yet durable. Requests write a batch into the volume (its checksum
// entries forgotten first, durably) and answer at once; the flusher makes what was received
// durable in the background (volume synced, then its checksums, then the acknowledged offset
// committed), so the next batch travels while the last one reaches the disk. A request waits
// while more than the window is unacknowledged. All fields are guarded by `mu`.
struct DiskStream {
  std::mutex mu;
  std::condition_variable cv;  // acknowledged offset moved, failure, stop
  std::string session;
  std::unique_ptr<BlockSink> sink;
  Fd sums;
  std::int64_t pass = -1;
  std::uint64_t received = 0;  // of the session: every byte below is in the volume's cache
  std::uint64_t acked = 0;     // durable and committed
  // Checksum entries (chunk index, 16 bytes) of what was received and is not yet durable, and
  // its payload bytes (of them, sent again after an interruption).
  std::vector<std::pair<std::uint64_t, std::string>> pending;
  std::uint64_t pending_bytes = 0, pending_resent = 0;
  Status failed;  // the flusher's failure: the session is over
  bool stopping = false;
  std::thread flusher;

  ~DiskStream() { stop(); }
  // Stops the flusher (what it has not flushed stays unacknowledged: a new session sends it
  // again) and closes everything; requests waiting are answered ABORTED. The object stays
  // usable: a new session starts it again.
  void stop() {
    std::thread t;
    {
      std::lock_guard lock(mu);
      stopping = true;
      session.clear();
      t = std::move(flusher);
    }
    cv.notify_all();
    if (t.joinable()) {
      if (t.get_id() == std::this_thread::get_id())
        t.detach();  // the flusher itself held the last reference
      else
        t.join();
    }
    std::lock_guard lock(mu);
    sink.reset();
    sums = Fd();
    pending.clear();
    pending_bytes = pending_resent = 0;
  }
};

// The streams of the disks being migrated. One DiskStream per disk for as long as its migration
// runs, so that two sessions of a disk (a stop and a start, an agent reconnecting) never have
// two flushers: a new session stops the last one's first.
class MigrationStreams {
 public:
  std::shared_ptr<DiskStream> disk(const std::string& migration_id, std::size_t idx) {
    std::lock_guard lock(mu_);
    auto& d = disks_[{migration_id, idx}];
    if (!d) d = std::make_shared<DiskStream>();
    return d;
  }
  // Stops the migration's streams (a stop, the cutover), keeping them for a later session.
  void stop(const std::string& migration_id) {
    for (auto& d : of(migration_id, false)) d->stop();
  }
  // Stops them and forgets them: the migration has ended.
  void forget(const std::string& migration_id) {
    for (auto& d : of(migration_id, true)) d->stop();
  }
  // Every stream (the service is closing).
  void stop_all() {
    std::vector<std::shared_ptr<DiskStream>> all;
    {
      std::lock_guard lock(mu_);
      for (auto& [k, d] : disks_) all.push_back(d);
      disks_.clear();
    }
    for (auto& d : all) d->stop();
  }

 private:
  std::vector<std::shared_ptr<DiskStream>> of(const std::string& migration_id, bool erase) {
    std::vector<std::shared_ptr<DiskStream>> out;
    std::lock_guard lock(mu_);
    for (auto it = disks_.begin(); it != disks_.end();) {
      if (it->first.first == migration_id) {
        out.push_back(it->second);
        it = erase ? disks_.erase(it) : std::next(it);
      } else {
        ++it;
      }
    }
    return out;
  }

  std::mutex mu_;
  std::map<std::pair<std::string, std::size_t>, std::shared_ptr<DiskStream>> disks_;
};

// The source's states as the migration moves them (SMS's lower-case states and cycles).
Status set_source_stage(ServiceImpl& im, Txn& t, const std::string& source_id,
                        const std::string& state, const std::string& cycle);

// Registers MIGRATE_SOURCE_SERVER (workflows/migrate_source.cpp).
Status register_migrate_source(WorkflowEngine& engine, ServiceImpl& im);

}  // namespace dmscore::detail
