#pragma once
// LocalBackend: a storage cluster kept in a local directory, the embedded default.
//
// Layout of the cluster directory:
//   cluster.json            {"id", "name", "createdAt", "format"}: the cluster's identity
//   cluster.db              its metadata (projects, volumes, snapshots), SQLite, WAL
//   .lock                   held (flock) by the one process that has the cluster open
//   data/<uuid>.vol         one sparse file per volume; the volume's devicePath (mode 0600)
//   data/<uuid>.snap        one per snapshot, read-only (mode 0400)
//   data/<uuid>.*.meta      the object's sidecar: what the metadata says of it (id, kind, name,
//                           project, size, source, ...), written before the data file appears
//   data/<uuid>.*.tmp       a data file being made; renamed into place once whole
//   lost+found/             what the cluster keeps aside: files it cannot explain, and the
//                           metadata a repair replaced
//   import/                 raw images an operator put there to be adopted (manage_volume),
//                           and where volumes given back (unmanage_volume) go
//
// Data is never deleted on a guess. Creating an object records it in cluster.db first (the
// intent), then writes its sidecar, then makes its data file under a temporary name and renames
// it into place; deleting records the intent, then unlinks. Opening the cluster finishes or
// rolls back exactly what such intents describe. A file nothing explains is moved to
// lost+found/, logged and counted, never removed.
//
// Because every data file carries its sidecar, the metadata can be rebuilt from the folder
// alone. A cluster whose cluster.db is missing, unreadable, empty or older than its files
// (data files it does not name, or objects whose files are gone) opens as needing repair:
// repair_needed() says why, every other call but info() answers FAILED_PRECONDITION, and
// nothing is written until repair() rebuilds the metadata.
//
// Adopting (manage_volume): the candidates are the files under import/ and lost+found/. The row
// is recorded first (Creating, with the file's path), then the sidecar; then the file is renamed
// into data/ (no byte copied), extended with zeros to whole GiB and made Available. A restart
// finishes an adoption whose file moved and rolls back one whose file did not (the row and the
// sidecar go; the file is not touched). Giving back (unmanage_volume) records where the file
// goes, renames it there, then drops the sidecar and the row; a restart finishes it. A candidate
// whose file name holds an '@' is a snapshot (import/<volume file>@<snapshot>): snapshots are
// adopted the same way (manage_snapshot), each as a snapshot of the managed volume that was
// adopted from import/<volume file>.
//
// A snapshot is made with a reflink (FICLONE) where the filesystem supports it, otherwise with
// a sparse-aware copy, which a caller's deadline (detail::CallScope) cuts short.
//
// Safe for concurrent use. Two processes never have one directory open at once: the second
// open answers UNAVAILABLE naming the directory.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/backend.hpp"

namespace dmscore {

struct LocalBackendOptions {
  // Copy threads and chunk size for snapshots and thin clones that cannot reflink.
  CopyOptions copy;
  // Default: Env::Default().
  std::shared_ptr<Env> env;
  // A group allowed to read the data: volume files 0640, snapshots 0440, directories 0750, all
  // owned by this gid. -1: none (0600, 0400, 0700). Default: -1.
  int file_group = -1;
  // Receives a line for everything set aside or fixed on open (never a secret). Default: none.
  std::function<void(std::string_view)> log;
  // How long list_manageable_volumes() waits between its two looks at the candidates (one
  // whose size or modification time changed is being written, so not safe). Default: 100 ms.
  std::chrono::milliseconds manage_settle_time{100};
};

// What repair() found and did.
struct RepairReport {
  // Objects recorded from their data files and sidecars.
  int volumes = 0;
  int snapshots = 0;
  // Files moved into lost+found/ (paths relative to the cluster directory, where they now are).
  std::vector<std::string> set_aside;
  // Objects the replaced metadata named whose data files were gone ("volume <id> (<name>)").
  std::vector<std::string> missing;
  // Where the replaced cluster.db was kept, relative to the cluster directory; empty when there
  // was none.
  std::string previous_metadata;
};

class LocalBackend final : public Backend {
 public:
  // Opens the local cluster in `dir`, initialising it when the directory is absent or empty
  // (named `name`, or after the directory when empty). Returns:
  //   INVALID_ARGUMENT     `dir` is not absolute;
  //   FAILED_PRECONDITION  `dir` is not empty and holds no local cluster, lies inside another
  //                        local cluster's directory, or its metadata was written by a newer
  //                        release;
  //   UNAVAILABLE          another process has it open, or it cannot be created.
  // A cluster that needs repair opens (see the file comment).
  static Result<std::unique_ptr<LocalBackend>> open(const std::string& dir,
                                                    const std::string& name = "",
                                                    LocalBackendOptions options = {});

  // True when `dir` holds an initialised local cluster.
  static bool is_cluster_dir(const std::string& dir);

  ~LocalBackend() override;

  const std::string& dir() const;
  const std::string& cluster_id() const;

  Result<ClusterInfo> info() override;
  Status repair_needed() const override;

  // Rebuilds cluster.db from the data files and their sidecars: every whole data file with a
  // sidecar of this cluster becomes its object again (a held volume stays held); every other
  // file is moved to lost+found/; the old cluster.db (if any) is kept there too. Idempotent and
  // safe to interrupt at any point (kill -9 included): it only renames files and swaps in the
  // new metadata last, so running it again finishes the job. FAILED_PRECONDITION when the
  // cluster does not need repair.
  Result<RepairReport> repair();

  // Files moved into lost+found/ since this open.
  std::uint64_t set_aside_count() const;

  Result<VolumePage> list_volumes(const std::string& project, const PageRequest& page) override;
  Result<Volume> get_volume(const std::string& project, const std::string& id) override;
  Result<Volume> find_volume(const std::string& project, const std::string& name) override;
  Result<Volume> create_volume(const CreateVolumeRequest& request) override;
  Status mark_volume_available(const std::string& project, const std::string& id) override;
  Status delete_volume(const std::string& project, const std::string& id) override;
  Result<SnapshotPage> list_snapshots(const std::string& project, const PageRequest& page) override;
  Result<Snapshot> get_snapshot(const std::string& project, const std::string& id) override;
  Result<Snapshot> find_snapshot(const std::string& project, const std::string& name) override;
  Result<std::vector<ManageableObject>> list_manageable_volumes() override;
  Result<Volume> manage_volume(const ManageVolumeRequest& request) override;
  Result<std::string> unmanage_volume(const std::string& project, const std::string& id) override;
  Result<std::vector<ManageableObject>> list_manageable_snapshots() override;
  Result<Snapshot> manage_snapshot(const ManageSnapshotRequest& request) override;
  Result<std::string> unmanage_snapshot(const std::string& project, const std::string& id) override;
  Result<Snapshot> create_snapshot(const CreateSnapshotRequest& request) override;
  Status delete_snapshot(const std::string& project, const std::string& id) override;
  Result<std::unique_ptr<BlockSource>> open_snapshot_data(const std::string& project,
                                                          const std::string& id,
                                                          const DataAccess& access) override;
  Result<std::unique_ptr<BlockSource>> open_volume_data(const std::string& project,
                                                        const std::string& id,
                                                        const DataAccess& access) override;
  Result<std::unique_ptr<BlockSink>> open_volume_sink(const std::string& project,
                                                      const std::string& id, bool fresh,
                                                      const DataAccess& access) override;

 private:
  struct Impl;
  explicit LocalBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmscore
