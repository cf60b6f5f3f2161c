#pragma once
// File-backed data access for local clusters: BlockSource and BlockSink over a file
// descriptor, plus the small durable-file helpers (atomic write, directory fsync, reflink).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/copy.hpp"

namespace dmscore::detail {

// INTERNAL "<what>: <strerror(errno)>".
Status errno_status(const std::string& what);

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

// Writes a regular file; zero ranges are punched holes.
class FileSink final : public BlockSink {
 public:
  // `fresh`: no byte written yet, so unwritten ranges already read as zero.
  static Result<std::unique_ptr<FileSink>> open(const std::string& path, bool fresh);
  FileSink(Fd fd, std::uint64_t size, bool fresh)
      : fd_(std::move(fd)), size_(size), fresh_(fresh) {}

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
};

// fsync(2) on a directory, so that a create, rename or unlink in it is durable.
Status fsync_dir(const std::string& dir);

// Writes `data` to `path` atomically and durably: temp file, fsync, rename, directory fsync.
Status write_file_atomic(const std::string& path, const std::string& data, unsigned mode = 0644);

// Reads a whole small file. NOT_FOUND when it does not exist.
Result<std::string> read_small_file(const std::string& path, std::size_t limit = 1 << 20);

// Makes `dst` (created, mode `mode`) a copy of `src`'s first `size` bytes, extended with zeros
// to `dst_size`: a reflink (FICLONE) when the filesystem can, otherwise a sparse-aware copy with
// `copy`. The result is fsynced. Returns whether a reflink was used.
Result<bool> clone_file(const std::string& src, const std::string& dst, std::uint64_t dst_size,
                        const CopyEngine& copy, unsigned mode);

// The bytes `path` occupies on disk (st_blocks * 512).
Result<std::uint64_t> allocated_bytes(const std::string& path);

}  // namespace dmscore::detail
