#include "copy/device_io.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace dmscore::detail {

namespace {

bool aligned(std::uint64_t offset, const void* buf, std::size_t len) {
  constexpr std::uint64_t kAlign = 4096;
  return offset % kAlign == 0 && len % kAlign == 0 &&
         reinterpret_cast<std::uintptr_t>(buf) % kAlign == 0;
}

}  // namespace

Result<DeviceFile> DeviceFile::open(const std::string& path, bool writable, std::uint64_t size,
                                    bool direct) {
  DeviceFile d;
  d.path_ = path;
  d.size_ = size;
  const int mode = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  d.buffered_ = Fd(::open(path.c_str(), mode));
  if (!d.buffered_.valid()) return errno_status("open " + path);
  struct stat st {};
  if (::fstat(d.buffered_.get(), &st) != 0) return errno_status("fstat " + path);
  std::uint64_t have = 0;
  if (S_ISBLK(st.st_mode)) {
    d.block_device_ = true;
    if (::ioctl(d.buffered_.get(), BLKGETSIZE64, &have) != 0)
      return errno_status("BLKGETSIZE64 " + path);
  } else if (S_ISREG(st.st_mode)) {
    have = static_cast<std::uint64_t>(st.st_size);
  } else {
    return Status::FailedPrecondition(path + " is neither a block device nor a file");
  }
  if (have < size)
    return Status::FailedPrecondition(path + " holds " + std::to_string(have) +
                                      " bytes, less than the volume's " + std::to_string(size));
  if (writable && direct) {
    // O_DIRECT where accepted (not on tmpfs, for one): the copy's buffers are page-aligned.
    d.direct_ = Fd(::open(path.c_str(), mode | O_DIRECT));
  }
  // Reads go through the page cache for the kernel's readahead, which kept the device busier
  // than O_DIRECT reads of the copy's chunks (docs/benchmarks.md).
  if (!writable) (void)::posix_fadvise(d.buffered_.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return d;
}

// pread or pwrite of [offset, offset + len) to the end: O_DIRECT when aligned and accepted,
// buffered otherwise. A transfer of zero bytes is the device going away (UNAVAILABLE).
template <class Buf, class Op>
Status DeviceFile::transfer(const char* what, std::uint64_t offset, Buf* p, std::size_t len,
                            Op op) const {
  if (offset + len > size_)
    return Status::InvalidArgument(std::string(what) + " past the end of " + path_);
  while (len > 0) {
    const bool use_direct = direct_.valid() && aligned(offset, p, len);
    auto once = [&](int fd) {
      ssize_t n;
      do n = op(fd, p, len, static_cast<off_t>(offset));
      while (n < 0 && errno == EINTR);
      return n;
    };
    ssize_t n = once(use_direct ? direct_.get() : buffered_.get());
    if (n < 0 && errno == EINVAL && use_direct) n = once(buffered_.get());  // O_DIRECT refused
    if (n < 0)
      return errno_status(std::string(what) + " " + path_ + " at " + std::to_string(offset));
    if (n == 0)
      return Status::Unavailable(std::string(what) + " " + path_ + " at " + std::to_string(offset) +
                                 ": the device ended early (it went away or shrank)");
    p += n;
    offset += static_cast<std::uint64_t>(n);
    len -= static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Status DeviceFile::read_at(std::uint64_t offset, void* buf, std::size_t len) const {
  return transfer("read", offset, static_cast<unsigned char*>(buf), len,
                  [](int fd, void* b, std::size_t n, off_t o) { return ::pread(fd, b, n, o); });
}

Status DeviceFile::write_at(std::uint64_t offset, const void* buf, std::size_t len) const {
  return transfer(
      "write", offset, static_cast<const unsigned char*>(buf), len,
      [](int fd, const void* b, std::size_t n, off_t o) { return ::pwrite(fd, b, n, o); });
}

Status DeviceFile::zero_range(std::uint64_t offset, std::uint64_t len) const {
  if (len == 0) return Status::Ok();
  if (block_device_) {
    std::uint64_t range[2] = {offset, len};
    if (::ioctl(buffered_.get(), BLKZEROOUT, range) == 0) return Status::Ok();
  } else if (::fallocate(buffered_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                         static_cast<off_t>(offset), static_cast<off_t>(len)) == 0) {
    return Status::Ok();
  }
  // Neither: write zeros.
  constexpr std::size_t kStep = 1 << 20;
  void* z = nullptr;
  if (posix_memalign(&z, 4096, kStep) != 0) return Status::ResourceExhausted("zero buffer");
  std::memset(z, 0, kStep);
  Status s = Status::Ok();
  while (len > 0 && s.ok()) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, kStep));
    s = write_at(offset, z, n);
    offset += n;
    len -= n;
  }
  std::free(z);
  return s;
}

Status DeviceFile::sync() const {
  if (::fdatasync(buffered_.get()) != 0) return errno_status("flush " + path_);
  return Status::Ok();
}

Result<std::vector<Extent>> DeviceSource::data_extents(std::uint64_t from, std::uint64_t to) const {
  // A block device answers SEEK_DATA with its whole range (it has no holes), so every chunk is
  // read and the all-zero ones found by looking; a file standing in for one tells its holes.
  return seek_data_extents(dev_.fd(), dev_.size(), from, to);
}

}  // namespace dmscore::detail
