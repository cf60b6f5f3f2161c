#pragma once
// File-backed BlockSource / BlockSink for tests, and seeded sparse test images.

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

#include "copy/file_io.hpp"
#include "dmscore/copy.hpp"

namespace dmscore::testing {

// The library's file source and sink (src/file_io.hpp), with the descriptor optionally hidden
// (which keeps the copy engine on its read/write path) and calls counted for the tests.
class FileSource : public BlockSource {
 public:
  explicit FileSource(const std::string& path, bool expose_fd = true) : expose_fd_(expose_fd) {
    auto f = detail::FileSource::open(path);
    if (!f.ok()) std::abort();
    inner_ = std::move(f).value();
  }
  std::uint64_t size() const override { return inner_->size(); }
  Result<std::vector<Extent>> data_extents(std::uint64_t from, std::uint64_t to) const override {
    return inner_->data_extents(from, to);
  }
  Status read_at(std::uint64_t offset, void* buf, std::size_t len) const override {
    return inner_->read_at(offset, buf, len);
  }
  std::optional<int> os_fd() const override { return expose_fd_ ? inner_->os_fd() : std::nullopt; }

 private:
  std::unique_ptr<detail::FileSource> inner_;
  bool expose_fd_;
};

class FileSink : public BlockSink {
 public:
  // `known_zeroed` must only be true for a freshly created (all-hole) file.
  FileSink(const std::string& path, bool known_zeroed, bool expose_fd = true)
      : expose_fd_(expose_fd) {
    auto f = detail::FileSink::open(path, known_zeroed);
    if (!f.ok()) std::abort();
    inner_ = std::move(f).value();
  }
  std::uint64_t size() const override { return inner_->size(); }
  Status write_at(std::uint64_t offset, const void* buf, std::size_t len) override {
    writes.fetch_add(1);
    return inner_->write_at(offset, buf, len);
  }
  Status zero_range(std::uint64_t offset, std::uint64_t len) override {
    zero_ranges.fetch_add(1);
    return inner_->zero_range(offset, len);
  }
  Status sync() override {
    syncs.fetch_add(1);
    return inner_->sync();
  }
  bool known_zeroed() const override { return inner_->known_zeroed(); }
  std::optional<int> os_fd() const override { return expose_fd_ ? inner_->os_fd() : std::nullopt; }

  std::atomic<int> writes{0};
  std::atomic<int> zero_ranges{0};
  std::atomic<int> syncs{0};

 private:
  std::unique_ptr<detail::FileSink> inner_;
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

// Makes `path` a sparse file of `mib` MiB (created when absent) and fills each of its 1 MiB
// `slots` with bytes from `rng`, fsynced.
inline void write_random_slots(const std::string& path, std::uint64_t mib,
                               const std::vector<std::uint64_t>& slots, std::mt19937_64& rng) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(mib << 20)) != 0) std::abort();
  std::string buf(1u << 20, '\0');
  for (auto slot : slots) {
    for (std::size_t i = 0; i < buf.size(); i += 8) {
      const std::uint64_t v = rng();
      std::memcpy(buf.data() + i, &v, 8);
    }
    if (::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(slot << 20)) !=
        static_cast<ssize_t>(buf.size()))
      std::abort();
  }
  if (::fsync(fd) != 0) std::abort();
  ::close(fd);
}

}  // namespace dmscore::testing
