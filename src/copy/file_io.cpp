#include "copy/file_io.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

namespace dmscore::detail {

Status errno_status(const std::string& what) { return errno_status(what, errno); }

Status errno_status(const std::string& what, int e) {
  std::string msg = what + ": " + std::error_code(e, std::generic_category()).message();
  if (e == ENOENT) return Status::NotFound(std::move(msg));
  if (e == ENOSPC || e == EDQUOT) return Status::ResourceExhausted(std::move(msg));
  if (e == EIO || e == EACCES || e == EPERM || e == EROFS)
    return Status::Unavailable(std::move(msg));
  return Status::Internal(std::move(msg));
}

Status injected_fault(Env* env, FileOp op, const std::string& path) {
  if (!env || !env->injects_file_faults()) return Status::Ok();
  int e = env->file_fault(op, path);
  if (e == 0) return Status::Ok();
  return errno_status((op == FileOp::kWrite ? "write " : "fsync ") + path, e);
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

Result<std::vector<Extent>> seek_data_extents(int fd, std::uint64_t size, std::uint64_t from,
                                              std::uint64_t to) {
  std::vector<Extent> out;
  to = std::min(to, size);
  std::uint64_t pos = from;
  while (pos < to) {
    off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
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
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return errno_status("SEEK_HOLE");
    std::uint64_t end = std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), to);
    out.push_back({d, end - d});
    pos = end;
  }
  return out;
}

Result<std::vector<Extent>> FileSource::data_extents(std::uint64_t from, std::uint64_t to) const {
  return seek_data_extents(fd_.get(), size_, from, to);
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

Result<std::unique_ptr<FileSink>> FileSink::open(const std::string& path, bool fresh,
                                                 std::shared_ptr<Env> env) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return errno_status("open " + path);
  auto size = fd_size(fd.get());
  if (!size.ok()) return size.status();
  return std::make_unique<FileSink>(std::move(fd), *size, fresh, path, std::move(env));
}

Status FileSink::write_at(std::uint64_t offset, const void* buf, std::size_t len) {
  if (Status f = injected_fault(env_.get(), FileOp::kWrite, path_); !f.ok()) return f;
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
  static const auto& kZeros = *new std::vector<unsigned char>(1 << 20, 0);  // never destroyed
  while (len > 0) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(len, kZeros.size()));
    if (Status s = write_at(offset, kZeros.data(), n); !s.ok()) return s;
    offset += n;
    len -= n;
  }
  return Status::Ok();
}

Status FileSink::sync() {
  if (Status f = injected_fault(env_.get(), FileOp::kSync, path_); !f.ok()) return f;
  if (::fsync(fd_.get()) != 0) return errno_status("fsync " + path_);
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

Status write_file_atomic(const std::string& path, const std::string& data, unsigned mode, Env* env,
                         bool sync_dir, int gid) {
  std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 0600));
  if (!fd.valid()) return errno_status("create " + tmp);
  if (gid >= 0 && ::fchown(fd.get(), static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0)
    return errno_status("chown " + tmp);
  if (::fchmod(fd.get(), mode) != 0) return errno_status("chmod " + tmp);
  if (Status f = injected_fault(env, FileOp::kWrite, path); !f.ok()) {
    ::unlink(tmp.c_str());
    return f;
  }
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
  Status synced = injected_fault(env, FileOp::kSync, path);
  if (synced.ok() && ::fsync(fd.get()) != 0) synced = errno_status("fsync " + tmp);
  if (!synced.ok()) {
    ::unlink(tmp.c_str());
    return synced;
  }
  fd = Fd();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = errno_status("rename " + tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  return sync_dir ? fsync_dir(parent_of(path)) : Status::Ok();
}

Status create_sparse_file(const std::string& path, std::uint64_t size, unsigned mode, int gid,
                          Env* env) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0600));
  if (!fd.valid()) {
    if (errno == EEXIST) return Status::AlreadyExists(path + " exists");
    return errno_status("create " + path);
  }
  if (gid >= 0 && ::fchown(fd.get(), static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0)
    return errno_status("chown " + path);
  if (::fchmod(fd.get(), mode) != 0) return errno_status("chmod " + path);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return errno_status("size " + path);
  if (Status f = injected_fault(env, FileOp::kSync, path); !f.ok()) return f;
  if (::fsync(fd.get()) != 0) return errno_status("fsync " + path);
  return Status::Ok();
}

Status rename_noreplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0)
    return Status::Ok();
  if (errno == EEXIST) return Status::AlreadyExists(to + " exists");
  return errno_status("rename " + from + " to " + to);
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
                        const CopyEngine& copy, unsigned mode, int gid, const StopFn& stop,
                        std::shared_ptr<Env> env) {
  Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return errno_status("open " + src);
  auto src_size = fd_size(in.get());
  if (!src_size.ok()) return src_size.status();
  Fd out(::open(dst.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) return errno_status("create " + dst);
  if (gid >= 0 && ::fchown(out.get(), static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0)
    return errno_status("chown " + dst);
  if (Status f = injected_fault(env.get(), FileOp::kWrite, dst); !f.ok()) return f;
  bool reflinked = ::ioctl(out.get(), FICLONE, in.get()) == 0;
  if (reflinked) {
    if (::ftruncate(out.get(), static_cast<off_t>(dst_size)) != 0)
      return errno_status("truncate " + dst);
  } else {
    if (::ftruncate(out.get(), static_cast<off_t>(std::max(dst_size, *src_size))) != 0)
      return errno_status("truncate " + dst);
    FileSource source(std::move(in), *src_size);
    FileSink sink(Fd(::fcntl(out.get(), F_DUPFD_CLOEXEC, 0)), std::max(dst_size, *src_size), true,
                  dst, env);
    auto stats = copy.copy(source, sink, 0, stop);
    if (!stats.ok()) return stats.status();
  }
  if (::fchmod(out.get(), mode) != 0) return errno_status("chmod " + dst);
  if (Status f = injected_fault(env.get(), FileOp::kSync, dst); !f.ok()) return f;
  if (::fsync(out.get()) != 0) return errno_status("fsync " + dst);
  return reflinked;
}

Status keep_private(const std::string& data_dir, const std::function<void(std::string_view)>& log) {
  auto tighten = [&](const std::string& path, unsigned want) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return;
    unsigned mode = st.st_mode & 07777;
    if ((mode & ~want) == 0) return;
    if (::chmod(path.c_str(), want) != 0) return;
    char text[160];
    std::snprintf(text, sizeof text, "%s had mode %04o; set to %04o", path.c_str(), mode, want);
    if (log) log(text);
  };
  tighten(data_dir, 0700);
  for (const char* f :
       {"dms.db", "dms.db-wal", "dms.db-shm", "audit.log", "admin-password", ".lock"})
    tighten(data_dir + "/" + f, 0600);
  return Status::Ok();
}

Result<int> group_id(const std::string& group) {
  if (!group.empty() && group.find_first_not_of("0123456789") == std::string::npos &&
      group.size() < 10)
    return std::stoi(group);
  std::vector<char> buf(16384);
  struct group g {};
  struct group* found = nullptr;
  if (::getgrnam_r(group.c_str(), &g, buf.data(), buf.size(), &found) != 0 || !found)
    return Status::InvalidArgument("local_cluster_file_group: no group named " + group);
  return static_cast<int>(found->gr_gid);
}

Result<std::uint64_t> allocated_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_status("stat " + path);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

}  // namespace dmscore::detail
