// LocalBackend: adopting files found under import/ and lost+found/ as volumes, and giving
// volumes back, without copying a byte (see local_backend.hpp for the order of the steps and
// what a restart does with each).

#include <sys/file.h>

#include <map>

#include "backends/local_impl.hpp"
#include "base/codec.hpp"

namespace dmscore {

namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
// Where candidates are looked for, relative to the cluster directory.
constexpr const char* kCandidateDirs[] = {"import", "lost+found"};
// A bound on the entries one list walks, so a directory holding millions stays cheap.
constexpr std::size_t kMaxCandidates = 100000;

// One look at a candidate.
struct Look {
  bool exists = false;
  bool regular = false;
  bool symlink = false;
  bool locked = false;
  std::uint64_t size = 0;
  std::string fingerprint;
};

Look look_at(const std::string& path) {
  Look l;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return l;
  l.exists = true;
  l.symlink = S_ISLNK(st.st_mode);
  l.regular = S_ISREG(st.st_mode);
  l.size = static_cast<std::uint64_t>(st.st_size);
  l.fingerprint = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
                  std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
                  std::to_string(st.st_mtim.tv_nsec);
  if (!l.regular) return l;
  // A writer's lock: a whole-file flock, or a POSIX write lock on any range.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) return l;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) != 0)
    l.locked = true;
  else
    ::flock(fd.get(), LOCK_UN);
  struct flock probe {};
  probe.l_type = F_RDLCK;
  probe.l_whence = SEEK_SET;
  if (::fcntl(fd.get(), F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK) l.locked = true;
  return l;
}

// Why a candidate may not be taken over; "" when it may.
std::string unsafe_because(const Look& l) {
  if (l.symlink) return "a symbolic link";
  if (!l.regular) return "not a regular file";
  if (l.size == 0) return "empty";
  if (l.size % 512 != 0) return "size is not a multiple of 512 bytes";
  if (l.locked) return "locked by another process";
  return "";
}

// INVALID_ARGUMENT naming `ref` unless `ref` is a plain relative path under a candidate
// directory.
Status check_reference(const std::string& ref) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("ref: " + why + " (a path under import/ or lost+found/ of " +
                                   "the cluster directory, e.g. import/disk.img)");
  };
  if (ref.empty()) return bad("is empty");
  if (ref.size() > 4096) return bad("is longer than 4096 bytes");
  for (char c : ref)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return bad("contains control characters");
  const fs::path p(ref);
  if (p.is_absolute()) return bad("must be relative");
  if (p.lexically_normal().string() != ref) return bad("must be a normal path");
  auto part = p.begin();
  bool under = false;
  for (const char* d : kCandidateDirs) under = under || *part == d;
  if (!under || std::distance(p.begin(), p.end()) < 2) return bad(ref + " is not a candidate");
  for (const auto& c : p)
    if (c == ".." || c == ".") return bad("must not contain . or ..");
  return Status::Ok();
}

std::string size_text(std::uint64_t bytes) { return std::to_string(bytes) + " bytes"; }

}  // namespace

Result<std::string> LocalBackend::Impl::move_out(const std::string& from,
                                                 const std::string& to_rel) {
  const fs::path target = fs::path(dir) / to_rel;
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return Status::Unavailable("cannot create " + target.parent_path().string());
  for (int n = 0; n < 10000; ++n) {
    const std::string rel = to_rel + (n == 0 ? "" : "." + std::to_string(n));
    Status s = detail::rename_noreplace(from, dir + "/" + rel);
    if (s.code() == Code::kAlreadyExists) continue;
    if (!s.ok()) return s;
    if (Status d = detail::fsync_dir(target.parent_path().string()); !d.ok()) return d;
    if (Status d = detail::fsync_dir(data_dir()); !d.ok()) return d;
    return rel;
  }
  return Status::ResourceExhausted("too many files named " + to_rel);
}

Status LocalBackend::Impl::shrink_to_adopted(const std::string& file, std::uint64_t adopted_size) {
  Fd fd(::open(file.c_str(), O_RDWR | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) return detail::errno_status("open " + file);
  if (adopted_size == 0 || static_cast<std::uint64_t>(st.st_size) <= adopted_size)
    return Status::Ok();
  // The old end's last block is read (it may hold what was written since); after it, only
  // holes may follow.
  const std::uint64_t block_end = (adopted_size + 4095) / 4096 * 4096;
  std::string tail(block_end - adopted_size, '\0');
  if (::pread(fd.get(), tail.data(), tail.size(), static_cast<off_t>(adopted_size)) !=
      static_cast<ssize_t>(tail.size()))
    return detail::errno_status("read " + file);
  if (tail.find_first_not_of('\0') != std::string::npos) return Status::Ok();
  if (block_end < static_cast<std::uint64_t>(st.st_size) &&
      (::lseek(fd.get(), static_cast<off_t>(block_end), SEEK_DATA) >= 0 || errno != ENXIO))
    return Status::Ok();
  if (::ftruncate(fd.get(), static_cast<off_t>(adopted_size)) != 0 || ::fsync(fd.get()) != 0)
    return detail::errno_status("resize " + file);
  return Status::Ok();
}

Status LocalBackend::Impl::recover_adoption(const Inventory::Object& o) {
  const std::string file = path(Kind::kVolume, o.id);
  if (!fs::exists(file)) {
    // The file never moved: the candidate is where it was, untouched.
    if (Status s = remove_sidecars(Kind::kVolume, o.id); !s.ok()) return s;
    log("rolled back adopting " + o.adopted_from +
        ", which a restart interrupted; it is where it "
        "was");
    return drop_row(Kind::kVolume, o.id);
  }
  auto v = volume_where("id = ?", {o.id}, "volume " + o.id);
  if (!v.ok()) return v.status();
  Fd fd(::open(file.c_str(), O_RDWR | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) return detail::errno_status("open " + file);
  if (static_cast<std::uint64_t>(st.st_size) < v->size &&
      (::ftruncate(fd.get(), static_cast<off_t>(v->size)) != 0 || ::fsync(fd.get()) != 0))
    return detail::errno_status("resize " + file);
  log("finished adopting " + o.adopted_from + " as volume " + o.id + " after a restart");
  return store->transact([&](Txn& t) {
    return t.exec("UPDATE volumes SET state = 'Available' WHERE id = ?", {o.id}).status();
  });
}

Status LocalBackend::Impl::recover_release(const Inventory::Object& o) {
  const std::string file = path(Kind::kVolume, o.id);
  if (fs::exists(file)) {
    auto v = volume_where("id = ?", {o.id}, "volume " + o.id);
    if (!v.ok()) return v.status();
    if (Status s = shrink_to_adopted(file, v->adopted_size); !s.ok()) return s;
    auto to = move_out(file, o.releasing_to);
    if (!to.ok()) return to.status();
    log("finished giving volume " + o.id + " back as " + *to + " after a restart");
  }
  if (Status s = remove_sidecars(Kind::kVolume, o.id); !s.ok()) return s;
  return drop_row(Kind::kVolume, o.id);
}

Result<std::vector<ManageableObject>> LocalBackend::list_manageable_volumes() {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  std::vector<ManageableObject> out;
  // Candidates, looked at twice: one whose size or modification time changed meanwhile is
  // being written.
  std::map<std::string, Look> first;
  for (const char* d : kCandidateDirs) {
    std::error_code ec;
    fs::recursive_directory_iterator it(im.dir + "/" + d, ec), end;
    for (; !ec && it != end && first.size() < kMaxCandidates; it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) continue;
      // Lexically: a symbolic link is listed as itself, not as what it points to.
      const std::string rel = it->path().lexically_relative(im.dir).string();
      first.emplace(rel, look_at(it->path().string()));
    }
  }
  if (!first.empty() && im.options.manage_settle_time.count() > 0)
    im.env->sleep_for(im.options.manage_settle_time);
  for (const auto& [rel, look] : first) {
    ManageableObject m;
    m.reference = rel;
    m.size = look.size;
    m.fingerprint = look.fingerprint;
    m.reason_not_safe = unsafe_because(look);
    if (m.reason_not_safe.empty()) {
      Look again = look_at(im.dir + "/" + rel);
      if (again.fingerprint != look.fingerprint) m.reason_not_safe = "being written";
      m.reason_not_safe = m.reason_not_safe.empty() ? unsafe_because(again) : m.reason_not_safe;
    }
    m.safe_to_manage = m.reason_not_safe.empty();
    m.extra_info = size_text(look.size);
    out.push_back(std::move(m));
  }
  // What the cluster manages already.
  Status s = im.store->read([&](Txn& t) -> Status {
    auto rows = t.query(std::string("SELECT ") + kVolumeCols + " FROM volumes ORDER BY seq");
    if (!rows.ok()) return rows.status();
    for (const auto& r : *rows) {
      Volume v = im.volume_from(r);
      ManageableObject m;
      m.reference = "data/" + detail::local::data_name(Kind::kVolume, v.id);
      m.size = v.size;
      m.reason_not_safe = "already managed";
      m.managed_id = v.id;
      if (!v.adopted_from.empty())
        m.extra_info = "adopted from " + v.adopted_from + " (" + size_text(v.adopted_size) + ")";
      out.push_back(std::move(m));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Volume> LocalBackend::manage_volume(const ManageVolumeRequest& req) {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  if (Status s = check_reference(req.reference); !s.ok()) return s;
  if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (Status s = validate_labels(req.labels, "labels"); !s.ok()) return s;
  if (!req.id.empty() && !detail::is_uuid(req.id))
    return Status::InvalidArgument("id: must be a UUID");
  const std::string from = im.dir + "/" + req.reference;
  const Look look = look_at(from);
  if (!look.exists) return Status::InvalidArgument("ref: no candidate at " + req.reference);
  if (std::string why = unsafe_because(look); !why.empty())
    return Status::InvalidArgument("ref: " + req.reference + " is not safe to manage: " + why);
  if (!req.fingerprint.empty() && req.fingerprint != look.fingerprint)
    return Status::FailedPrecondition("ref: " + req.reference +
                                      " changed since it was listed; list it again");
  if (look.size > (std::uint64_t{1} << 50))
    return Status::InvalidArgument("ref: larger than 1 PiB");

  Volume v;
  v.id = req.id.empty() ? im.env->new_uuid() : req.id;
  v.project_name = req.project_name;
  v.name = req.name;
  v.size = (look.size + kGiB - 1) / kGiB * kGiB;
  v.sector_size = look.size % 4096 == 0 ? 4096 : 512;
  v.state = VolumeState::kCreating;
  v.created_at = im.env->now();
  v.cluster_id = im.id;
  v.device_path = im.volume_path(v.id);
  v.labels = req.labels;
  v.adopted_from = req.reference;
  v.adopted_size = look.size;
  // The row first: it claims the name and records where the file comes from.
  Status s = im.insert_volume_row(v, false);
  if (!s.ok()) return s;
  // Before the file moves, undoing drops the row and sidecar; after, it first moves the file
  // back as it was.
  bool moved = false, extended = false;
  auto undo = [&](Status why) -> Status {
    if (extended) {
      Fd fd(::open(v.device_path.c_str(), O_RDWR | O_CLOEXEC));
      if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(look.size)) != 0 ||
          ::fsync(fd.get()) != 0)
        return why;  // the file stays adopted; the next open finishes the adoption
    }
    if (moved && (!detail::rename_noreplace(v.device_path, from).ok() ||
                  !detail::fsync_dir(fs::path(from).parent_path().string()).ok()))
      return why;
    if (im.remove_sidecars(Kind::kVolume, v.id).ok()) (void)im.drop_row(Kind::kVolume, v.id);
    return why;
  };
  if (s = im.write_sidecar(im.meta_of(v, false), true); !s.ok()) return undo(s);
  if (s = detail::rename_noreplace(from, v.device_path); !s.ok()) return undo(s);
  moved = true;
  // Still the file that was looked at, unchanged?
  if (look_at(v.device_path).fingerprint != look.fingerprint)
    return undo(Status::FailedPrecondition("ref: " + req.reference +
                                           " changed while it was being managed; list it again"));
  if (s = detail::fsync_dir(im.data_dir()); !s.ok()) return undo(s);
  if (s = detail::fsync_dir(fs::path(from).parent_path().string()); !s.ok()) return undo(s);
  {
    Fd fd(::open(v.device_path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) return undo(detail::errno_status("open " + v.device_path));
    extended = v.size > look.size;
    if ((extended && ::ftruncate(fd.get(), static_cast<off_t>(v.size)) != 0) ||
        ::fchmod(fd.get(), im.volume_mode()) != 0 ||
        (im.gid() >= 0 && ::fchown(fd.get(), static_cast<uid_t>(-1), im.gid()) != 0) ||
        ::fsync(fd.get()) != 0)
      return undo(detail::errno_status("size " + v.device_path));
  }
  s = im.store->transact([&](Txn& t) {
    return t.exec("UPDATE volumes SET state = 'Available' WHERE id = ?", {v.id}).status();
  });
  if (!s.ok()) return undo(s);
  v.state = VolumeState::kAvailable;
  im.log("adopted " + req.reference + " as volume " + v.id + " (" + v.project_name + "/" + v.name +
         ")");
  return v;
}

Result<std::string> LocalBackend::unmanage_volume(const std::string& project,
                                                  const std::string& id) {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  auto v = im.volume_where("project = ? AND id = ?", {project, id}, "volume " + id);
  if (!v.ok()) return v.status();
  if (v->state != VolumeState::kAvailable)
    return Status::FailedPrecondition("volume " + id + " is " + std::string(to_string(v->state)) +
                                      "; only an Available volume can be unmanaged");
  // Where it goes: back where it was adopted from when that is free, else import/<name>.
  std::string to = v->adopted_from.empty() ? "import/" + v->name : v->adopted_from;
  bool changed = false;
  Status s = im.store->transact([&](Txn& t) -> Status {
    auto n = t.query_one("SELECT COUNT(*) FROM snapshots WHERE source_volume_id = ?", {id});
    if (!n.ok()) return n.status();
    if (*n && (**n).int64(0) > 0)
      return Status::FailedPrecondition("volume " + id + " has " + std::to_string((**n).int64(0)) +
                                        " snapshot(s); delete them first");
    auto r = t.exec(
        "UPDATE volumes SET releasing_to = ? WHERE id = ? AND state = 'Available' AND "
        "releasing_to = ''",
        {to, id});
    if (!r.ok()) return r.status();
    changed = *r > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!changed) return Status::FailedPrecondition("volume " + id + " is being unmanaged already");
  // Back at its old size first when it can be (a restart repeats this), then out.
  Status shrunk = im.shrink_to_adopted(v->device_path, v->adopted_size);
  auto where = shrunk.ok() ? im.move_out(v->device_path, to) : Result<std::string>(shrunk);
  if (!where.ok()) {
    // Nothing moved: the volume stays managed, at its size. (Had it moved, the next open would
    // finish giving it back.)
    Fd fd(::open(v->device_path.c_str(), O_RDWR | O_CLOEXEC));
    if (fd.valid() && ::ftruncate(fd.get(), static_cast<off_t>(v->size)) == 0 &&
        ::fsync(fd.get()) == 0)
      (void)im.store->transact([&](Txn& t) {
        return t.exec("UPDATE volumes SET releasing_to = '' WHERE id = ?", {id}).status();
      });
    return where.status();
  }
  if (s = im.remove_sidecars(Kind::kVolume, id); !s.ok()) return s;
  if (s = im.drop_row(Kind::kVolume, id); !s.ok()) return s;
  im.log("gave volume " + id + " back as " + *where);
  return *where;
}

}  // namespace dmscore
