#pragma once
// File-backed BlockSource / BlockSink for tests, and seeded sparse test images.
//
// Self-contained on purpose: the library's own file backend is under test elsewhere, and these
// must stay simple enough to trust.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "dmscore/copy.hpp"

namespace dmscore::testing {

inline Status errno_status(const std::string& what) {
  return Status::Internal(what + ": " + std::error_code(errno, std::generic_category()).message());
}

class FileSource : public BlockSource {
 public:
  // `expose_fd` false hides the descriptor, which keeps the engine on its read/write path.
  explicit FileSource(const std::string& path, bool expose_fd = true) : expose_fd_(expose_fd) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) std::abort();
    struct stat st {};
    if (::fstat(fd_, &st) != 0) std::abort();
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  std::uint64_t size() const override { return size_; }

  Result<std::vector<Extent>> data_extents(std::uint64_t from, std::uint64_t to) const override {
    std::vector<Extent> out;
    std::uint64_t pos = from;
    while (pos < to) {
      off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO) break;  // no data after pos
        return errno_status("SEEK_DATA");
      }
      if (static_cast<std::uint64_t>(data) >= to) break;
      off_t hole = ::lseek(fd_, data, SEEK_HOLE);
      if (hole < 0) return errno_status("SEEK_HOLE");
      std::uint64_t end = std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), to);
      out.push_back({static_cast<std::uint64_t>(data), end - static_cast<std::uint64_t>(data)});
      pos = end;
    }
    return out;
  }

  Status read_at(std::uint64_t offset, void* buf, std::size_t len) const override {
    auto* p = static_cast<unsigned char*>(buf);
    while (len > 0) {
      ssize_t n = ::pread(fd_, p, len, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status("pread");
      }
      if (n == 0) {
        std::memset(p, 0, len);
        return Status::Ok();
      }
      p += n;
      offset += static_cast<std::uint64_t>(n);
      len -= static_cast<std::size_t>(n);
    }
    return Status::Ok();
  }

  std::optional<int> os_fd() const override {
    if (!expose_fd_) return std::nullopt;
    return fd_;
  }

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
  bool expose_fd_;
};

class FileSink : public BlockSink {
 public:
  // `known_zeroed` must only be true for a freshly created (all-hole) file.
  FileSink(const std::string& path, bool known_zeroed, bool expose_fd = true)
      : known_zeroed_(known_zeroed), expose_fd_(expose_fd) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) std::abort();
    struct stat st {};
    if (::fstat(fd_, &st) != 0) std::abort();
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  ~FileSink() override { ::close(fd_); }
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  std::uint64_t size() const override { return size_; }

  Status write_at(std::uint64_t offset, const void* buf, std::size_t len) override {
    writes.fetch_add(1);
    const auto* p = static_cast<const unsigned char*>(buf);
    while (len > 0) {
      ssize_t n = ::pwrite(fd_, p, len, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status("pwrite");
      }
      p += n;
      offset += static_cast<std::uint64_t>(n);
      len -= static_cast<std::size_t>(n);
    }
    return Status::Ok();
  }

  Status zero_range(std::uint64_t offset, std::uint64_t len) override {
    zero_ranges.fetch_add(1);
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(len)) == 0) {
      return Status::Ok();
    }
    if (errno != EOPNOTSUPP) return errno_status("fallocate");
    std::vector<unsigned char> zeros(std::min<std::uint64_t>(len, 1u << 20));
    while (len > 0) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, zeros.size()));
      if (Status s = write_at(offset, zeros.data(), n); !s.ok()) return s;
      offset += n;
      len -= n;
    }
    return Status::Ok();
  }

  Status sync() override {
    syncs.fetch_add(1);
    if (::fsync(fd_) != 0) return errno_status("fsync");
    return Status::Ok();
  }

  bool known_zeroed() const override { return known_zeroed_; }

  std::optional<int> os_fd() const override {
    if (!expose_fd_) return std::nullopt;
    return fd_;
  }

  std::atomic<int> writes{0};
  std::atomic<int> zero_ranges{0};
  std::atomic<int> syncs{0};

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
  bool known_zeroed_;
  bool expose_fd_;
};

// Bytes of random data from a seeded generator.
inline std::vector<unsigned char> random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<unsigned char> out(n);
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<std::size_t>(8, n - i));
  }
  return out;
}

// Creates (or truncates) `path` as a hole of `size` bytes.
inline void make_hole_image(const std::string& path, std::uint64_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) std::abort();
  ::close(fd);
}

// Writes `data` at `offset` of an existing file and makes it durable, so st_blocks is final.
inline void write_file_at(const std::string& path, std::uint64_t offset, const void* data,
                          std::size_t len) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) std::abort();
  if (::pwrite(fd, data, len, static_cast<off_t>(offset)) != static_cast<ssize_t>(len)) {
    std::abort();
  }
  if (::fsync(fd) != 0) std::abort();
  ::close(fd);
}

// A `size`-byte image holding `count` random 1 MiB data extents at distinct 1 MiB-aligned
// offsets chosen by `seed`, holes elsewhere. Returns the extents in offset order.
inline std::vector<Extent> make_sparse_image(const std::string& path, std::uint64_t size, int count,
                                             std::uint64_t seed) {
  constexpr std::uint64_t kMiB = 1u << 20;
  make_hole_image(path, size);
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> slots(size / kMiB);
  for (std::size_t i = 0; i < slots.size(); ++i) slots[i] = i;
  std::shuffle(slots.begin(), slots.end(), rng);
  slots.resize(std::min<std::size_t>(slots.size(), static_cast<std::size_t>(count)));
  std::sort(slots.begin(), slots.end());
  std::vector<Extent> extents;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) std::abort();
  for (std::uint64_t slot : slots) {
    std::vector<unsigned char> data = random_bytes(kMiB, rng());
    if (::pwrite(fd, data.data(), kMiB, static_cast<off_t>(slot * kMiB)) !=
        static_cast<ssize_t>(kMiB)) {
      std::abort();
    }
    extents.push_back({slot * kMiB, kMiB});
  }
  if (::fsync(fd) != 0) std::abort();
  ::close(fd);
  return extents;
}

// Space the file occupies on disk.
inline std::uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) std::abort();
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

// The whole file.
inline std::vector<unsigned char> file_bytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) std::abort();
  struct stat st {};
  if (::fstat(fd, &st) != 0) std::abort();
  std::vector<unsigned char> out(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return out;
}

}  // namespace dmscore::testing
