#include "file_io.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace dmscore::detail {

Status errno_status(const std::string& what) {
  int e = errno;
  std::string msg = what + ": " + std::error_code(e, std::generic_category()).message();
  if (e == ENOENT) return Status::NotFound(std::move(msg));
  if (e == ENOSPC || e == EDQUOT) return Status::ResourceExhausted(std::move(msg));
  if (e == EACCES || e == EPERM || e == EROFS) return Status::Unavailable(std::move(msg));
  return Status::Internal(std::move(msg));
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

namespace {

Result<std::uint64_t> fd_size(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_status("fstat");
  if (S_ISBLK(st.st_mode)) {
    std::uint64_t bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) return errno_status("BLKGETSIZE64");
    return bytes;
  }
  return static_cast<std::uint64_t>(st.st_size);
}

}  // namespace

Result<std::unique_ptr<FileSource>> FileSource::open(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_status("open " + path);
  auto size = fd_size(fd.get());
  if (!size.ok()) return size.status();
  return std::make_unique<FileSource>(std::move(fd), *size);
}

Result<std::vector<Extent>> FileSource::data_extents(std::uint64_t from, std::uint64_t to) const {
  std::vector<Extent> out;
  to = std::min(to, size_);
  std::uint64_t pos = from;
  while (pos < to) {
    off_t data = ::lseek(fd_.get(), static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;                     // only a hole after pos
      if (errno == EINVAL || errno == EOPNOTSUPP) {  // cannot tell: all may be data
        out.push_back({pos, to - pos});
        break;
      }
      return errno_status("SEEK_DATA");
    }
    auto d = static_cast<std::uint64_t>(data);
    if (d >= to) break;
    off_t hole = ::lseek(fd_.get(), data, SEEK_HOLE);
    if (hole < 0) return errno_status("SEEK_HOLE");
    std::uint64_t end = std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), to);
    out.push_back({d, end - d});
    pos = end;
  }
  return out;
}

Status FileSource::read_at(std::uint64_t offset, void* buf, std::size_t len) const {
  auto* p = static_cast<unsigned char*>(buf);
  while (len > 0) {
    ssize_t n = ::pread(fd_.get(), p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("pread at " + std::to_string(offset));
    }
    if (n == 0) {  // past the end of the file: zeros
      std::memset(p, 0, len);
      return Status::Ok();
    }
    p += n;
    offset += static_cast<std::uint64_t>(n);
    len -= static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Result<std::unique_ptr<FileSink>> FileSink::open(const std::string& path, bool fresh) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return errno_status("open " + path);
  auto size = fd_size(fd.get());
  if (!size.ok()) return size.status();
  return std::make_unique<FileSink>(std::move(fd), *size, fresh);
}

Status FileSink::write_at(std::uint64_t offset, const void* buf, std::size_t len) {
  const auto* p = static_cast<const unsigned char*>(buf);
  while (len > 0) {
    ssize_t n = ::pwrite(fd_.get(), p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("pwrite at " + std::to_string(offset));
    }
    p += n;
    offset += static_cast<std::uint64_t>(n);
    len -= static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Status FileSink::zero_range(std::uint64_t offset, std::uint64_t len) {
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) == 0)
    return Status::Ok();
  if (errno != EOPNOTSUPP) return errno_status("punch hole at " + std::to_string(offset));
  static const std::vector<unsigned char> kZeros(1 << 20, 0);
  while (len > 0) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(len, kZeros.size()));
    if (Status s = write_at(offset, kZeros.data(), n); !s.ok()) return s;
    offset += n;
    len -= n;
  }
  return Status::Ok();
}

Status FileSink::sync() {
  if (::fsync(fd_.get()) != 0) return errno_status("fsync");
  return Status::Ok();
}

Status fsync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno_status("open directory " + dir);
  if (::fsync(fd.get()) != 0) return errno_status("fsync directory " + dir);
  return Status::Ok();
}

namespace {

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Status write_file_atomic(const std::string& path, const std::string& data, unsigned mode) {
  std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) return errno_status("create " + tmp);
  if (::fchmod(fd.get(), mode) != 0) return errno_status("chmod " + tmp);
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = errno_status("write " + tmp);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    Status s = errno_status("fsync " + tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  fd = Fd();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = errno_status("rename " + tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  return fsync_dir(parent_of(path));
}

Result<std::string> read_small_file(const std::string& path, std::size_t limit) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_status("open " + path);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > limit) return Status::FailedPrecondition(path + ": larger than expected");
  }
  return out;
}

Result<bool> clone_file(const std::string& src, const std::string& dst, std::uint64_t dst_size,
                        const CopyEngine& copy, unsigned mode) {
  Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return errno_status("open " + src);
  auto src_size = fd_size(in.get());
  if (!src_size.ok()) return src_size.status();
  Fd out(::open(dst.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) return errno_status("create " + dst);
  bool reflinked = ::ioctl(out.get(), FICLONE, in.get()) == 0;
  if (reflinked) {
    if (::ftruncate(out.get(), static_cast<off_t>(dst_size)) != 0)
      return errno_status("truncate " + dst);
  } else {
    if (::ftruncate(out.get(), static_cast<off_t>(std::max(dst_size, *src_size))) != 0)
      return errno_status("truncate " + dst);
    FileSource source(std::move(in), *src_size);
    FileSink sink(Fd(::dup(out.get())), std::max(dst_size, *src_size), true);
    auto stats = copy.copy(source, sink);
    if (!stats.ok()) return stats.status();
  }
  if (::fchmod(out.get(), mode) != 0) return errno_status("chmod " + dst);
  if (::fsync(out.get()) != 0) return errno_status("fsync " + dst);
  if (Status s = fsync_dir(parent_of(dst)); !s.ok()) return s;
  return reflinked;
}

Result<std::uint64_t> allocated_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_status("stat " + path);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

}  // namespace dmscore::detail
