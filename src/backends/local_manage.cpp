// LocalBackend: adopting files found under import/ and lost+found/ as volumes and snapshots, and
// giving them back, without copying a byte (see local_backend.hpp for the order of the steps and
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
  bool linked = false;  // other hard links name the same bytes
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
  l.linked = st.st_nlink != 1;
  l.fingerprint = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
                  std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
                  std::to_string(st.st_mtim.tv_nsec);
  if (!l.regular) return l;
  // A user's lock: a whole-file flock of either kind, or a POSIX or OFD lock of either kind on
  // any range (QEMU holds shared OFD locks on the images it runs). A write-lock probe is what
  // any of them conflicts with.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) return l;
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0)
    l.locked = true;
  else
    ::flock(fd.get(), LOCK_UN);
  struct flock probe {};
  probe.l_type = F_WRLCK;
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
  if (l.linked) return "has other hard links";
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

// A snapshot candidate's file name holds an '@': <volume file>@<snapshot>. The reference of the
// volume it belongs to, or "" for a volume candidate.
std::string origin_of(const std::string& ref) {
  const auto slash = ref.rfind('/');
  const auto at = ref.find('@', slash == std::string::npos ? 0 : slash + 1);
  if (at == std::string::npos || at == slash + 1) return "";
  return ref.substr(0, at);
}

}  // namespace

std::vector<ManageableObject> LocalBackend::Impl::candidates(bool snapshots) {
  Impl& im = *this;
  std::map<std::string, Look> first;
  for (const char* d : kCandidateDirs) {
    std::error_code ec;
    fs::recursive_directory_iterator it(im.dir + "/" + d, ec), end;
    for (; !ec && it != end && first.size() < kMaxCandidates; it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) continue;
      // Lexically: a symbolic link is listed as itself, not as what it points to.
      const std::string rel = it->path().lexically_relative(im.dir).string();
      if (origin_of(rel).empty() == snapshots) continue;
      first.emplace(rel, look_at(it->path().string()));
    }
  }
  if (!first.empty() && im.options.manage_settle_time.count() > 0)
    im.env->sleep_for(im.options.manage_settle_time);
  std::vector<ManageableObject> out;
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
    m.source_reference = origin_of(rel);
    out.push_back(std::move(m));
  }
  return out;
}

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

Result<std::pair<std::uint64_t, std::uint64_t>> LocalBackend::Impl::sizes_of(
    Kind k, const std::string& oid) {
  std::optional<std::pair<std::uint64_t, std::uint64_t>> out;
  Status s = store->read([&](Txn& t) -> Status {
    auto r = t.query_one(
        std::string("SELECT size, adopted_size FROM ") + table_of(k) + " WHERE id = ?", {oid});
    if (!r.ok()) return r.status();
    if (*r)
      out = std::pair{static_cast<std::uint64_t>((**r).int64(0)),
                      static_cast<std::uint64_t>((**r).int64(1))};
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!out) return Status::NotFound(std::string(kind_name(k)) + " " + oid + " not found");
  return *out;
}

Status LocalBackend::Impl::recover_adoption(const Inventory::Object& o) {
  const std::string file = path(o.kind, o.id);
  struct stat lst {};
  if (::lstat(file.c_str(), &lst) == 0 && !S_ISREG(lst.st_mode)) {
    // Not what adoption moves: it is set aside, and the adoption rolled back.
    auto where = set_aside_file(file, fs::path(file).filename().string());
    if (!where.ok()) return where.status();
    log("set aside " + *where + ", found in place of an adopted file after a restart");
  }
  if (!fs::exists(fs::symlink_status(file))) {
    // The file never moved: the candidate is where it was, untouched.
    if (Status s = remove_sidecars(o.kind, o.id); !s.ok()) return s;
    log("rolled back adopting " + o.adopted_from +
        ", which a restart interrupted; it is where it was");
    return drop_row(o.kind, o.id);
  }
  auto sizes = sizes_of(o.kind, o.id);
  if (!sizes.ok()) return sizes.status();
  Fd fd(::open(file.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) return detail::errno_status("open " + file);
  if (static_cast<std::uint64_t>(st.st_size) < sizes->first &&
      (::ftruncate(fd.get(), static_cast<off_t>(sizes->first)) != 0 || ::fsync(fd.get()) != 0))
    return detail::errno_status("resize " + file);
  log("finished adopting " + o.adopted_from + " as " + kind_name(o.kind) + " " + o.id +
      " after a restart");
  return store->transact([&](Txn& t) {
    return t
        .exec(std::string("UPDATE ") + table_of(o.kind) + " SET state = 'Available' WHERE id = ?",
              {o.id})
        .status();
  });
}

Status LocalBackend::Impl::recover_release(const Inventory::Object& o) {
  const std::string file = path(o.kind, o.id);
  if (fs::exists(file)) {
    auto sizes = sizes_of(o.kind, o.id);
    if (!sizes.ok()) return sizes.status();
    if (Status s = shrink_to_adopted(file, sizes->second); !s.ok()) return s;
    auto to = move_out(file, o.releasing_to);
    if (!to.ok()) return to.status();
    log("finished giving " + std::string(kind_name(o.kind)) + " " + o.id + " back as " + *to +
        " after a restart");
  }
  if (Status s = remove_sidecars(o.kind, o.id); !s.ok()) return s;
  return drop_row(o.kind, o.id);
}

// ---- adopting and giving back, either kind ----

// What adopting a candidate needs besides its kind: its row (recorded first, Creating, with where
// it came from), its sidecar, and the size it is extended to.
struct LocalBackend::Impl::Adoption {
  Kind kind;
  std::string id, reference;
  std::uint64_t size = 0;
  std::function<Status()> insert_row;
  ObjectMeta meta;
};

Status LocalBackend::Impl::adopt(const Adoption& a, const std::string& fingerprint) {
  const std::string from = dir + "/" + a.reference;
  const std::string to = path(a.kind, a.id);
  const Look look = look_at(from);
  if (!look.exists) return Status::InvalidArgument("ref: no candidate at " + a.reference);
  if (std::string why = unsafe_because(look); !why.empty())
    return Status::InvalidArgument("ref: " + a.reference + " is not safe to manage: " + why);
  if (!fingerprint.empty() && fingerprint != look.fingerprint)
    return Status::FailedPrecondition("ref: " + a.reference +
                                      " changed since it was listed; list it again");
  if (look.size > (std::uint64_t{1} << 50))
    return Status::InvalidArgument("ref: larger than 1 PiB");
  if (look.size > a.size)
    return Status::InvalidArgument("ref: " + a.reference + " (" + size_text(look.size) +
                                   ") is larger than its volume");
  // The row first: it claims the name and records where the file comes from.
  Status s = a.insert_row();
  if (!s.ok()) return s;
  // Before the file moves, undoing drops the row and sidecar; after, it first moves the file
  // back as it was.
  bool moved = false, extended = false;
  auto undo = [&](Status why) -> Status {
    if (extended) {
      Fd fd(::open(to.c_str(), O_RDWR | O_CLOEXEC));
      if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(look.size)) != 0 ||
          ::fsync(fd.get()) != 0)
        return why;  // the file stays adopted; the next open finishes the adoption
    }
    if (moved && (!detail::rename_noreplace(to, from).ok() ||
                  !detail::fsync_dir(fs::path(from).parent_path().string()).ok()))
      return why;
    if (remove_sidecars(a.kind, a.id).ok()) (void)drop_row(a.kind, a.id);
    return why;
  };
  if (s = write_sidecar(a.meta, true); !s.ok()) return undo(s);
  if (s = detail::rename_noreplace(from, to); !s.ok()) return undo(s);
  moved = true;
  // Still the file that was looked at, unchanged?
  if (look_at(to).fingerprint != look.fingerprint)
    return undo(Status::FailedPrecondition("ref: " + a.reference +
                                           " changed while it was being managed; list it again"));
  if (s = detail::fsync_dir(data_dir()); !s.ok()) return undo(s);
  if (s = detail::fsync_dir(fs::path(from).parent_path().string()); !s.ok()) return undo(s);
  {
    Fd fd(::open(to.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) return undo(detail::errno_status("open " + to));
    extended = a.size > look.size;
    if ((extended && ::ftruncate(fd.get(), static_cast<off_t>(a.size)) != 0) ||
        ::fchmod(fd.get(), volume_mode()) != 0 ||
        (gid() >= 0 && ::fchown(fd.get(), static_cast<uid_t>(-1), gid()) != 0) ||
        ::fsync(fd.get()) != 0)
      return undo(detail::errno_status("size " + to));
  }
  s = store->transact([&](Txn& t) {
    return t
        .exec(std::string("UPDATE ") + table_of(a.kind) + " SET state = 'Available' WHERE id = ?",
              {a.id})
        .status();
  });
  if (!s.ok()) return undo(s);
  log("adopted " + a.reference + " as " + kind_name(a.kind) + " " + a.id + " (" + a.meta.project +
      "/" + a.meta.name + ")");
  return Status::Ok();
}

Result<std::string> LocalBackend::Impl::give_back(Kind k, const std::string& oid,
                                                  const std::string& to,
                                                  const std::function<Status(Txn&)>& check) {
  auto sizes = sizes_of(k, oid);
  if (!sizes.ok()) return sizes.status();
  // Nobody may be using it. Locks held while it is shrunk and moved keep out the users that lock
  // (as QEMU does); a lock another holds refuses.
  Fd held(::open(path(k, oid).c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (held.valid()) {
    struct flock l {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    if (::fcntl(held.get(), F_OFD_SETLK, &l) != 0 || ::flock(held.get(), LOCK_EX | LOCK_NB) != 0)
      return Status::FailedPrecondition(std::string(kind_name(k)) + " " + oid +
                                        " is locked by another process; stop using it first");
  }
  const char* table = table_of(k);
  bool changed = false;
  Status s = store->transact([&](Txn& t) -> Status {
    if (Status c = check(t); !c.ok()) return c;
    auto r = t.exec(std::string("UPDATE ") + table +
                        " SET releasing_to = ? WHERE id = ? AND state = 'Available' AND "
                        "releasing_to = ''",
                    {to, oid});
    if (!r.ok()) return r.status();
    changed = *r > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!changed)
    return Status::FailedPrecondition(std::string(kind_name(k)) + " " + oid +
                                      " is being unmanaged already");
  // Back at its old size first when it can be (a restart repeats this), then out.
  const std::string file = path(k, oid);
  Status shrunk = shrink_to_adopted(file, sizes->second);
  auto where = shrunk.ok() ? move_out(file, to) : Result<std::string>(shrunk);
  if (!where.ok()) {
    // Nothing moved: it stays managed, at its size. (Had it moved, the next open would finish
    // giving it back.)
    Fd fd(::open(file.c_str(), O_RDWR | O_CLOEXEC));
    if (fd.valid() && ::ftruncate(fd.get(), static_cast<off_t>(sizes->first)) == 0 &&
        ::fsync(fd.get()) == 0)
      (void)store->transact([&](Txn& t) {
        return t.exec(std::string("UPDATE ") + table + " SET releasing_to = '' WHERE id = ?", {oid})
            .status();
      });
    return where.status();
  }
  if (s = remove_sidecars(k, oid); !s.ok()) return s;
  if (s = drop_row(k, oid); !s.ok()) return s;
  log("gave " + std::string(kind_name(k)) + " " + oid + " back as " + *where);
  return *where;
}

// ---- volumes ----

Result<std::vector<ManageableObject>> LocalBackend::list_manageable_volumes() {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  std::vector<ManageableObject> out = im.candidates(false);
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
  if (!origin_of(req.reference).empty())
    return Status::InvalidArgument(
        "ref: " + req.reference + " names a snapshot (<volume file>@<snapshot>); manage it as one");
  if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (Status s = validate_labels(req.labels, "labels"); !s.ok()) return s;
  if (!req.id.empty() && !detail::is_uuid(req.id))
    return Status::InvalidArgument("id: must be a UUID");
  const Look look = look_at(im.dir + "/" + req.reference);
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
  Status s = im.adopt({Kind::kVolume, v.id, req.reference, std::max(v.size, kGiB),
                       [&] { return im.insert_volume_row(v, false); }, im.meta_of(v, false)},
                      req.fingerprint);
  if (!s.ok()) return s;
  v.state = VolumeState::kAvailable;
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
  const std::string to = v->adopted_from.empty() ? "import/" + v->name : v->adopted_from;
  return im.give_back(Kind::kVolume, id, to, [&](Txn& t) -> Status {
    auto n = t.query_one("SELECT COUNT(*) FROM snapshots WHERE source_volume_id = ?", {id});
    if (!n.ok()) return n.status();
    if (*n && (**n).int64(0) > 0)
      return Status::FailedPrecondition("volume " + id + " has " + std::to_string((**n).int64(0)) +
                                        " snapshot(s); delete them first");
    return Status::Ok();
  });
}

// ---- snapshots ----

Result<std::vector<ManageableObject>> LocalBackend::list_manageable_snapshots() {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  std::vector<ManageableObject> out = im.candidates(true);
  Status s = im.store->read([&](Txn& t) -> Status {
    auto rows = t.query(std::string("SELECT ") + kSnapshotCols + " FROM snapshots ORDER BY seq");
    if (!rows.ok()) return rows.status();
    for (const auto& r : *rows) {
      Snapshot sn = im.snapshot_from(r);
      ManageableObject m;
      m.reference = "data/" + detail::local::data_name(Kind::kSnapshot, sn.id);
      m.size = sn.size;
      m.reason_not_safe = "already managed";
      m.managed_id = sn.id;
      m.source_reference = "data/" + detail::local::data_name(Kind::kVolume, sn.source_volume_id);
      if (!sn.adopted_from.empty())
        m.extra_info = "adopted from " + sn.adopted_from + " (" + size_text(sn.adopted_size) + ")";
      out.push_back(std::move(m));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Snapshot> LocalBackend::manage_snapshot(const ManageSnapshotRequest& req) {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  if (Status s = check_reference(req.reference); !s.ok()) return s;
  const std::string origin = origin_of(req.reference);
  if (origin.empty())
    return Status::InvalidArgument("ref: " + req.reference +
                                   " is not a snapshot candidate (<volume file>@<snapshot>)");
  if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (Status s = validate_labels(req.labels, "labels"); !s.ok()) return s;
  if (!req.id.empty() && !detail::is_uuid(req.id))
    return Status::InvalidArgument("id: must be a UUID");
  auto vol = im.volume_where("project = ? AND id = ?", {req.project_name, req.volume_id},
                             "volume " + req.volume_id);
  if (!vol.ok()) return vol.status();
  if (vol->adopted_from != origin)
    return Status::InvalidArgument("volumeId: " + req.reference + " is a snapshot of " + origin +
                                   ", which volume " + vol->id + " was not adopted from");
  if (vol->state != VolumeState::kAvailable)
    return Status::FailedPrecondition("volume " + vol->id + " is " +
                                      std::string(to_string(vol->state)));
  const Look look = look_at(im.dir + "/" + req.reference);
  Snapshot sn;
  sn.id = req.id.empty() ? im.env->new_uuid() : req.id;
  sn.project_name = req.project_name;
  sn.name = req.name;
  sn.source_volume_id = vol->id;
  sn.size = vol->size;  // as every snapshot of the volume: the volume's size, zeros past the file
  sn.state = SnapshotState::kCreating;
  sn.created_at = im.env->now();
  sn.replica_count = vol->replica_count;
  sn.sector_size = vol->sector_size;
  sn.compression = vol->compression;
  sn.cluster_id = im.id;
  sn.labels = req.labels;
  sn.adopted_from = req.reference;
  sn.adopted_size = look.size;
  Status s = im.adopt({Kind::kSnapshot, sn.id, req.reference, sn.size,
                       [&] { return im.insert_snapshot_row(sn); }, im.meta_of(sn)},
                      req.fingerprint);
  if (!s.ok()) return s;
  sn.state = SnapshotState::kAvailable;
  return sn;
}

Result<std::string> LocalBackend::unmanage_snapshot(const std::string& project,
                                                    const std::string& id) {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  auto sn = im.snapshot_where("project = ? AND id = ?", {project, id}, "snapshot " + id);
  if (!sn.ok()) return sn.status();
  if (sn->state != SnapshotState::kAvailable)
    return Status::FailedPrecondition("snapshot " + id + " is " +
                                      std::string(to_string(sn->state)) +
                                      "; only an Available snapshot can be unmanaged");
  // Where it goes: where it was adopted from when that is free, else beside its volume's file
  // (import/<volume name>@<snapshot name>).
  std::string to = sn->adopted_from;
  if (to.empty()) {
    auto vol = im.volume_where("id = ?", {sn->source_volume_id}, "volume");
    const std::string base = !vol.ok()                   ? "import/" + sn->source_volume_id
                             : vol->adopted_from.empty() ? "import/" + vol->name
                                                         : vol->adopted_from;
    to = base + "@" + sn->name;
  }
  return im.give_back(Kind::kSnapshot, id, to, [](Txn&) { return Status::Ok(); });
}

}  // namespace dmscore
