#pragma once
// LocalBackend: a storage cluster kept in a local directory, the embedded default.
//
// Layout of the cluster directory:
//   cluster.json            {"id", "name", "createdAt", "format"}: the cluster's identity
//   cluster.db              its metadata (projects, volumes, snapshots), SQLite, WAL
//   .lock                   held (flock) by the one process that has the cluster open
//   data/<uuid>.vol         one sparse file per volume; the volume's devicePath
//   data/<uuid>.snap        one per snapshot, read-only (mode 0444)
//
// A snapshot is made with a reflink (FICLONE) where the filesystem supports it, otherwise with
// a sparse-aware copy. Opening the cluster finishes or rolls back what a crash interrupted:
// half-deleted objects are deleted, data files that no metadata row names are removed.
//
// Safe for concurrent use. Two processes never have one directory open at once: the second
// open answers UNAVAILABLE naming the directory.

#include <memory>
#include <string>

#include "dmscore/backend.hpp"

namespace dmscore {

struct LocalBackendOptions {
  // Copy threads and chunk size for snapshots and thin clones that cannot reflink.
  CopyOptions copy;
  // Default: Env::Default().
  std::shared_ptr<Env> env;
};

class LocalBackend final : public Backend {
 public:
  // Opens the local cluster in `dir`, initialising it when the directory is absent or empty
  // (named `name`, or after the directory when empty). Returns:
  //   INVALID_ARGUMENT     `dir` is not absolute;
  //   FAILED_PRECONDITION  `dir` is not empty and holds no local cluster;
  //   UNAVAILABLE          another process has it open, or it cannot be created.
  static Result<std::unique_ptr<LocalBackend>> open(const std::string& dir,
                                                    const std::string& name = "",
                                                    LocalBackendOptions options = {});

  // True when `dir` holds an initialised local cluster.
  static bool is_cluster_dir(const std::string& dir);

  ~LocalBackend() override;

  const std::string& dir() const;
  const std::string& cluster_id() const;

  Result<ClusterInfo> info() override;
  Result<VolumePage> list_volumes(const std::string& project, const PageRequest& page) override;
  Result<Volume> get_volume(const std::string& project, const std::string& id) override;
  Result<Volume> find_volume(const std::string& project, const std::string& name) override;
  Result<Volume> create_volume(const CreateVolumeRequest& request) override;
  Status mark_volume_available(const std::string& project, const std::string& id) override;
  Status delete_volume(const std::string& project, const std::string& id) override;
  Result<SnapshotPage> list_snapshots(const std::string& project, const PageRequest& page) override;
  Result<Snapshot> get_snapshot(const std::string& project, const std::string& id) override;
  Result<Snapshot> find_snapshot(const std::string& project, const std::string& name) override;
  Result<Snapshot> create_snapshot(const CreateSnapshotRequest& request) override;
  Status delete_snapshot(const std::string& project, const std::string& id) override;
  Result<std::unique_ptr<BlockSource>> open_snapshot_data(const std::string& project,
                                                          const std::string& id) override;
  Result<std::unique_ptr<BlockSource>> open_volume_data(const std::string& project,
                                                        const std::string& id) override;
  Result<std::unique_ptr<BlockSink>> open_volume_sink(const std::string& project,
                                                      const std::string& id, bool fresh) override;

 private:
  struct Impl;
  explicit LocalBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmscore
