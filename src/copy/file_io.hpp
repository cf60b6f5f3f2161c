#pragma once
// File-backed data access for local clusters: BlockSource and BlockSink over a file
// descriptor, plus the small durable-file helpers (atomic write, directory fsync, reflink).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/copy.hpp"

namespace dmscore::detail {

// "<what>: <strerror(errno)>" with the code errno calls for: NOT_FOUND for ENOENT,
// RESOURCE_EXHAUSTED for ENOSPC and EDQUOT (no space left), UNAVAILABLE for EIO, EACCES, EPERM
// and EROFS (a device or permission the service cannot fix by itself), INTERNAL otherwise.
Status errno_status(const std::string& what);
// The same for an explicit errno value.
Status errno_status(const std::string& what, int error);

// Asks `env` (when given and injecting faults) whether a write or sync of `path` fails; the
// failure's Status, or OK.
Status injected_fault(Env* env, FileOp op, const std::string& path);

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// The extents of [from, min(to, size)) of `fd` that may hold data, as SEEK_DATA/SEEK_HOLE tell
// (a block device, or a file system that cannot tell, answers the whole range).
Result<std::vector<Extent>> seek_data_extents(int fd, std::uint64_t size, std::uint64_t from,
                                              std::uint64_t to);

// Reads a regular file or block device; data extents come from SEEK_DATA/SEEK_HOLE.
class FileSource final : public BlockSource {
 public:
  static Result<std::unique_ptr<FileSource>> open(const std::string& path);
  FileSource(Fd fd, std::uint64_t size) : fd_(std::move(fd)), size_(size) {}

  std::uint64_t size() const override { return size_; }
  Result<std::vector<Extent>> data_extents(std::uint64_t from, std::uint64_t to) const override;
  Status read_at(std::uint64_t offset, void* buf, std::size_t len) const override;
  std::optional<int> os_fd() const override { return fd_.get(); }

 private:
  Fd fd_;
  std::uint64_t size_;
};

// Writes a regular file; zero ranges are punched holes. Every write and sync asks `env` for an
// injected fault first (see Env::file_fault).
class FileSink final : public BlockSink {
 public:
  // `fresh`: no byte written yet, so unwritten ranges already read as zero.
  static Result<std::unique_ptr<FileSink>> open(const std::string& path, bool fresh,
                                                std::shared_ptr<Env> env = nullptr);
  FileSink(Fd fd, std::uint64_t size, bool fresh, std::string path = {},
           std::shared_ptr<Env> env = nullptr)
      : fd_(std::move(fd)),
        size_(size),
        fresh_(fresh),
        path_(std::move(path)),
        env_(std::move(env)) {}

  std::uint64_t size() const override { return size_; }
  Status write_at(std::uint64_t offset, const void* buf, std::size_t len) override;
  Status zero_range(std::uint64_t offset, std::uint64_t len) override;
  Status sync() override;
  bool known_zeroed() const override { return fresh_; }
  std::optional<int> os_fd() const override { return fd_.get(); }

 private:
  Fd fd_;
  std::uint64_t size_;
  bool fresh_;
  std::string path_;
  std::shared_ptr<Env> env_;
};

// fsync(2) on a directory, so that a create, rename or unlink in it is durable.
Status fsync_dir(const std::string& dir);

// Writes `data` to `path` atomically and durably: temp file, fsync, rename, directory fsync
// (skipped with `sync_dir` false, for a caller that fsyncs the directory itself). The file gets
// `mode`, and group `gid` unless it is -1.
Status write_file_atomic(const std::string& path, const std::string& data, unsigned mode = 0600,
                         Env* env = nullptr, bool sync_dir = true, int gid = -1);

// Reads a whole small file. NOT_FOUND when it does not exist.
Result<std::string> read_small_file(const std::string& path, std::size_t limit = 1 << 20);

// Makes `dst` (created, mode `mode`, group `gid` unless -1) a copy of `src`, extended with zeros
// to `dst_size`: a reflink (FICLONE) when the filesystem can, otherwise a sparse-aware copy with
// `copy`, which `stop` may cut short (CANCELLED; `dst` is then left for the caller to remove).
// The result is fsynced, not its directory. Returns whether a reflink was used.
Result<bool> clone_file(const std::string& src, const std::string& dst, std::uint64_t dst_size,
                        const CopyEngine& copy, unsigned mode, int gid = -1,
                        const StopFn& stop = {}, std::shared_ptr<Env> env = nullptr);

// Creates `path` (O_EXCL) as an empty sparse file of `size` bytes, mode `mode` and group `gid`
// (unless -1), fsynced. ALREADY_EXISTS when it exists.
Status create_sparse_file(const std::string& path, std::uint64_t size, unsigned mode, int gid,
                          Env* env = nullptr);

// Renames `from` to `to` without replacing anything: ALREADY_EXISTS when `to` exists.
Status rename_noreplace(const std::string& from, const std::string& to);

// Makes the service's data directory 0700 and its database, journal, audit log and password
// files 0600 when they are looser, logging each change.
Status keep_private(const std::string& data_dir, const std::function<void(std::string_view)>& log);

// The gid of a group given by name or number. INVALID_ARGUMENT naming
// local_cluster_file_group for an unknown group.
Result<int> group_id(const std::string& group);

// The bytes `path` occupies on disk (st_blocks * 512).
Result<std::uint64_t> allocated_bytes(const std::string& path);

}  // namespace dmscore::detail
