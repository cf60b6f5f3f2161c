// The agent's fact collector (facts.hpp): a Linux tree's procfs, sysfs and /etc files, and the
// first sectors of its disks, as SMS's registration report.
//
// Which field comes from where:
//   os_type LINUX; os_version, linux_block_check  etc/os-release (or usr/lib/os-release), the
//                                                 ELF header of usr/bin/env or proc/cpuinfo
//   kernel_version                                proc/sys/kernel/osrelease
//   cpu_quantity, memory                          proc/cpuinfo, proc/meminfo MemTotal (bytes)
//   firmware, boot_loader                         sys/firmware/efi; boot/grub, boot/grub2
//   hostname, name                                etc/hostname, proc/sys/kernel/hostname
//   networks, ip, ipv6                            sys/class/net, proc/net/{route,fib_trie,
//                                                 if_inet6}
//   disks                                         sys/block, dev/<disk>, proc/mounts, proc/swaps,
//                                                 dev/disk/by-uuid; or the --disk stand-ins
//   volume_groups                                 sys/block/dm-*/{dm,slaves,holders}
//   btrfs_list                                    sys/fs/btrfs; superblocks of stand-ins
//   has_rsync, has_tc, raw_devices                usr/bin/rsync, sbin/tc, dev/raw
//   paravirtualization, platform                  sys/bus/{virtio,xen}, sys/hypervisor,
//                                                 sys/class/dmi/id
//   start_type                                    MANUAL (not started by Migration Center)
// Left out: id, domain_id, state, migration_cycle (the service's, not the machine's); the
// Windows-only driver_files, system_services, account_rights, system_dir and oem_system (absent
// means "not applicable", which no boolean value says); what only a tool that parses on-disk
// metadata could tell (see the comments at btrfs and LVM); and the figures that change with every
// write or read — used and free bytes of file systems, btrfs's used bytes, io_read_wait (from
// sys/block/<disk>/stat) — because the agent reports again whenever the report changes, and
// those would make it report on every poll. The report describes the machine, not its load.

#include "agent/facts.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

namespace dmsctl::agent {

namespace json = boost::json;
using dmscore::Result;
using dmscore::Status;

namespace {

// The schema's bound on disks, partitions per disk, networks, volume groups, logical volumes.
constexpr std::size_t kMaxItems = 50;
// Of one procfs, sysfs or /etc file: a router's fib_trie runs to megabytes.
constexpr std::size_t kReadLimit = 16u << 20;
// Of a GPT's partition entry array (the usual one is 16 KiB).
constexpr std::uint64_t kMaxGptEntryBytes = 4u << 20;

// ---------------------------------------------------------------------------------------------
// Text

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto n = text.find('\n');
    out.push_back(text.substr(0, n));
    if (n == std::string_view::npos) break;
    text.remove_prefix(n + 1);
  }
  return out;
}

// Whitespace-separated fields.
std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

std::optional<std::uint64_t> to_u64(std::string_view s, int base = 10) {
  s = trim(s);
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// `s` as a report string: UTF-8 (a byte that is not part of a well-formed sequence, and a control
// character, becomes '?': the service refuses a body that is not UTF-8) of at most `max` code
// points (the schema's bound on most strings is 255).
std::string text(std::string_view s, std::size_t max = 255) {
  std::string out;
  std::size_t points = 0;
  std::size_t i = 0;
  while (i < s.size() && points < max) {
    const auto c = static_cast<unsigned char>(s[i]);
    auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c >= 0x20 && c < 0x7F) {
      n = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlong forms
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = n > 0 && i + n <= s.size();
    if (ok && n > 1) ok = at(1) >= lo && at(1) <= hi;
    for (std::size_t k = 2; ok && k < n; ++k) ok = (at(k) & 0xC0) == 0x80;
    if (!ok) n = 1;
    out.append(ok ? s.substr(i, n) : std::string_view("?"));
    i += n;
    ++points;
  }
  return out;
}

// A token of SMS's OS names: capitals and digits, anything else '_'.
std::string token(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out += std::isalnum(u) && u < 0x80 ? static_cast<char>(std::toupper(u)) : '_';
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

// Joins `parts` with ';' (as the seed's components "/dev/vdb1;/dev/vdc") while the result stays
// within the schema's 255 characters; the parts that do not fit are left out.
std::string join_fitting(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    const std::size_t add = p.size() + (out.empty() ? 0 : 1);
    if (out.size() + add > 255) break;
    out += (out.empty() ? "" : ";") + p;
  }
  return out;
}

// The schema's integers are int64; a boost::json uint64 is refused as too big whatever its value.
json::value number(std::uint64_t v) {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  return json::value(static_cast<std::int64_t>(std::min(v, kMax)));
}

std::string errno_text(int e) {
  return e == ENOENT ? std::string("no such file") : std::string(std::strerror(e));
}

std::string ipv4_text(std::uint32_t network_order) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a{};
  a.s_addr = network_order;
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Bytes

std::uint16_t le16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | p[1] << 8); }
std::uint32_t le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
std::uint64_t le64(const unsigned char* p) {
  return static_cast<std::uint64_t>(le32(p)) | static_cast<std::uint64_t>(le32(p + 4)) << 32;
}

// The CRC-32 of GPT headers and partition entries (IEEE 802.3, reflected).
std::uint32_t crc32(const unsigned char* p, std::size_t n) {
  static const std::array<std::uint32_t, 256> kTable = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) c = kTable[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// A file system UUID as blkid prints it: its 16 bytes in order.
std::string uuid_text(const unsigned char* p) {
  char b[37];
  std::snprintf(b, sizeof b, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12],
                p[13], p[14], p[15]);
  return b;
}

// A GPT GUID (its first three fields little-endian), in capitals.
std::string guid_text(const unsigned char* p) {
  char b[37];
  std::snprintf(b, sizeof b, "%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X", le32(p),
                le16(p + 4), le16(p + 6), p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]);
  return b;
}

// A NUL-terminated string of at most `n` bytes.
std::string c_string(const unsigned char* p, std::size_t n) {
  std::size_t len = 0;
  while (len < n && p[len] != 0) ++len;
  return std::string(reinterpret_cast<const char*>(p), len);
}

// ---------------------------------------------------------------------------------------------
// Files

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }

 private:
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

// The system's files below a root directory.
class Tree {
 public:
  static Result<Tree> open_root(std::string root) {
    if (root.empty()) return Status::InvalidArgument("--root: must not be empty");
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    Fd fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd.ok()) {
      const int e = errno;
      return Status::InvalidArgument(
          "--root " + root + ": " +
          (e == ENOENT ? std::string("no such directory") : std::string(std::strerror(e))));
    }
    return Tree(std::move(root), std::move(fd));
  }

  bool is_system_root() const { return root_ == "/"; }

  // `rel` as the user knows it: "/etc/os-release" when the root is "/".
  std::string path(std::string_view rel) const {
    return (root_ == "/" ? std::string() : root_) + "/" + std::string(rel);
  }

  // `rel` opened as if the root were "/": symlinks, absolute ones included, and ".." resolve
  // inside it. Kernels before 5.6 (and sandboxes that refuse openat2) follow symlinks as they
  // are, which below "/" is the same thing.
  Fd open(std::string_view rel, int flags) const {
    const std::string r(rel);
#ifdef SYS_openat2
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT;
    const long fd = ::syscall(SYS_openat2, fd_.get(), r.c_str(), &how, sizeof how);
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return Fd(static_cast<int>(fd));
#endif
    return Fd(::openat(fd_.get(), r.c_str(), flags | O_CLOEXEC));
  }

  // A regular file's text (at most kReadLimit bytes); nullopt, with the errno in `err`, when it
  // cannot be read.
  std::optional<std::string> read(std::string_view rel, int* err = nullptr) const {
    Fd f = open(rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    struct stat st {};
    int e = 0;
    if (!f.ok())
      e = errno;
    else if (::fstat(f.get(), &st) != 0)
      e = errno;
    else if (!S_ISREG(st.st_mode))
      e = EINVAL;
    std::string out;
    char buf[65536];
    while (e == 0 && out.size() < kReadLimit) {
      const ssize_t n = ::read(f.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) e = errno;  // a sysfs attribute the device cannot answer
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    if (err) *err = e;
    if (e != 0) return std::nullopt;
    return out;
  }

  // The first line, trimmed; "" when unreadable.
  std::string line(std::string_view rel) const {
    const auto t = read(rel);
    if (!t) return {};
    return std::string(trim(std::string_view(*t).substr(0, t->find('\n'))));
  }

  std::optional<std::uint64_t> number(std::string_view rel) const { return to_u64(line(rel)); }

  bool exists(std::string_view rel) const { return open(rel, O_PATH).ok(); }

  // The entries of a directory, sorted, without "." and "..", and without hidden names (the
  // fixtures' .keep).
  std::vector<std::string> list(std::string_view rel) const {
    std::vector<std::string> out;
    Fd f = open(rel, O_RDONLY | O_DIRECTORY);
    if (!f.ok()) return out;
    DIR* d = ::fdopendir(f.get());
    if (!d) return out;
    f.release();
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') out.emplace_back(e->d_name);
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  }

  // The last component of where the symlink dir/name points ("vda1" for "../../vda1").
  std::string link_target_name(std::string_view dir, const std::string& name) const {
    Fd d = open(dir, O_PATH | O_DIRECTORY);
    if (!d.ok()) return {};
    char buf[4096];
    const ssize_t n = ::readlinkat(d.get(), name.c_str(), buf, sizeof buf);
    if (n <= 0) return {};
    const std::string_view t(buf, static_cast<std::size_t>(n));
    return std::string(t.substr(t.rfind('/') + 1));
  }

 private:
  Tree(std::string root, Fd fd) : root_(std::move(root)), fd_(std::move(fd)) {}

  std::string root_;
  Fd fd_;
};

// A disk (device or image file) read by offset.
class Image {
 public:
  Image(Fd fd, std::uint64_t size, std::vector<std::uint32_t> sector_sizes)
      : fd_(std::move(fd)), size_(size), sector_sizes_(std::move(sector_sizes)) {}

  // Opens what `fd` is: a regular file, whose logical sector size is not written anywhere (512,
  // else 4096 when a GPT says so), or a block device, which knows both.
  static std::optional<Image> of(Fd fd) {
    struct stat st {};
    if (!fd.ok() || ::fstat(fd.get(), &st) != 0) return std::nullopt;
    if (S_ISREG(st.st_mode))
      return Image(std::move(fd), static_cast<std::uint64_t>(st.st_size), {512, 4096});
    if (!S_ISBLK(st.st_mode)) return std::nullopt;
    std::uint64_t size = 0;
    int sector = 0;
    if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return std::nullopt;
    if (::ioctl(fd.get(), BLKSSZGET, &sector) != 0 || sector < 512) sector = 512;
    return Image(std::move(fd), size, {static_cast<std::uint32_t>(sector)});
  }

  std::uint64_t size() const { return size_; }
  const std::vector<std::uint32_t>& sector_sizes() const { return sector_sizes_; }

  // Whether [offset, offset + len) lies inside the image and was read whole.
  bool read(std::uint64_t offset, void* buf, std::size_t len) const {
    if (offset > size_ || len > size_ - offset) return false;
    auto* p = static_cast<unsigned char*>(buf);
    while (len > 0) {
      const ssize_t n = ::pread(fd_.get(), p, len, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      len -= static_cast<std::size_t>(n);
      offset += static_cast<std::uint64_t>(n);
    }
    return true;
  }

 private:
  Fd fd_;
  std::uint64_t size_;
  std::vector<std::uint32_t> sector_sizes_;
};

// ---------------------------------------------------------------------------------------------
// File systems, by the magic numbers blkid also reads

struct FsInfo {
  std::string type;  // as blkid names it; "" when not recognised
  std::string uuid;
  std::string label;
  std::uint32_t inode_size = 0;  // ext2/3/4
  std::uint64_t inode_nums = 0;  // ext2/3/4
  std::uint64_t btrfs_nodesize = 0, btrfs_sectorsize = 0;
};

// What the `len` bytes at `base` of `image` hold. Reads nothing outside them.
FsInfo probe_fs(const Image& image, std::uint64_t base, std::uint64_t len) {
  FsInfo fs;
  // `n` bytes at `off` of the area; empty when they are not all inside it.
  auto at = [&](std::uint64_t off, std::size_t n) {
    std::vector<unsigned char> b(n);
    if (off > len || n > len - off || !image.read(base + off, b.data(), n)) b.clear();
    return b;
  };
  auto is = [](const std::vector<unsigned char>& b, std::size_t pos, std::string_view magic) {
    return b.size() >= pos + magic.size() &&
           std::memcmp(b.data() + pos, magic.data(), magic.size()) == 0;
  };
  const auto s0 = at(0, 512);
  if (is(s0, 0, "XFSB")) {
    fs.type = "xfs";
    fs.uuid = uuid_text(&s0[32]);
    return fs;
  }
  if (is(s0, 0, std::string_view("LUKS\xba\xbe", 6))) {
    fs.type = "crypto_LUKS";
    fs.uuid = text(c_string(&s0[168], 40));
    return fs;
  }
  auto fat_serial = [&](std::size_t pos) {
    char b[10];
    const std::uint32_t v = le32(&s0[pos]);
    std::snprintf(b, sizeof b, "%04X-%04X", v >> 16, v & 0xFFFF);
    return std::string(b);
  };
  if (is(s0, 82, "FAT32   ")) {
    fs.type = "vfat";
    fs.uuid = fat_serial(67);
    return fs;
  }
  if (is(s0, 54, "FAT16   ") || is(s0, 54, "FAT12   ")) {
    fs.type = "vfat";
    fs.uuid = fat_serial(39);
    return fs;
  }
  if (is(s0, 3, "NTFS    ")) {
    char b[17];
    std::snprintf(b, sizeof b, "%016llX", static_cast<unsigned long long>(le64(&s0[0x48])));
    fs.type = "ntfs";
    fs.uuid = b;
    return fs;
  }
  if (const auto e = at(1024, 256); e.size() == 256 && le16(&e[0x38]) == 0xEF53) {
    // As blkid tells them apart: ext4 uses a feature ext3 does not know (extents, 64bit,
    // flex_bg, huge_file, ...); ext3 has a journal.
    constexpr std::uint32_t kExt3Incompat = 0x0002 | 0x0004 | 0x0010;  // filetype recover meta_bg
    constexpr std::uint32_t kExt3RoCompat = 0x0001 | 0x0002 | 0x0004;  // sparse large_file btree
    const std::uint32_t compat = le32(&e[0x5C]), incompat = le32(&e[0x60]),
                        ro_compat = le32(&e[0x64]);
    if ((incompat & ~kExt3Incompat) || (ro_compat & ~kExt3RoCompat))
      fs.type = "ext4";
    else
      fs.type = (compat & 0x0004) ? "ext3" : "ext2";
    fs.uuid = uuid_text(&e[0x68]);
    fs.inode_nums = le32(&e[0x00]);
    fs.inode_size = le32(&e[0x4C]) >= 1 ? le16(&e[0x58]) : 128;  // revision 0 has 128-byte inodes
    return fs;
  }
  if (const auto b = at(0x10000, 0x22B); is(b, 0x40, "_BHRfS_M")) {
    fs.type = "btrfs";
    fs.uuid = uuid_text(&b[0x20]);
    fs.label = text(c_string(&b[0x12B], 256));
    fs.btrfs_sectorsize = le32(&b[0x90]);
    fs.btrfs_nodesize = le32(&b[0x94]);
    return fs;
  }
  // The swap signature ends the first page, whatever the page size of the system that wrote it.
  for (std::uint64_t page : {4096u, 8192u, 16384u, 65536u}) {
    const auto b = at(page - 10, 10);
    if (!is(b, 0, "SWAPSPACE2") && !is(b, 0, "SWAP-SPACE")) continue;
    fs.type = "swap";
    if (const auto h = at(1024 + 12, 16); is(b, 0, "SWAPSPACE2") && h.size() == 16)
      fs.uuid = uuid_text(h.data());
    return fs;
  }
  // An LVM physical volume's label is in one of the first four sectors (pvcreate uses the second).
  for (std::uint64_t sector = 0; sector < 4; ++sector) {
    const auto l = at(sector * 512, 512);
    if (!is(l, 0, "LABELONE") || !is(l, 24, "LVM2 001")) continue;
    fs.type = "LVM2_member";
    const std::uint32_t off = le32(&l[20]);  // of the PV header, whose first 32 bytes are the UUID
    if (off >= 32 && off <= 512 - 32) {
      const std::string id = text(std::string(reinterpret_cast<const char*>(&l[off]), 32));
      // As LVM prints it: 6-4-4-4-4-4-6.
      std::string u;
      std::size_t pos = 0;
      for (std::size_t part : {6, 4, 4, 4, 4, 4, 6}) {
        u += (u.empty() ? "" : "-") + id.substr(pos, part);
        pos += part;
      }
      fs.uuid = u;
    }
    return fs;
  }
  return fs;
}

// ---------------------------------------------------------------------------------------------
// Partition tables

struct TableEntry {
  int index = 0;
  std::uint64_t offset = 0;  // bytes
  std::uint64_t size = 0;    // bytes
  bool boot = false;         // an EFI system or BIOS boot partition, or an active MBR partition
};

struct Table {
  std::string style;  // "GPT", "MBR", or "" when the disk has none
  std::vector<TableEntry> entries;
  std::string error;  // why the table cannot be read as a whole; `entries` is then incomplete
};

const std::string kEfiSystemGuid = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const std::string kBiosBootGuid = "21686148-6449-6E6F-744E-656564454649";

// The partitions of the GPT whose header is at `lba`, or why it cannot be used ("" when it can).
std::string read_gpt(const Image& image, std::uint32_t ss, std::uint64_t lba,
                     std::vector<TableEntry>& out) {
  const std::uint64_t sectors = image.size() / ss;
  const std::string where = "the header at LBA " + std::to_string(lba);
  std::vector<unsigned char> h(ss);
  if (lba >= sectors || !image.read(lba * ss, h.data(), ss) ||
      std::memcmp(h.data(), "EFI PART", 8) != 0)
    return "no header at LBA " + std::to_string(lba);
  const std::uint32_t header_size = le32(&h[12]);
  if (header_size < 92 || header_size > ss)
    return where + " gives its size as " + std::to_string(header_size) + " bytes";
  const std::uint32_t header_crc = le32(&h[16]);
  std::memset(&h[16], 0, 4);
  if (crc32(h.data(), header_size) != header_crc) return where + " fails its CRC";
  if (le64(&h[24]) != lba) return where + " says it is at LBA " + std::to_string(le64(&h[24]));
  const std::uint64_t entries_lba = le64(&h[72]);
  const std::uint32_t count = le32(&h[80]);
  const std::uint32_t entry_size = le32(&h[84]);
  // The UEFI specification: 128 × 2^n bytes.
  if (entry_size < 128 || entry_size % 128 != 0 || (entry_size & (entry_size - 1)) != 0)
    return where + " gives partition entries of " + std::to_string(entry_size) + " bytes";
  const std::uint64_t bytes = std::uint64_t{count} * entry_size;
  if (entries_lba == 0 || entries_lba >= sectors || bytes > (sectors - entries_lba) * ss)
    return where + " puts " + std::to_string(count) + " partition entries of " +
           std::to_string(entry_size) + " bytes at LBA " + std::to_string(entries_lba) +
           ", past the end of the disk (" + std::to_string(image.size()) + " bytes)";
  if (bytes > kMaxGptEntryBytes)
    return where + " gives " + std::to_string(count) +
           " partition entries, more than GPT tools make";
  std::vector<unsigned char> e(bytes);
  if (!image.read(entries_lba * ss, e.data(), e.size()))
    return "the partition entries at LBA " + std::to_string(entries_lba) + " cannot be read";
  if (crc32(e.data(), e.size()) != le32(&h[88]))
    return "the partition entries at LBA " + std::to_string(entries_lba) + " fail their CRC";
  std::vector<TableEntry> found;
  for (std::uint32_t i = 0; i < count; ++i) {
    const unsigned char* p = &e[std::size_t{i} * entry_size];
    if (std::all_of(p, p + 16, [](unsigned char c) { return c == 0; })) continue;  // unused
    const std::uint64_t first = le64(p + 32), last = le64(p + 40);
    if (first == 0 || first > last || last >= sectors)
      return "partition " + std::to_string(i + 1) + " (LBA " + std::to_string(first) + ".." +
             std::to_string(last) + ") lies outside the disk (" + std::to_string(sectors) +
             " sectors of " + std::to_string(ss) + " bytes)";
    const std::string type = guid_text(p);
    found.push_back({static_cast<int>(i + 1), first * ss, (last - first + 1) * ss,
                     type == kEfiSystemGuid || type == kBiosBootGuid});
  }
  out = std::move(found);
  return {};
}

bool is_extended(unsigned char type) { return type == 0x05 || type == 0x0F || type == 0x85; }

// The partition table at the start of `image`, as the kernel reads it: a GPT behind a
// protective MBR (its backup at the last LBA when the primary is damaged), else an MBR with its
// logical partitions; nothing for a disk whose first sector is not a table (a file system on the
// whole disk, an LVM physical volume, zeros).
Table read_table(const Image& image) {
  Table t;
  std::array<unsigned char, 512> mbr{};
  if (!image.read(0, mbr.data(), mbr.size()) || mbr[510] != 0x55 || mbr[511] != 0xAA) return t;
  bool protective = false;
  for (int i = 0; i < 4; ++i) {
    const unsigned char* e = &mbr[446 + 16 * i];
    if (e[0] != 0x00 && e[0] != 0x80) return t;  // boot code, not partition entries
    protective |= e[4] == 0xEE;
  }
  // A FAT or NTFS boot sector ends in 0x55AA too.
  if (std::memcmp(&mbr[82], "FAT32   ", 8) == 0 || std::memcmp(&mbr[54], "FAT1", 4) == 0 ||
      std::memcmp(&mbr[3], "NTFS    ", 8) == 0)
    return t;
  if (protective) {
    t.style = "GPT";
    std::uint32_t ss = image.sector_sizes().front();
    for (std::uint32_t s : image.sector_sizes()) {
      std::array<char, 8> sig{};
      if (image.read(s, sig.data(), sig.size()) && std::memcmp(sig.data(), "EFI PART", 8) == 0) {
        ss = s;
        break;
      }
    }
    const std::string primary = read_gpt(image, ss, 1, t.entries);
    if (primary.empty()) return t;
    const std::uint64_t last = image.size() / ss;
    const std::string backup =
        last > 2 ? read_gpt(image, ss, last - 1, t.entries) : std::string("no room for one");
    if (!backup.empty()) t.error = "GPT: " + primary + "; the backup: " + backup;
    return t;
  }
  t.style = "MBR";
  const std::uint32_t ss = image.sector_sizes().front();
  const std::uint64_t sectors = image.size() / ss;
  auto add = [&](int index, std::uint64_t start, std::uint64_t count, bool boot) {
    const std::string what = "MBR: partition " + std::to_string(index) + " (LBA " +
                             std::to_string(start) + ", " + std::to_string(count) + " sectors)";
    if (start == 0) {
      t.error = what + " starts on the MBR";
      return false;
    }
    if (start > sectors || count > sectors - start) {
      t.error = what + " ends past the end of the disk (" + std::to_string(sectors) +
                " sectors of " + std::to_string(ss) + " bytes)";
      return false;
    }
    t.entries.push_back({index, start * ss, count * ss, boot});
    return true;
  };
  int logical = 5;
  for (int i = 0; i < 4; ++i) {
    const unsigned char* e = &mbr[446 + 16 * i];
    const std::uint64_t start = le32(e + 8), count = le32(e + 12);
    if (e[4] == 0 || count == 0) continue;
    if (!is_extended(e[4])) {
      if (!add(i + 1, start, count, e[0] == 0x80)) return t;
      continue;
    }
    // An extended partition holds a chain of EBRs, each with one logical partition (its start
    // relative to that EBR) and the link to the next EBR (relative to the extended partition).
    // The extended partition itself holds no file system and is not reported.
    std::uint64_t ebr = start;
    for (int hops = 0;; ++hops) {
      std::array<unsigned char, 512> b{};
      if (hops == 128) {
        t.error = "MBR: the chain of logical partitions loops or exceeds 128";
        return t;
      }
      if (ebr >= sectors || !image.read(ebr * ss, b.data(), b.size()) || b[510] != 0x55 ||
          b[511] != 0xAA) {
        t.error = "MBR: no extended boot record at LBA " + std::to_string(ebr);
        return t;
      }
      const unsigned char* l = &b[446];
      const unsigned char* link = &b[462];
      if (l[4] != 0 && le32(l + 12) != 0 &&
          !add(logical++, ebr + le32(l + 8), le32(l + 12), l[0] == 0x80))
        return t;
      if (!is_extended(link[4]) || le32(link + 12) == 0) break;
      const std::uint64_t next = start + le32(link + 8);
      if (next <= ebr) {
        t.error = "MBR: the chain of logical partitions loops at LBA " + std::to_string(next);
        return t;
      }
      ebr = next;
    }
  }
  std::sort(t.entries.begin(), t.entries.end(),
            [](const TableEntry& a, const TableEntry& b) { return a.index < b.index; });
  return t;
}

// ---------------------------------------------------------------------------------------------
// The disks, as reported

struct Part {
  std::string kname;  // "vda1"
  int index = 0;
  std::uint64_t offset = 0, size = 0;
  bool boot = false;
  FsInfo fs;
  bool mounted_known = false;  // whether mount_point says anything (the tree's mounts were read)
  std::string mount_point;
  std::string device_use;
};

struct Disk {
  std::string name;  // kernel name or stand-in NAME
  std::string path;
  std::uint64_t size = 0;
  std::string style;
  FsInfo fs;  // of a disk without partitions
  std::vector<Part> parts;
  bool os_disk = false;
  std::string device_use;
};

// The kernel's name of partition `index` of `disk`: "vda1", "nvme0n1p1".
std::string partition_name(const std::string& disk, int index) {
  const bool digit = !disk.empty() && std::isdigit(static_cast<unsigned char>(disk.back()));
  return disk + (digit ? "p" : "") + std::to_string(index);
}

std::string device_use_of(const std::string& fs_type, bool in_volume_group) {
  if (in_volume_group || fs_type == "LVM2_member") return "VOLUME_GROUP";
  if (fs_type == "btrfs") return "BTRFS";
  return "NORMAL";
}

json::object disk_json(const Disk& d) {
  json::array pvs;
  std::uint64_t partitioned = 0;
  for (const auto& p : d.parts) {
    json::object o;
    o["index"] = p.index;
    o["name"] = "/dev/" + p.kname;
    o["size"] = number(p.size);
    o["device_use"] = p.device_use;
    if (!p.fs.type.empty()) o["file_system"] = text(p.fs.type);
    if (p.mounted_known) o["mount_point"] = text(p.mount_point);
    if (!p.fs.uuid.empty()) o["uuid"] = p.fs.uuid;
    if (p.fs.inode_size) o["inode_size"] = number(p.fs.inode_size);
    if (p.fs.inode_nums) o["inode_nums"] = number(p.fs.inode_nums);
    pvs.push_back(std::move(o));
    partitioned += p.size;
  }
  json::object o;
  o["name"] = d.name;
  o["partition_style"] = d.style;
  o["device_use"] = d.device_use;
  o["size"] = number(d.size);
  // What SMS's example reports: the space its partitions take.
  if (!d.parts.empty()) o["used_size"] = number(partitioned);
  o["physical_volumes"] = std::move(pvs);
  o["os_disk"] = d.os_disk;
  return o;
}

// ---------------------------------------------------------------------------------------------
// The tree's storage: sys/block, device mapper, mounts, btrfs

struct Mount {
  std::string device, point, type;
  std::string kname;  // of the device, "" when it is not a block device of the tree
};

// procfs escapes space, tab, newline and backslash in mount paths as \ooo.
std::string unescape_mount(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// nullopt when the tree has no proc/mounts: then nothing is known to be unmounted either.
std::optional<std::vector<Mount>> read_mounts(const Tree& tree) {
  std::vector<Mount> out;
  const auto t = tree.read("proc/mounts");
  if (!t) return std::nullopt;
  for (auto l : split_lines(*t)) {
    const auto f = fields_of(l);
    if (f.size() >= 3)
      out.push_back({unescape_mount(f[0]), unescape_mount(f[1]), std::string(f[2])});
  }
  return out;
}

struct DmDev {
  std::string kname, name, uuid;
  std::uint64_t size = 0;
  std::vector<std::string> slaves, holders;
  bool lvm() const { return uuid.starts_with("LVM-"); }
};

// A device-mapper name as LVM makes it: "<vg>-<lv>[-<layer>]" with each '-' of the VG and LV
// names doubled. "debian--vg-root" → {"debian-vg", "root", ""}; "vg-pool-tpool" → {"vg",
// "pool", "tpool"}.
std::array<std::string, 3> split_dm_name(std::string_view n) {
  std::array<std::string, 3> parts;
  std::size_t k = 0;
  for (std::size_t i = 0; i < n.size(); ++i) {
    if (n[i] == '-' && i + 1 < n.size() && n[i + 1] == '-') {
      parts[k] += '-';
      ++i;
    } else if (n[i] == '-' && k < 2) {
      ++k;
    } else {
      parts[k] += n[i];
    }
  }
  return parts;
}

std::string lvm_escape(std::string_view s) {
  std::string out;
  for (char c : s) out += c == '-' ? std::string("--") : std::string(1, c);
  return out;
}

struct Storage {
  std::map<std::string, DmDev> dm;                // by kernel name
  std::map<std::string, std::string> dm_by_name;  // dm name → kernel name
  std::map<std::string, std::size_t> mount_of;    // kernel name → its shortest mount, in mounts
  std::set<std::string> swaps;                    // kernel names
  std::vector<Mount> mounts;
  bool mounts_known = false;  // whether proc/mounts was read
};

// The kernel name ("vda1", "dm-0") of a device as procfs names it ("/dev/vda1",
// "/dev/mapper/vg-root", "/dev/vg/root", "/dev/dm-0"); "" for what is not a device ("tmpfs").
// "/dev/root" comes back as "root", which names nothing: read_storage resolves it.
std::string kernel_name(std::string_view dev, const Storage& st) {
  if (!dev.starts_with("/dev/")) return {};
  dev.remove_prefix(5);
  auto dm = [&](const std::string& name) {
    const auto it = st.dm_by_name.find(name);
    return it == st.dm_by_name.end() ? std::string() : it->second;
  };
  if (dev.starts_with("mapper/")) return dm(std::string(dev.substr(7)));
  if (const auto slash = dev.find('/'); slash != std::string_view::npos)
    return dm(lvm_escape(dev.substr(0, slash)) + "-" + lvm_escape(dev.substr(slash + 1)));
  return std::string(dev);
}

// How the report names a device of the tree.
std::string device_path(const std::string& kname, const Storage& st) {
  const auto it = st.dm.find(kname);
  return it != st.dm.end() ? "/dev/mapper/" + it->second.name : "/dev/" + kname;
}

Storage read_storage(const Tree& tree) {
  Storage st;
  for (const auto& k : tree.list("sys/block")) {
    if (!k.starts_with("dm-")) continue;
    const std::string dir = "sys/block/" + k;
    DmDev d;
    d.kname = k;
    d.name = tree.line(dir + "/dm/name");
    d.uuid = tree.line(dir + "/dm/uuid");
    d.size = tree.number(dir + "/size").value_or(0) * 512;
    d.slaves = tree.list(dir + "/slaves");
    d.holders = tree.list(dir + "/holders");
    if (!d.name.empty()) st.dm_by_name[d.name] = k;
    st.dm[k] = std::move(d);
  }
  auto mounts = read_mounts(tree);
  st.mounts_known = mounts.has_value();
  st.mounts = std::move(mounts).value_or(std::vector<Mount>());
  for (std::size_t i = 0; i < st.mounts.size(); ++i) {
    Mount& m = st.mounts[i];
    m.kname = kernel_name(m.device, st);
    // "/dev/root" is the kernel's name for a root it mounted itself (root= without an
    // initramfs); on this system the mount point's device number finds it in sys/dev/block.
    struct stat s {};
    if (m.device == "/dev/root" && tree.is_system_root() && ::stat(m.point.c_str(), &s) == 0)
      m.kname = tree.link_target_name(
          "sys/dev/block", std::to_string(major(s.st_dev)) + ":" + std::to_string(minor(s.st_dev)));
    const std::string& k = m.kname;
    if (k.empty()) continue;
    const auto [it, added] = st.mount_of.emplace(k, i);
    if (!added && st.mounts[i].point.size() < st.mounts[it->second].point.size()) it->second = i;
  }
  if (const auto t = tree.read("proc/swaps")) {
    for (auto l : split_lines(*t)) {
      const auto f = fields_of(l);
      if (!f.empty() && f[0].starts_with("/dev/"))
        if (auto k = kernel_name(unescape_mount(f[0]), st); !k.empty()) st.swaps.insert(k);
    }
  }
  return st;
}

// The devices below `kname`: its slaves, through device-mapper devices down to partitions and
// disks (`lvm_only`: through LVM devices only, so that what LVM sees as physical volumes — a
// partition, a disk, a dm-crypt device — is where it stops).
void below(const Storage& st, const std::string& kname, bool lvm_only, std::set<std::string>& out,
           int depth = 0) {
  const auto it = st.dm.find(kname);
  if (it == st.dm.end() || depth > 16 || (lvm_only && depth > 0 && !it->second.lvm())) {
    out.insert(kname);
    return;
  }
  for (const auto& s : it->second.slaves) below(st, s, lvm_only, out, depth + 1);
}

// What the tree knows of a device's file system besides its superblock: where it is mounted and
// as what, whether it is active swap, a btrfs device or an LVM physical volume.
void complete_fs(const Storage& st, const std::string& kname,
                 const std::set<std::string>& btrfs_devices,
                 const std::set<std::string>& lvm_members, FsInfo& fs, std::string& mount_point) {
  if (const auto it = st.mount_of.find(kname); it != st.mount_of.end()) {
    const Mount& m = st.mounts[it->second];
    mount_point = m.point;
    // The superblock's name when it was read (an NTFS mounted by ntfs-3g is "fuseblk" there).
    if (fs.type.empty()) fs.type = m.type;
  } else if (fs.type.empty() && st.swaps.count(kname)) {
    fs.type = "swap";
  } else if (fs.type.empty() && btrfs_devices.count(kname)) {
    fs.type = "btrfs";
  } else if (fs.type.empty() && lvm_members.count(kname)) {
    fs.type = "LVM2_member";
  }
}

// A disk of the tree, or of the tree's /dev, opened for its partition table and superblocks;
// nullopt when it is not there or not readable (not root, or a tree copied without /dev).
std::optional<Image> open_tree_device(const Tree& tree, const std::string& kname) {
  return Image::of(tree.open("dev/" + kname, O_RDONLY | O_NONBLOCK | O_NOCTTY));
}

struct TreeStorage {
  std::vector<Disk> disks;
  json::array volume_groups;
  json::array btrfs_list;
};

// The tree's btrfs file systems from sys/fs/btrfs: devices, label, UUID, node and sector sizes,
// profiles. Not the byte counts (they change with every write), nor the subvolumes and the
// default subvolume, which only the tree search ioctl on a mounted file system lists (reporting
// the mounted ones as "the" subvolumes would be wrong).
json::array tree_btrfs(const Tree& tree, const Storage& st, std::set<std::string>& devices_out) {
  static const std::set<std::string> kProfiles = {"single", "dup",   "raid0",   "raid1",  "raid10",
                                                  "raid5",  "raid6", "raid1c3", "raid1c4"};
  json::array out;
  for (const auto& uuid : tree.list("sys/fs/btrfs")) {
    const std::string dir = "sys/fs/btrfs/" + uuid;
    if (!tree.exists(dir + "/devices")) continue;  // "features"
    std::vector<std::string> devices;
    for (const auto& k : tree.list(dir + "/devices")) {
      devices.push_back(device_path(k, st));
      devices_out.insert(k);
    }
    json::object o;
    o["name"] = devices.empty() ? std::string() : devices.front();
    o["label"] = text(tree.line(dir + "/label"));
    o["uuid"] = text(uuid);
    o["device"] = join_fitting(devices);
    for (const char* kind : {"data", "metadata", "system"}) {
      std::vector<std::string> profiles;
      for (const auto& p : tree.list(dir + "/allocation/" + kind))
        if (kProfiles.count(p)) profiles.push_back(p);
      if (!profiles.empty()) o[std::string(kind) + "_profile"] = join(profiles, ",");
    }
    if (const auto n = tree.number(dir + "/nodesize")) o["nodesize"] = number(*n);
    if (const auto n = tree.number(dir + "/sectorsize")) o["sectorsize"] = number(*n);
    out.push_back(std::move(o));
  }
  return out;
}

Result<TreeStorage> tree_storage(const Tree& tree) {
  TreeStorage ts;
  const Storage st = read_storage(tree);

  // Volume groups: every LVM device belongs to the VG its name starts with; the LVs reported
  // are those nothing else is built on (not thin pools, mirror legs, snapshot origins' layers);
  // the components are the physical volumes the VG's devices sit on. A PV no active LV uses is
  // not seen (that needs the LVM metadata, which a file-based collector does not parse), so the
  // size is the sum of the PVs seen and free_size is left out.
  struct Vg {
    std::set<std::string> components;
    std::vector<std::string> lvs;
  };
  std::map<std::string, Vg> vgs;
  for (const auto& [k, d] : st.dm) {
    if (!d.lvm()) continue;
    const auto parts = split_dm_name(d.name);
    if (parts[0].empty() || parts[1].empty()) continue;
    Vg& vg = vgs[parts[0]];
    below(st, k, true, vg.components);
    if (parts[2].empty() && d.holders.empty()) vg.lvs.push_back(k);
  }
  std::set<std::string> lvm_members;
  for (const auto& [name, vg] : vgs) lvm_members.insert(vg.components.begin(), vg.components.end());

  std::set<std::string> btrfs_devices;
  ts.btrfs_list = tree_btrfs(tree, st, btrfs_devices);

  // Not disks to migrate: loop devices, RAM disks, optical drives, device mapper, zram, network
  // block devices, eMMC boot areas.
  static const std::vector<std::string> kSkipped = {"loop", "ram", "sr", "dm-", "zram", "nbd"};
  std::map<std::string, std::uint64_t> sizes;  // of every disk and partition, for the VGs
  for (const auto& k : tree.list("sys/block")) {
    if (std::any_of(kSkipped.begin(), kSkipped.end(),
                    [&](const std::string& p) { return k.starts_with(p); }) ||
        (k.starts_with("mmcblk") && k.find("boot") != std::string::npos))
      continue;
    const std::string dir = "sys/block/" + k;
    // A device built of others (md RAID, bcache) holds what the disks below it hold, and those
    // are reported.
    if (!tree.list(dir + "/slaves").empty()) continue;
    Disk d;
    d.name = k;
    d.path = tree.path("dev/" + k);
    d.size = tree.number(dir + "/size").value_or(0) * 512;  // sysfs counts 512-byte sectors
    if (d.size == 0) continue;  // an empty card reader, a disconnected device
    sizes[k] = d.size;
    if (ts.disks.size() == kMaxItems)
      return Status::FailedPrecondition(tree.path("sys/block") + ": more than " +
                                        std::to_string(kMaxItems) +
                                        " disks; a report holds at most " +
                                        std::to_string(kMaxItems) + " (choose them with --disk)");
    const std::uint64_t logical = tree.number(dir + "/queue/logical_block_size").value_or(512);
    bool partname = false;  // of the PC's tables, only a GPT gives the kernel partition names
    for (const auto& e : tree.list(dir)) {
      if (!e.starts_with(k) || !tree.exists(dir + "/" + e + "/partition")) continue;
      Part p;
      p.kname = e;
      p.index = static_cast<int>(tree.number(dir + "/" + e + "/partition").value_or(0));
      p.offset = tree.number(dir + "/" + e + "/start").value_or(0) * 512;
      p.size = tree.number(dir + "/" + e + "/size").value_or(0) * 512;
      if (const auto u = tree.read(dir + "/" + e + "/uevent"))
        partname |= u->find("\nPARTNAME=") != std::string::npos || u->starts_with("PARTNAME=");
      d.parts.push_back(std::move(p));
    }
    std::sort(d.parts.begin(), d.parts.end(),
              [](const Part& a, const Part& b) { return a.index < b.index; });
    // The kernel shows an extended partition as its first sector or two (so that no mkfs lands
    // on it); it holds only the chain of logical partitions and is not reported.
    const bool has_logical =
        std::any_of(d.parts.begin(), d.parts.end(), [](const Part& p) { return p.index >= 5; });
    std::erase_if(d.parts, [&](const Part& p) {
      return has_logical && p.index <= 4 && p.size <= std::max<std::uint64_t>(1024, logical);
    });
    if (d.parts.size() > kMaxItems)
      return Status::FailedPrecondition(tree.path(dir) + ": " + std::to_string(d.parts.size()) +
                                        " partitions; a report holds at most " +
                                        std::to_string(kMaxItems) + " per disk");
    // The partition table's kind from the disk itself when it can be read; else GPT when the
    // kernel named a partition, else MBR: a guess when the disk cannot be read (the agent is not
    // root, the tree has no /dev), and what a disk without a table reports.
    std::optional<Image> image = open_tree_device(tree, k);
    Table table;
    if (image) table = read_table(*image);
    d.style = !table.style.empty() ? table.style : partname ? "GPT" : "MBR";
    for (auto& p : d.parts) {
      sizes[p.kname] = p.size;
      if (image) p.fs = probe_fs(*image, p.offset, p.size);
      for (const auto& e : table.entries)
        if (e.index == p.index) p.boot = e.boot;
      p.mounted_known = st.mounts_known;
      complete_fs(st, p.kname, btrfs_devices, lvm_members, p.fs, p.mount_point);
      p.device_use = device_use_of(p.fs.type, lvm_members.count(p.kname) > 0);
    }
    if (d.parts.empty()) {
      if (image) d.fs = probe_fs(*image, 0, d.size);
      std::string point;
      complete_fs(st, k, btrfs_devices, lvm_members, d.fs, point);
    }
    d.device_use = d.parts.empty() ? device_use_of(d.fs.type, lvm_members.count(k) > 0) : "NORMAL";
    ts.disks.push_back(std::move(d));
  }

  // The file system UUIDs udev links in dev/disk/by-uuid, for the partitions whose superblock
  // could not be read.
  std::map<std::string, std::string> uuid_of;
  for (const auto& u : tree.list("dev/disk/by-uuid"))
    if (auto k = tree.link_target_name("dev/disk/by-uuid", u); !k.empty()) uuid_of[k] = text(u);
  for (auto& d : ts.disks)
    for (auto& p : d.parts)
      if (p.fs.uuid.empty() && uuid_of.count(p.kname)) p.fs.uuid = uuid_of[p.kname];

  // The OS disk: the one /boot/efi, /boot or / is on (in that order: the boot loader lives with
  // the first that is mounted), through LVM and dm-crypt.
  for (const char* point : {"/boot/efi", "/boot", "/"}) {
    std::set<std::string> leaves;
    for (const auto& m : st.mounts)
      if (m.point == point && !m.kname.empty()) below(st, m.kname, false, leaves);
    Disk* found = nullptr;
    for (auto& d : ts.disks) {
      if (leaves.count(d.name)) found = &d;
      for (const auto& p : d.parts)
        if (leaves.count(p.kname)) found = &d;
      if (found) break;
    }
    if (found) {
      found->os_disk = true;
      found->device_use = "BOOT";  // as SMS's example marks its system disk
      break;
    }
  }
  // Else (the root's device not known: a tree without proc/mounts) the first disk with an EFI
  // system, BIOS boot or active partition, when its table could be read.
  if (std::none_of(ts.disks.begin(), ts.disks.end(), [](const Disk& d) { return d.os_disk; }))
    for (auto& d : ts.disks)
      if (std::any_of(d.parts.begin(), d.parts.end(), [](const Part& p) { return p.boot; })) {
        d.os_disk = true;
        d.device_use = "BOOT";
        break;
      }

  for (const auto& [name, vg] : vgs) {
    if (ts.volume_groups.size() == kMaxItems) break;
    std::vector<std::string> components;
    std::uint64_t size = 0;
    for (const auto& c : vg.components) {
      components.push_back(device_path(c, st));
      const auto it = st.dm.find(c);
      size += it != st.dm.end() ? it->second.size : sizes.count(c) ? sizes[c] : 0;
    }
    json::array lvs;
    for (const auto& k : vg.lvs) {
      if (lvs.size() == kMaxItems) break;
      const DmDev& d = st.dm.at(k);
      FsInfo fs;
      if (auto image = open_tree_device(tree, k)) fs = probe_fs(*image, 0, d.size);
      std::string point;
      complete_fs(st, k, btrfs_devices, lvm_members, fs, point);
      json::object o;
      o["name"] = text("/dev/mapper/" + d.name, 1024);
      o["device_use"] = device_use_of(fs.type, false);
      o["size"] = number(d.size);
      if (!fs.type.empty()) o["file_system"] = text(fs.type);
      if (st.mounts_known) o["mount_point"] = text(point, 256);
      if (fs.inode_size) o["inode_size"] = number(fs.inode_size);
      if (fs.inode_nums) o["inode_nums"] = number(fs.inode_nums);
      lvs.push_back(std::move(o));
    }
    json::object o;
    o["name"] = text(name);
    o["components"] = text(join_fitting(components));
    o["size"] = number(size);
    o["logical_volumes"] = std::move(lvs);
    ts.volume_groups.push_back(std::move(o));
  }
  return ts;
}

// ---------------------------------------------------------------------------------------------
// Stand-in disks

struct StandInStorage {
  std::vector<Disk> disks;
  json::array btrfs_list;
};

Result<StandInStorage> stand_in_storage(const std::vector<DiskStandIn>& stand_ins) {
  StandInStorage out;
  if (stand_ins.size() > kMaxItems)
    return Status::InvalidArgument("--disk: " + std::to_string(stand_ins.size()) +
                                   " disks; a report holds at most " + std::to_string(kMaxItems));
  std::set<std::string> names;
  struct Btrfs {
    std::vector<std::string> devices;
    FsInfo fs;
  };
  std::map<std::string, Btrfs> btrfs;  // by UUID: the devices of one file system together
  std::vector<std::string> btrfs_order;
  for (const auto& s : stand_ins) {
    const std::string arg = "--disk " + s.name + "=" + s.path;
    if (s.name.empty()) return Status::InvalidArgument(arg + ": NAME must not be empty");
    if (s.name.size() > 64 || text(s.name) != s.name ||
        s.name.find_first_of("/ ") != std::string::npos)
      return Status::InvalidArgument(
          arg + ": NAME must be a device name of at most 64 characters, without '/' or spaces");
    if (!names.insert(s.name).second)
      return Status::InvalidArgument("--disk " + s.name + ": given twice");
    const std::string what = "--disk " + s.name + ": " + s.path;
    if (s.path.empty()) return Status::InvalidArgument(arg + ": PATH must not be empty");
    Fd fd(::open(s.path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd.ok()) {
      const int e = errno;
      if (e == EACCES || e == EPERM) return Status::PermissionDenied(what + ": " + errno_text(e));
      return Status::InvalidArgument(what + ": " + errno_text(e));
    }
    std::optional<Image> image = Image::of(std::move(fd));
    if (!image) return Status::InvalidArgument(what + ": not a regular file or a block device");
    if (image->size() == 0) return Status::InvalidArgument(what + ": empty");
    const Table table = read_table(*image);
    if (!table.error.empty()) return Status::DataLoss(what + ": " + table.error);
    if (table.entries.size() > kMaxItems)
      return Status::FailedPrecondition(what + ": " + std::to_string(table.entries.size()) +
                                        " partitions; a report holds at most " +
                                        std::to_string(kMaxItems) + " per disk");
    Disk d;
    d.name = s.name;
    d.path = s.path;
    d.size = image->size();
    // A disk without a partition table is reported as SMS's agent reports one (a whole-disk
    // LVM physical volume in its example): MBR, no physical volumes; the environment check
    // takes only MBR and GPT.
    d.style = table.style.empty() ? "MBR" : table.style;
    for (const auto& e : table.entries) {
      Part p;
      p.kname = partition_name(s.name, e.index);
      p.index = e.index;
      p.offset = e.offset;
      p.size = e.size;
      p.boot = e.boot;
      p.fs = probe_fs(*image, e.offset, e.size);
      p.device_use = device_use_of(p.fs.type, false);
      d.parts.push_back(std::move(p));
    }
    if (d.parts.empty()) d.fs = probe_fs(*image, 0, d.size);
    d.device_use = d.parts.empty() ? device_use_of(d.fs.type, false) : "NORMAL";
    auto note_btrfs = [&](const FsInfo& fs, const std::string& device) {
      if (fs.type != "btrfs") return;
      if (!btrfs.count(fs.uuid)) btrfs_order.push_back(fs.uuid);
      btrfs[fs.uuid].devices.push_back(device);
      btrfs[fs.uuid].fs = fs;
    };
    note_btrfs(d.fs, "/dev/" + d.name);
    for (const auto& p : d.parts) note_btrfs(p.fs, "/dev/" + p.kname);
    out.disks.push_back(std::move(d));
  }
  // The OS disk: the first with an EFI system or BIOS boot partition, or an active one.
  for (auto& d : out.disks) {
    if (std::none_of(d.parts.begin(), d.parts.end(), [](const Part& p) { return p.boot; }))
      continue;
    d.os_disk = true;
    d.device_use = "BOOT";
    break;
  }
  // From the superblock: what the first device of a btrfs file system says of all of it.
  for (const auto& uuid : btrfs_order) {
    const Btrfs& b = btrfs[uuid];
    json::object o;
    o["name"] = b.devices.front();
    o["label"] = b.fs.label;
    o["uuid"] = uuid;
    o["device"] = join_fitting(b.devices);
    o["nodesize"] = number(b.fs.btrfs_nodesize);
    o["sectorsize"] = number(b.fs.btrfs_sectorsize);
    out.btrfs_list.push_back(std::move(o));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The system

std::map<std::string, std::string> parse_os_release(std::string_view t) {
  std::map<std::string, std::string> kv;
  for (auto l : split_lines(t)) {
    l = trim(l);
    const auto eq = l.find('=');
    if (l.empty() || l.front() == '#' || eq == std::string_view::npos) continue;
    std::string_view v = trim(l.substr(eq + 1));
    std::string value;
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
      const char q = v.front();
      v = v.substr(1, v.size() - 2);
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (q == '"' && v[i] == '\\' && i + 1 < v.size()) ++i;  // \" \\ \$ \`
        value += v[i];
      }
    } else {
      value = std::string(v);
    }
    kv[std::string(trim(l.substr(0, eq)))] = value;
  }
  return kv;
}

struct Arch {
  std::string name;  // "x86_64", "aarch64", "i686", ...; "" when not known
  int bits = 0;      // 0 when not known
};

// The system's architecture from the ELF header of one of its programs (a 32-bit system on a
// 64-bit CPU is 32-bit), else from proc/cpuinfo: x86's "lm" (long mode) flag, or the "CPU
// architecture: 8" only an arm64 kernel prints (a 32-bit kernel says 7 on the same CPUs).
Arch architecture(const Tree& tree, std::string_view cpuinfo) {
  static constexpr unsigned char kElfMagic[4] = {0x7F, 'E', 'L', 'F'};
  for (const char* program : {"usr/bin/env", "bin/sh"}) {
    Fd f = tree.open(program, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    unsigned char h[20] = {};
    if (!f.ok() || ::pread(f.get(), h, sizeof h, 0) != static_cast<ssize_t>(sizeof h) ||
        std::memcmp(h, kElfMagic, 4) != 0 || (h[4] != 1 && h[4] != 2))
      continue;
    const int bits = h[4] == 2 ? 64 : 32;
    const bool little = h[5] == 1;
    const unsigned machine = little ? le16(&h[18]) : static_cast<unsigned>(h[18] << 8 | h[19]);
    static const std::map<unsigned, std::pair<const char*, const char*>> kMachines = {
        {0x03, {"i686", "i686"}},       {0x3E, {"x86_64", "x86_64"}},
        {0x28, {"arm", "arm"}},         {0xB7, {"aarch64", "aarch64"}},
        {0x16, {"s390", "s390x"}},      {0x15, {"ppc64", "ppc64"}},
        {0xF3, {"riscv32", "riscv64"}}, {0x102, {"loongarch32", "loongarch64"}}};
    Arch a;
    a.bits = bits;
    if (const auto it = kMachines.find(machine); it != kMachines.end())
      a.name = bits == 64 ? it->second.second : it->second.first;
    if (a.name == "ppc64" && little) a.name = "ppc64le";
    return a;
  }
  for (auto l : split_lines(cpuinfo)) {
    const auto colon = l.find(':');
    if (colon == std::string_view::npos) continue;
    const auto key = trim(l.substr(0, colon));
    const auto value = trim(l.substr(colon + 1));
    if (key == "flags") {
      const auto f = fields_of(value);
      const bool lm = std::find(f.begin(), f.end(), "lm") != f.end();
      return lm ? Arch{"x86_64", 64} : Arch{"i686", 32};
    }
    if (key == "CPU architecture") return value == "8" ? Arch{"aarch64", 64} : Arch{"arm", 32};
  }
  return {};
}

// SMS names an OS as its example "SUSE12_64BIT_SP2" does: the distribution and its version, then
// the bits. Here: ID in capitals (NAME's first word without ID) and VERSION_ID with its dots as
// underscores, "_64BIT" or "_32BIT" when the architecture is known: "DEBIAN12_64BIT",
// "UBUNTU22_04_64BIT", "CENTOS7_64BIT", "ROCKY9_3_64BIT"; SLES as SMS writes it, the service
// pack after the bits ("sles" 12.2 → "SUSE12_64BIT_SP2"). The service's check needs it named and
// refuses one that says 32BIT, as SMS does.
std::string os_version(const std::map<std::string, std::string>& os, const Arch& arch) {
  std::string distro;
  if (const auto it = os.find("ID"); it != os.end() && !it->second.empty()) {
    distro = token(it->second);
  } else if (const auto n = os.find("NAME"); n != os.end()) {
    const auto f = fields_of(n->second);
    if (!f.empty()) distro = token(f.front());
  }
  std::string version;
  if (const auto it = os.find("VERSION_ID"); it != os.end()) version = token(it->second);
  const std::string bits = arch.bits ? "_" + std::to_string(arch.bits) + "BIT" : std::string();
  if (distro == "SLES" || distro == "SLED") {
    const auto dot = version.find('_');
    const std::string sp = dot == std::string::npos ? std::string() : version.substr(dot + 1);
    return text("SUSE" + version.substr(0, dot) + bits +
                (sp.empty() || sp == "0" ? "" : "_SP" + sp));
  }
  return text(distro + version + bits);
}

// x.y.z of a kernel release ("6.1.0" of "6.1.0-18-amd64").
std::string kernel_simplification(std::string_view release) {
  std::size_t n = 0;
  int dots = 0;
  while (n < release.size() && (std::isdigit(static_cast<unsigned char>(release[n])) ||
                                (release[n] == '.' && dots < 2))) {
    dots += release[n] == '.';
    ++n;
  }
  return std::string(release.substr(0, n));
}

struct Net {
  std::string name, mac, ip, ipv6, netmask, gateway;
  std::optional<std::uint64_t> mtu;
  bool default_route = false;
};

struct Route {
  std::string iface;
  std::uint32_t dest = 0, gateway = 0, mask = 0;  // network byte order
  unsigned flags = 0;
};

std::vector<Route> read_routes(const Tree& tree) {
  std::vector<Route> out;
  const auto t = tree.read("proc/net/route");
  if (!t) return out;
  for (auto l : split_lines(*t)) {
    const auto f = fields_of(l);
    if (f.size() < 8 || f[0] == "Iface") continue;
    // The kernel prints each address as the hex of its in-memory (network order) u32 on this
    // host: read back into a u32, it is that address again.
    const auto dest = to_u64(f[1], 16), gw = to_u64(f[2], 16), flags = to_u64(f[3], 16),
               mask = to_u64(f[7], 16);
    if (!dest || !gw || !flags || !mask) continue;
    out.push_back({std::string(f[0]), static_cast<std::uint32_t>(*dest),
                   static_cast<std::uint32_t>(*gw), static_cast<std::uint32_t>(*mask),
                   static_cast<unsigned>(*flags)});
  }
  return out;
}

// The addresses of this host: the "/32 host LOCAL" leaves of proc/net/fib_trie, in order.
std::vector<std::string> local_ipv4(const Tree& tree) {
  std::vector<std::string> out;
  const auto t = tree.read("proc/net/fib_trie");
  if (!t) return out;
  std::string leaf;
  for (auto l : split_lines(*t)) {
    l = trim(l);
    if (l.starts_with("|-- ")) {
      leaf = std::string(trim(l.substr(4)));
    } else if (l.starts_with("/32 host LOCAL") && !leaf.empty()) {
      if (!leaf.starts_with("127.") && std::find(out.begin(), out.end(), leaf) == out.end())
        out.push_back(leaf);
    }
  }
  return out;
}

Result<std::vector<Net>> networks(const Tree& tree) {
  std::vector<Net> nets;
  for (const auto& name : tree.list("sys/class/net")) {
    const std::string dir = "sys/class/net/" + name;
    // bonding_masters and other files live there too.
    if (name == "lo" || !tree.exists(dir + "/mtu")) continue;
    Net n;
    n.name = text(name);
    std::string mac = tree.line(dir + "/address");
    for (char& c : mac) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    // Tunnels and the like have no hardware address, or all zeros.
    if (mac.find_first_not_of("0:") != std::string::npos) n.mac = text(mac);
    n.mtu = tree.number(dir + "/mtu");
    nets.push_back(std::move(n));
  }
  const auto routes = read_routes(tree);
  auto net_named = [&](const std::string& iface) -> Net* {
    for (auto& n : nets)
      if (n.name == iface) return &n;
    return nullptr;
  };
  constexpr unsigned kUp = 0x1, kGateway = 0x2;
  std::string default_iface;
  for (const auto& r : routes) {
    if ((r.flags & kUp) && (r.flags & kGateway) && r.dest == 0 && r.mask == 0)
      if (Net* n = net_named(r.iface); n && !n->default_route) {
        n->default_route = true;
        n->gateway = ipv4_text(r.gateway);
        if (default_iface.empty()) default_iface = r.iface;
      }
  }
  // Each address goes to the interface of the most specific on-link route that holds it, with
  // that route's mask; the first address of an interface is the one reported.
  std::vector<std::string> unplaced;
  for (const auto& ip : local_ipv4(tree)) {
    in_addr a{};
    if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) continue;
    const Route* best = nullptr;
    for (const auto& r : routes) {
      if (!(r.flags & kUp) || (r.flags & kGateway) || r.mask == 0) continue;
      if ((a.s_addr & r.mask) != r.dest) continue;
      if (!best || std::popcount(r.mask) > std::popcount(best->mask)) best = &r;
    }
    Net* n = best ? net_named(best->iface) : nullptr;
    if (!n) {
      unplaced.push_back(ip);
      continue;
    }
    if (n->ip.empty()) {
      n->ip = ip;
      n->netmask = ipv4_text(best->mask);
    }
  }
  // A cloud that gives a /32 (GCP) leaves its address without an on-link route; it lives on the
  // interface of the default route, when that one has no other.
  if (Net* n = net_named(default_iface); n && n->ip.empty() && !unplaced.empty()) {
    n->ip = unplaced.front();
    n->netmask = "255.255.255.255";
  }
  // proc/net/if_inet6: address (32 hex digits), index, prefix length, scope, flags, interface.
  if (const auto t = tree.read("proc/net/if_inet6")) {
    for (auto l : split_lines(*t)) {
      const auto f = fields_of(l);
      if (f.size() < 6 || f[0].size() != 32) continue;
      const auto scope = to_u64(f[3], 16);
      if (!scope || *scope != 0) continue;  // link (0x20), host (0x10), site-local
      unsigned char bytes[16];
      bool ok = true;
      for (int i = 0; i < 16 && ok; ++i) {
        const auto b = to_u64(f[0].substr(static_cast<std::size_t>(2 * i), 2), 16);
        ok = b.has_value();
        bytes[i] = static_cast<unsigned char>(b.value_or(0));
      }
      if (!ok || (bytes[0] == 0xFE && (bytes[1] & 0xC0) == 0x80)) continue;
      char buf[INET6_ADDRSTRLEN] = {};
      if (!::inet_ntop(AF_INET6, bytes, buf, sizeof buf)) continue;
      if (Net* n = net_named(std::string(f[5])); n && n->ipv6.empty()) n->ipv6 = buf;
    }
  }
  // The first network is the source's (the service keys re-registration on its mac, and ip is
  // its address): the one with the default route, then those with a MAC address, then with an
  // address; by name within each (docker0 and virbr0 sort before eth0 otherwise).
  std::stable_sort(nets.begin(), nets.end(), [](const Net& a, const Net& b) {
    auto key = [](const Net& n) {
      return std::make_tuple(!n.default_route, n.mac.empty(), n.ip.empty() && n.ipv6.empty());
    };
    return key(a) < key(b);
  });
  if (nets.empty())
    return Status::FailedPrecondition(tree.path("sys/class/net") +
                                      ": no network interface but lo; a source needs one");
  if (nets.front().mac.empty())
    return Status::FailedPrecondition(tree.path("sys/class/net/" + nets.front().name + "/address") +
                                      ": no MAC address on any network interface; the service "
                                      "needs the first one's");
  if (nets.size() > kMaxItems) nets.resize(kMaxItems);
  return nets;
}

// SMS's platform from the firmware's DMI strings; nullopt when they cannot be read.
std::optional<std::string> platform(const Tree& tree) {
  const std::string dmi = "sys/class/dmi/id/";
  if (!tree.exists(dmi + "sys_vendor")) return std::nullopt;
  const std::string vendor = tree.line(dmi + "sys_vendor");
  const std::string product = tree.line(dmi + "product_name");
  const std::string asset = tree.line(dmi + "chassis_asset_tag");
  const std::string bios = tree.line(dmi + "bios_version");
  auto has = [](const std::string& s, std::string_view what) {
    return s.find(what) != std::string::npos;
  };
  if (has(vendor, "HUAWEI") || has(asset, "HUAWEICLOUD")) return "hw";
  if (has(vendor, "Alibaba")) return "ali";
  if (has(vendor, "Amazon") || has(bios, "amazon")) return "aws";
  if (has(vendor, "Google")) return "gcp";
  if (has(vendor, "Tencent")) return "tencent";
  if (has(vendor, "VMware")) return "vmware";
  if (has(vendor, "Microsoft") && has(product, "Virtual Machine"))
    return asset == "7783-7084-3265-9085-8269-3286-77" ? "azure" : "hyperv";  // Azure's tag
  return "other";
}

}  // namespace

Result<Facts> collect_facts(const FactsOptions& options) {
  auto opened = Tree::open_root(options.root);
  if (!opened.ok()) return opened.status();
  const Tree tree = std::move(opened).value();
  if (!options.name.empty() && (text(options.name, 64) != options.name))
    return Status::InvalidArgument(
        "--name: must be at most 64 characters of UTF-8 text without control characters");

  // The OS: os-release(5) says etc/ first, then usr/lib/.
  int err = 0;
  std::optional<std::string> os_text = tree.read("etc/os-release", &err);
  if (!os_text) os_text = tree.read("usr/lib/os-release");
  if (!os_text)
    return Status::FailedPrecondition(tree.path("etc/os-release") + ": " + errno_text(err) +
                                      " (nor " + tree.path("usr/lib/os-release") +
                                      "): the OS version cannot be named");
  const auto os = parse_os_release(*os_text);
  const std::string cpuinfo = tree.read("proc/cpuinfo").value_or("");
  const Arch arch = architecture(tree, cpuinfo);
  const std::string version = os_version(os, arch);
  if (version.empty())
    return Status::FailedPrecondition(tree.path("etc/os-release") +
                                      ": neither ID nor NAME names the OS");
  const std::string kernel = text(tree.line("proc/sys/kernel/osrelease"));

  // The host name: etc/hostname's first line that is not a comment, else the kernel's.
  std::string hostname;
  if (const auto h = tree.read("etc/hostname"))
    for (auto l : split_lines(*h))
      if (l = trim(l); !l.empty() && l.front() != '#') {
        hostname = std::string(l);
        break;
      }
  if (hostname.empty()) hostname = tree.line("proc/sys/kernel/hostname");
  // The kernel's "(none)" is no name; nor is one the schema refuses (1..64 characters).
  if (hostname == "(none)" || text(hostname, 64) != hostname) hostname.clear();
  const std::string name = options.name.empty() ? hostname : options.name;
  if (name.empty())
    return Status::FailedPrecondition(tree.path("etc/hostname") + ": no host name (nor in " +
                                      tree.path("proc/sys/kernel/hostname") +
                                      "); name the source with --name");

  auto nets = networks(tree);
  if (!nets.ok()) return nets.status();
  std::string ip, ipv6;
  for (const auto& n : *nets) {
    if (ip.empty()) ip = n.ip;
    if (ipv6.empty()) ipv6 = n.ipv6;
  }
  if (ip.empty() && ipv6.empty())
    return Status::FailedPrecondition("no address: neither " + tree.path("proc/net/fib_trie") +
                                      " nor " + tree.path("proc/net/if_inet6") +
                                      " gives one to a network interface; the service needs "
                                      "an IPv4 or IPv6 address");

  std::vector<Disk> disks;
  json::array volume_groups, btrfs_list;
  if (options.disks.empty()) {
    auto ts = tree_storage(tree);
    if (!ts.ok()) return ts.status();
    disks = std::move(ts->disks);
    volume_groups = std::move(ts->volume_groups);
    btrfs_list = std::move(ts->btrfs_list);
  } else {
    // The tree's volume groups and btrfs file systems describe its own disks, not these; the
    // stand-ins' LVM physical volumes show as LVM2_member (their VGs are in LVM metadata, which is
    // not parsed), their btrfs file systems come from their superblocks.
    auto ss = stand_in_storage(options.disks);
    if (!ss.ok()) return ss.status();
    disks = std::move(ss->disks);
    btrfs_list = std::move(ss->btrfs_list);
  }

  json::object r;
  r["os_type"] = "LINUX";
  r["name"] = name;
  if (!hostname.empty()) r["hostname"] = hostname;
  r["os_version"] = version;
  {
    // SMS's example: {"release_type", "release_version", "kernel_simplification",
    // "architecture", "kernel_version"}, within the field's 255 characters.
    json::object lbc;
    const auto id = os.find("ID");
    const auto vid = os.find("VERSION_ID");
    if (id != os.end()) lbc["release_type"] = token(id->second);
    if (vid != os.end()) lbc["release_version"] = text(vid->second, 32);
    if (!kernel.empty()) lbc["kernel_simplification"] = kernel_simplification(kernel);
    if (!arch.name.empty()) lbc["architecture"] = arch.name;
    if (!kernel.empty()) lbc["kernel_version"] = kernel;
    for (const char* dispensable : {"kernel_version", "release_type"})
      if (json::serialize(lbc).size() > 255) lbc.erase(dispensable);
    if (!lbc.empty() && json::serialize(lbc).size() <= 255)
      r["linux_block_check"] = json::serialize(lbc);
  }
  if (!kernel.empty()) r["kernel_version"] = kernel;
  r["firmware"] = tree.exists("sys/firmware/efi") ? "UEFI" : "BIOS";
  // GRUB is the only boot loader the check takes; systemd-boot is named so that it fails the
  // check rather than pass as unknown; "" when neither is found.
  if (tree.exists("boot/grub") || tree.exists("boot/grub2"))
    r["boot_loader"] = "GRUB";
  else if (tree.exists("boot/loader/loader.conf") || tree.exists("boot/efi/loader/loader.conf") ||
           tree.exists("efi/loader/loader.conf"))
    r["boot_loader"] = "SYSTEMD-BOOT";
  else
    r["boot_loader"] = "";
  {
    std::uint64_t processors = 0;
    for (auto l : split_lines(cpuinfo))
      if (const auto colon = l.find(':');
          colon != std::string_view::npos && trim(l.substr(0, colon)) == "processor")
        ++processors;
    if (processors) r["cpu_quantity"] = number(std::min<std::uint64_t>(processors, 65535));
  }
  // Bytes, as SMS's example sends it (934752256 for a 1 GB machine), though its table says MB.
  if (const auto m = tree.read("proc/meminfo"))
    for (auto l : split_lines(*m))
      if (l.starts_with("MemTotal:")) {
        auto f = fields_of(l.substr(9));
        if (!f.empty())
          if (const auto kb = to_u64(f[0])) r["memory"] = number(*kb * 1024);
      }

  json::array disks_json;
  for (const auto& d : disks) disks_json.push_back(disk_json(d));
  r["disks"] = std::move(disks_json);
  r["volume_groups"] = std::move(volume_groups);
  r["btrfs_list"] = std::move(btrfs_list);

  json::array nets_json;
  for (const auto& n : *nets) {
    json::object o;
    o["name"] = n.name;
    if (!n.ip.empty()) o["ip"] = n.ip;
    if (!n.ipv6.empty()) o["ipv6"] = n.ipv6;
    if (!n.netmask.empty()) o["netmask"] = n.netmask;
    if (!n.gateway.empty()) o["gateway"] = n.gateway;
    if (n.mtu) o["mtu"] = number(std::min<std::uint64_t>(*n.mtu, 2147483647));
    o["mac"] = n.mac;
    nets_json.push_back(std::move(o));
  }
  r["networks"] = std::move(nets_json);
  if (!ip.empty()) r["ip"] = ip;
  if (!ipv6.empty()) r["ipv6"] = ipv6;

  r["has_rsync"] = tree.exists("usr/bin/rsync") || tree.exists("bin/rsync");
  r["has_tc"] = tree.exists("usr/sbin/tc") || tree.exists("sbin/tc") || tree.exists("usr/bin/tc");
  // Paravirtual devices (virtio, Xen's front ends) or a Xen guest.
  r["paravirtualization"] = !tree.list("sys/bus/virtio/devices").empty() ||
                            !tree.list("sys/bus/xen/devices").empty() ||
                            tree.line("sys/hypervisor/type") == "xen";
  {
    // Raw devices bound by raw(8): dev/raw/rawN (rawctl is the control device).
    std::vector<std::string> raw;
    for (const auto& e : tree.list("dev/raw"))
      if (e != "rawctl") raw.push_back("/dev/raw/" + e);
    r["raw_devices"] = text(join_fitting(raw));
  }
  // The agent was started by hand (or by a unit someone wrote), not by Migration Center.
  r["start_type"] = "MANUAL";
  if (const auto p = platform(tree)) r["platform"] = *p;
  r["agent_version"] = text(options.agent_version);

  Facts facts;
  facts.report = std::move(r);
  for (const auto& d : disks) {
    CollectedDisk c;
    c.name = d.name;
    c.path = d.path;
    c.size = d.size;
    c.partition_style = d.style;
    if (d.parts.empty()) c.file_system = d.fs.type;
    for (const auto& p : d.parts)
      c.partitions.push_back({p.index, "/dev/" + p.kname, p.offset, p.size, p.fs.type});
    facts.disks.push_back(std::move(c));
  }
  return facts;
}

}  // namespace dmsctl::agent
