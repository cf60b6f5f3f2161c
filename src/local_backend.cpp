#include "dmscore/local_backend.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <mutex>
#include <set>

#include "dmscore/store.hpp"
#include "file_io.hpp"
#include "util.hpp"

namespace dmscore {

namespace json = boost::json;
namespace fs = std::filesystem;
using detail::Fd;

std::string_view to_string(VolumeState state) {
  switch (state) {
    case VolumeState::kCreating:
      return "Creating";
    case VolumeState::kAvailable:
      return "Available";
    case VolumeState::kUpdating:
      return "Updating";
    case VolumeState::kDeleting:
      return "Deleting";
    case VolumeState::kFailed:
      return "Failed";
  }
  return "Failed";
}

std::string_view to_string(SnapshotState state) {
  switch (state) {
    case SnapshotState::kCreating:
      return "Creating";
    case SnapshotState::kAvailable:
      return "Available";
    case SnapshotState::kDeleting:
      return "Deleting";
    case SnapshotState::kFailed:
      return "Failed";
  }
  return "Failed";
}

Status validate_object_name(const std::string& name, const std::string& field) {
  bool ok = !name.empty() && name.size() <= 256;
  for (char c : name) {
    if (!ok) break;
    ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
  }
  if (!ok) return Status::InvalidArgument(field + ": must be 1-256 characters of [A-Za-z0-9._-]");
  return Status::Ok();
}

namespace {

constexpr const char* kFormat = "dmscore-local-1";

const std::vector<Migration>& local_migrations() {
  static const std::vector<Migration> kMigrations = {{1, R"sql(
CREATE TABLE volumes (
  seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
  id                  TEXT NOT NULL UNIQUE,
  project             TEXT NOT NULL,
  name                TEXT NOT NULL,
  size                INTEGER NOT NULL,
  replica_count       INTEGER NOT NULL,
  sector_size         INTEGER NOT NULL,
  compression         INTEGER NOT NULL,
  state               TEXT NOT NULL,
  held                INTEGER NOT NULL DEFAULT 0,
  source_snapshot_id  TEXT NOT NULL DEFAULT '',
  created_at          INTEGER NOT NULL,
  UNIQUE (project, name)
);
CREATE TABLE snapshots (
  seq               INTEGER PRIMARY KEY AUTOINCREMENT,
  id                TEXT NOT NULL UNIQUE,
  project           TEXT NOT NULL,
  name              TEXT NOT NULL,
  source_volume_id  TEXT NOT NULL,
  size              INTEGER NOT NULL,
  state             TEXT NOT NULL,
  description       TEXT NOT NULL DEFAULT '',
  created_at        INTEGER NOT NULL,
  replica_count     INTEGER NOT NULL,
  sector_size       INTEGER NOT NULL,
  compression       INTEGER NOT NULL,
  UNIQUE (project, name)
);
)sql"}};
  return kMigrations;
}

constexpr const char* kVolumeCols =
    "id, project, name, size, replica_count, sector_size, compression, state, source_snapshot_id, "
    "created_at, seq";
constexpr const char* kSnapshotCols =
    "id, project, name, source_volume_id, size, state, description, created_at, replica_count, "
    "sector_size, compression, seq";

VolumeState volume_state(const std::string& s) {
  for (auto v : {VolumeState::kCreating, VolumeState::kAvailable, VolumeState::kUpdating,
                 VolumeState::kDeleting, VolumeState::kFailed})
    if (to_string(v) == s) return v;
  return VolumeState::kFailed;
}

SnapshotState snapshot_state(const std::string& s) {
  for (auto v : {SnapshotState::kCreating, SnapshotState::kAvailable, SnapshotState::kDeleting,
                 SnapshotState::kFailed})
    if (to_string(v) == s) return v;
  return SnapshotState::kFailed;
}

Status check_page(const PageRequest& p) {
  if (p.page_size < 0 || p.page_size > 1000)
    return Status::InvalidArgument("pageSize: must be 0..1000");
  return Status::Ok();
}

// True when `dir` holds nothing, or only what an interrupted initialisation leaves behind
// (cluster.json is written last, so without it nothing else there can hold user data).
bool dir_is_initialisable(const std::string& dir) {
  static const std::set<std::string> kOurs = {
      ".lock", "data", "cluster.db", "cluster.db-wal", "cluster.db-shm", "cluster.json.tmp"};
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (!kOurs.count(name)) return false;
    if (name == "data" && !fs::is_empty(e.path(), ec)) return false;
  }
  return !ec;
}

}  // namespace

struct LocalBackend::Impl {
  std::string dir;
  std::string id;
  std::string name;
  std::shared_ptr<Env> env;
  CopyEngine copy;
  std::unique_ptr<Store> store;
  Fd lock;

  Impl(LocalBackendOptions& o) : copy(o.copy) {}

  std::string data_dir() const { return dir + "/data"; }
  std::string volume_path(const std::string& vid) const { return data_dir() + "/" + vid + ".vol"; }
  std::string snapshot_path(const std::string& sid) const {
    return data_dir() + "/" + sid + ".snap";
  }

  Volume volume_from(const Row& r) const {
    Volume v;
    v.id = r.text(0);
    v.project_name = r.text(1);
    v.name = r.text(2);
    v.size = static_cast<std::uint64_t>(r.int64(3));
    v.replica_count = static_cast<int>(r.int64(4));
    v.sector_size = static_cast<int>(r.int64(5));
    v.compression = r.int64(6) != 0;
    v.state = volume_state(r.text(7));
    v.source_snapshot_id = r.text(8);
    v.created_at = detail::from_millis(r.int64(9));
    v.cluster_id = id;
    v.device_path = volume_path(v.id);
    return v;
  }

  Snapshot snapshot_from(const Row& r) const {
    Snapshot s;
    s.id = r.text(0);
    s.project_name = r.text(1);
    s.name = r.text(2);
    s.source_volume_id = r.text(3);
    s.size = static_cast<std::uint64_t>(r.int64(4));
    s.state = snapshot_state(r.text(5));
    s.description = r.text(6);
    s.created_at = detail::from_millis(r.int64(7));
    s.replica_count = static_cast<int>(r.int64(8));
    s.sector_size = static_cast<int>(r.int64(9));
    s.compression = r.int64(10) != 0;
    s.cluster_id = id;
    return s;
  }

  Result<Volume> volume_where(const std::string& where, std::vector<SqlValue> params,
                              const std::string& what) {
    std::optional<Volume> out;
    Status s = store->read([&](Txn& t) -> Status {
      auto row = t.query_one(std::string("SELECT ") + kVolumeCols + " FROM volumes WHERE " + where,
                             params);
      if (!row.ok()) return row.status();
      if (*row) out = volume_from(**row);
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (!out) return Status::NotFound(what + " not found");
    return *out;
  }

  Result<Snapshot> snapshot_where(const std::string& where, std::vector<SqlValue> params,
                                  const std::string& what) {
    std::optional<Snapshot> out;
    Status s = store->read([&](Txn& t) -> Status {
      auto row = t.query_one(
          std::string("SELECT ") + kSnapshotCols + " FROM snapshots WHERE " + where, params);
      if (!row.ok()) return row.status();
      if (*row) out = snapshot_from(**row);
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (!out) return Status::NotFound(what + " not found");
    return *out;
  }

  // Finishes or rolls back what a crash interrupted, then removes data files nothing names.
  Status recover() {
    std::vector<std::pair<std::string, std::string>> drop_volumes, drop_snapshots;
    Status s = store->read([&](Txn& t) -> Status {
      auto v = t.query(
          "SELECT id, state FROM volumes WHERE state = 'Deleting' OR (state = 'Creating' AND "
          "held = 0)");
      if (!v.ok()) return v.status();
      for (auto& r : *v) drop_volumes.emplace_back(r.text(0), r.text(1));
      auto sn = t.query("SELECT id, state FROM snapshots WHERE state IN ('Deleting', 'Creating')");
      if (!sn.ok()) return sn.status();
      for (auto& r : *sn) drop_snapshots.emplace_back(r.text(0), r.text(1));
      return Status::Ok();
    });
    if (!s.ok()) return s;
    for (auto& entry : drop_volumes) {
      const std::string& vid = entry.first;
      ::unlink(volume_path(vid).c_str());
      s = store->transact(
          [&](Txn& t) { return t.exec("DELETE FROM volumes WHERE id = ?", {vid}).status(); });
      if (!s.ok()) return s;
    }
    for (auto& entry : drop_snapshots) {
      const std::string& sid = entry.first;
      ::unlink(snapshot_path(sid).c_str());
      s = store->transact(
          [&](Txn& t) { return t.exec("DELETE FROM snapshots WHERE id = ?", {sid}).status(); });
      if (!s.ok()) return s;
    }
    // A held volume belongs to a workflow that will fill it; if the crash came between its row
    // and its file being sized (the file missing, or created but not yet extended), give it
    // back its empty file of the full size so the workflow can go on. Nothing was written into
    // it yet: the workflow writes only after create_volume returned, the size fsynced.
    std::vector<std::pair<std::string, std::int64_t>> held;
    s = store->read([&](Txn& t) -> Status {
      auto v = t.query(
          "SELECT id, size FROM volumes WHERE state = 'Creating' AND held = 1 AND "
          "source_snapshot_id = ''");
      if (!v.ok()) return v.status();
      for (auto& r : *v) held.emplace_back(r.text(0), r.int64(1));
      return Status::Ok();
    });
    if (!s.ok()) return s;
    for (auto& [vid, size] : held) {
      struct stat st {};
      if (::stat(volume_path(vid).c_str(), &st) == 0 && st.st_size >= size) continue;
      Fd fd(::open(volume_path(vid).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
      if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0 ||
          ::fsync(fd.get()) != 0)
        return detail::errno_status("recreate " + volume_path(vid));
      if (s = detail::fsync_dir(data_dir()); !s.ok()) return s;
    }
    std::set<std::string> known;
    s = store->read([&](Txn& t) -> Status {
      auto v = t.query("SELECT id FROM volumes");
      if (!v.ok()) return v.status();
      for (auto& r : *v) known.insert(r.text(0) + ".vol");
      auto sn = t.query("SELECT id FROM snapshots");
      if (!sn.ok()) return sn.status();
      for (auto& r : *sn) known.insert(r.text(0) + ".snap");
      return Status::Ok();
    });
    if (!s.ok()) return s;
    std::error_code ec;
    bool removed = false;
    for (auto& e : fs::directory_iterator(data_dir(), ec)) {
      std::string file = e.path().filename().string();
      if (!known.count(file)) {
        fs::remove(e.path(), ec);
        removed = true;
      }
    }
    if (removed) return detail::fsync_dir(data_dir());
    return Status::Ok();
  }

  Status unlink_durably(const std::string& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return detail::errno_status("unlink " + path);
    return detail::fsync_dir(data_dir());
  }
};

LocalBackend::LocalBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LocalBackend::~LocalBackend() = default;

bool LocalBackend::is_cluster_dir(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir + "/cluster.json", ec);
}

Result<std::unique_ptr<LocalBackend>> LocalBackend::open(const std::string& dir,
                                                         const std::string& name,
                                                         LocalBackendOptions options) {
  if (dir.empty() || dir[0] != '/')
    return Status::InvalidArgument("apiEndpoint: a local cluster directory must be absolute");
  if (!name.empty()) {
    if (Status s = validate_object_name(name, "name"); !s.ok()) return s;
  }
  if (Status s = validate(options.copy); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(options);
  impl->dir = fs::path(dir).lexically_normal().string();
  if (impl->dir.size() > 1 && impl->dir.back() == '/') impl->dir.pop_back();
  impl->env = options.env ? options.env : Env::Default();

  std::error_code ec;
  const bool exists = fs::exists(impl->dir, ec);
  if (exists && !fs::is_directory(impl->dir, ec))
    return Status::FailedPrecondition(impl->dir + " is not a directory");
  const bool initialised = is_cluster_dir(impl->dir);
  if (exists && !initialised && !dir_is_initialisable(impl->dir))
    return Status::FailedPrecondition(impl->dir +
                                      " is not empty and holds no local cluster; use an empty "
                                      "or new directory");
  if (!exists) {
    fs::create_directories(impl->dir, ec);
    if (ec) return Status::Unavailable("cannot create " + impl->dir + ": " + ec.message());
  }

  impl->lock = Fd(::open((impl->dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!impl->lock.valid()) return detail::errno_status("open " + impl->dir + "/.lock");
  if (::flock(impl->lock.get(), LOCK_EX | LOCK_NB) != 0)
    return Status::Unavailable("local cluster " + impl->dir +
                               " is open in another process; stop it first");

  if (!initialised) {
    fs::create_directories(impl->data_dir(), ec);
    if (ec) return Status::Unavailable("cannot create " + impl->data_dir() + ": " + ec.message());
    impl->id = impl->env->new_uuid();
    impl->name = name.empty() ? fs::path(impl->dir).filename().string() : name;
    if (validate_object_name(impl->name, "name").ok() == false) impl->name = "local";
    json::object o{{"id", impl->id},
                   {"name", impl->name},
                   {"format", kFormat},
                   {"createdAt", detail::to_millis(impl->env->now())}};
    // Written last: its presence is what makes the directory a cluster.
    auto store = Store::open(impl->dir + "/cluster.db", StoreOptions{5000, 2, local_migrations()});
    if (!store.ok()) return store.status();
    impl->store = std::move(store).value();
    if (Status s = detail::write_file_atomic(impl->dir + "/cluster.json", json::serialize(o));
        !s.ok())
      return s;
  } else {
    auto text = detail::read_small_file(impl->dir + "/cluster.json");
    if (!text.ok()) return text.status();
    boost::system::error_code jec;
    auto v = json::parse(*text, jec);
    if (jec || !v.is_object() || !v.as_object().contains("id") ||
        !v.as_object().at("id").is_string() || !v.as_object().contains("format") ||
        v.as_object().at("format") != kFormat)
      return Status::FailedPrecondition(impl->dir +
                                        "/cluster.json is not a local cluster "
                                        "description this release understands");
    impl->id = std::string(v.as_object().at("id").as_string());
    if (auto* n = v.as_object().if_contains("name"); n && n->is_string())
      impl->name = std::string(n->as_string());
    fs::create_directories(impl->data_dir(), ec);
    auto store = Store::open(impl->dir + "/cluster.db", StoreOptions{5000, 2, local_migrations()});
    if (!store.ok()) return store.status();
    impl->store = std::move(store).value();
  }
  if (Status s = impl->recover(); !s.ok()) return s;
  return std::unique_ptr<LocalBackend>(new LocalBackend(std::move(impl)));
}

const std::string& LocalBackend::dir() const { return impl_->dir; }
const std::string& LocalBackend::cluster_id() const { return impl_->id; }

Result<ClusterInfo> LocalBackend::info() {
  if (!is_cluster_dir(impl_->dir))
    return Status::Unavailable("local cluster " + impl_->dir + " is gone (no cluster.json)");
  ClusterInfo c;
  c.id = impl_->id;
  c.name = impl_->name;
  c.version = std::string("libdmscore-local/") + kFormat;
  c.subsystem_nqn = "nqn.2024-01.io.dmscore:local:" + impl_->id;
  c.api_endpoints = {"file://" + impl_->dir};
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  c.servers = {{host, "file://" + impl_->dir, "Active"}};
  return c;
}

Result<VolumePage> LocalBackend::list_volumes(const std::string& project, const PageRequest& page) {
  if (Status s = validate_object_name(project, "projectName"); !s.ok()) return s;
  if (Status s = check_page(page); !s.ok()) return s;
  auto after = detail::parse_page_token(page.page_token, "v1.");
  if (!after.ok()) return after.status();
  const int n = page.page_size == 0 ? 100 : page.page_size;
  VolumePage out;
  Status s = impl_->store->read([&](Txn& t) -> Status {
    auto rows = t.query(std::string("SELECT ") + kVolumeCols +
                            " FROM volumes WHERE project = ? AND seq > ? ORDER BY seq LIMIT ?",
                        {project, *after, std::int64_t{n + 1}});
    if (!rows.ok()) return rows.status();
    for (auto& r : *rows) {
      if (static_cast<int>(out.volumes.size()) == n) {
        out.next_page_token =
            detail::make_page_token("v1.", rows->at(static_cast<std::size_t>(n - 1)).int64(10));
        break;
      }
      out.volumes.push_back(impl_->volume_from(r));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Volume> LocalBackend::get_volume(const std::string& project, const std::string& id) {
  return impl_->volume_where("project = ? AND id = ?", {project, id}, "volume " + id);
}

Result<Volume> LocalBackend::find_volume(const std::string& project, const std::string& name) {
  return impl_->volume_where("project = ? AND name = ?", {project, name}, "volume named " + name);
}

Result<Volume> LocalBackend::create_volume(const CreateVolumeRequest& req) {
  if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.replica_count < 1 || req.replica_count > 3)
    return Status::InvalidArgument("replicaCount: must be 1..3");
  if (req.sector_size != 512 && req.sector_size != 4096)
    return Status::InvalidArgument("sectorSize: must be 512 or 4096");
  std::uint64_t size = req.size;
  std::optional<Snapshot> source;
  if (!req.source_snapshot_id.empty()) {
    auto snap = get_snapshot(req.project_name, req.source_snapshot_id);
    if (!snap.ok()) return snap.status();
    if (snap->state != SnapshotState::kAvailable)
      return Status::FailedPrecondition("snapshot " + snap->id + " is " +
                                        std::string(to_string(snap->state)));
    if (size == 0) size = snap->size;
    if (size < snap->size)
      return Status::InvalidArgument("size: must be at least the source snapshot's size (" +
                                     std::to_string(snap->size) + ")");
    source = *snap;
  }
  if (size == 0 || size % 4096 != 0)
    return Status::InvalidArgument("size: must be a positive multiple of 4096 bytes");
  if (size > (std::uint64_t{1} << 50)) return Status::InvalidArgument("size: larger than 1 PiB");

  Volume v;
  v.id = impl_->env->new_uuid();
  v.project_name = req.project_name;
  v.name = req.name;
  v.size = size;
  v.replica_count = req.replica_count;
  v.sector_size = req.sector_size;
  v.compression = req.compression;
  v.state = VolumeState::kCreating;
  v.source_snapshot_id = req.source_snapshot_id;
  v.created_at = impl_->env->now();
  v.cluster_id = impl_->id;
  v.device_path = impl_->volume_path(v.id);
  // The row first (it claims the name); the file second; Available last. A crash in between
  // leaves a Creating row that recover() rolls back (unless held by a workflow).
  Status s = impl_->store->transact([&](Txn& t) -> Status {
    return t
        .exec(
            "INSERT INTO volumes (id, project, name, size, replica_count, sector_size, "
            "compression, state, held, source_snapshot_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'Creating', ?, ?, ?)",
            {v.id, v.project_name, v.name, static_cast<std::int64_t>(v.size),
             std::int64_t{v.replica_count}, std::int64_t{v.sector_size},
             std::int64_t{v.compression}, std::int64_t{req.hold_in_creating}, v.source_snapshot_id,
             detail::to_millis(v.created_at)})
        .status();
  });
  if (s.code() == Code::kAlreadyExists)
    return Status::AlreadyExists("name: a volume named " + req.name +
                                 " already exists in project " + req.project_name);
  if (!s.ok()) return s;

  auto undo = [&](Status why) -> Status {
    ::unlink(v.device_path.c_str());
    (void)impl_->store->transact(
        [&](Txn& t) { return t.exec("DELETE FROM volumes WHERE id = ?", {v.id}).status(); });
    return why;
  };
  if (source) {
    auto r = detail::clone_file(impl_->snapshot_path(source->id), v.device_path, size, impl_->copy,
                                0644);
    if (!r.ok()) return undo(r.status());
  } else {
    Fd fd(::open(v.device_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid()) return undo(detail::errno_status("create " + v.device_path));
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0 || ::fsync(fd.get()) != 0)
      return undo(detail::errno_status("size " + v.device_path));
    if (Status ds = detail::fsync_dir(impl_->data_dir()); !ds.ok()) return undo(ds);
  }
  if (!req.hold_in_creating) {
    s = mark_volume_available(v.project_name, v.id);
    if (!s.ok()) return undo(s);
    v.state = VolumeState::kAvailable;
  }
  return v;
}

Status LocalBackend::mark_volume_available(const std::string& project, const std::string& id) {
  bool found = false;
  Status s = impl_->store->transact([&](Txn& t) -> Status {
    auto r = t.exec(
        "UPDATE volumes SET state = 'Available', held = 0 WHERE project = ? AND id = ? AND state "
        "IN ('Creating', 'Available')",
        {project, id});
    if (!r.ok()) return r.status();
    found = *r > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!found) return Status::NotFound("volume " + id + " not found");
  return Status::Ok();
}

Status LocalBackend::delete_volume(const std::string& project, const std::string& id) {
  bool found = false;
  Status s = impl_->store->transact([&](Txn& t) -> Status {
    auto r =
        t.exec("UPDATE volumes SET state = 'Deleting' WHERE project = ? AND id = ?", {project, id});
    if (!r.ok()) return r.status();
    found = *r > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!found) return Status::NotFound("volume " + id + " not found");
  if (s = impl_->unlink_durably(impl_->volume_path(id)); !s.ok()) return s;
  return impl_->store->transact(
      [&](Txn& t) { return t.exec("DELETE FROM volumes WHERE id = ?", {id}).status(); });
}

Result<SnapshotPage> LocalBackend::list_snapshots(const std::string& project,
                                                  const PageRequest& page) {
  if (Status s = validate_object_name(project, "projectName"); !s.ok()) return s;
  if (Status s = check_page(page); !s.ok()) return s;
  auto after = detail::parse_page_token(page.page_token, "s1.");
  if (!after.ok()) return after.status();
  const int n = page.page_size == 0 ? 100 : page.page_size;
  SnapshotPage out;
  Status s = impl_->store->read([&](Txn& t) -> Status {
    auto rows = t.query(std::string("SELECT ") + kSnapshotCols +
                            " FROM snapshots WHERE project = ? AND seq > ? ORDER BY seq LIMIT ?",
                        {project, *after, std::int64_t{n + 1}});
    if (!rows.ok()) return rows.status();
    for (auto& r : *rows) {
      if (static_cast<int>(out.snapshots.size()) == n) {
        out.next_page_token =
            detail::make_page_token("s1.", rows->at(static_cast<std::size_t>(n - 1)).int64(11));
        break;
      }
      out.snapshots.push_back(impl_->snapshot_from(r));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Snapshot> LocalBackend::get_snapshot(const std::string& project, const std::string& id) {
  return impl_->snapshot_where("project = ? AND id = ?", {project, id}, "snapshot " + id);
}

Result<Snapshot> LocalBackend::find_snapshot(const std::string& project, const std::string& name) {
  return impl_->snapshot_where("project = ? AND name = ?", {project, name},
                               "snapshot named " + name);
}

Result<Snapshot> LocalBackend::create_snapshot(const CreateSnapshotRequest& req) {
  if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.description.size() > 256)
    return Status::InvalidArgument("description: must be at most 256 bytes");
  if (req.source_volume_id.empty())
    return Status::InvalidArgument("sourceVolumeId: must not be empty");
  auto vol = get_volume(req.project_name, req.source_volume_id);
  if (!vol.ok()) return vol.status();
  if (vol->state != VolumeState::kAvailable)
    return Status::FailedPrecondition("volume " + vol->id + " is " +
                                      std::string(to_string(vol->state)));
  Snapshot sn;
  sn.id = impl_->env->new_uuid();
  sn.project_name = req.project_name;
  sn.name = req.name;
  sn.source_volume_id = vol->id;
  sn.size = vol->size;
  sn.state = SnapshotState::kCreating;
  sn.description = req.description;
  sn.created_at = impl_->env->now();
  sn.replica_count = vol->replica_count;
  sn.sector_size = vol->sector_size;
  sn.compression = vol->compression;
  sn.cluster_id = impl_->id;
  Status s = impl_->store->transact([&](Txn& t) -> Status {
    return t
        .exec(
            "INSERT INTO snapshots (id, project, name, source_volume_id, size, state, "
            "description, created_at, replica_count, sector_size, compression) "
            "VALUES (?, ?, ?, ?, ?, 'Creating', ?, ?, ?, ?, ?)",
            {sn.id, sn.project_name, sn.name, sn.source_volume_id,
             static_cast<std::int64_t>(sn.size), sn.description, detail::to_millis(sn.created_at),
             std::int64_t{sn.replica_count}, std::int64_t{sn.sector_size},
             std::int64_t{sn.compression}})
        .status();
  });
  if (s.code() == Code::kAlreadyExists)
    return Status::AlreadyExists("name: a snapshot named " + req.name +
                                 " already exists in project " + req.project_name);
  if (!s.ok()) return s;
  auto undo = [&](Status why) -> Status {
    ::unlink(impl_->snapshot_path(sn.id).c_str());
    (void)impl_->store->transact(
        [&](Txn& t) { return t.exec("DELETE FROM snapshots WHERE id = ?", {sn.id}).status(); });
    return why;
  };
  auto r =
      detail::clone_file(vol->device_path, impl_->snapshot_path(sn.id), sn.size, impl_->copy, 0444);
  if (!r.ok()) return undo(r.status());
  s = impl_->store->transact([&](Txn& t) {
    return t.exec("UPDATE snapshots SET state = 'Available' WHERE id = ?", {sn.id}).status();
  });
  if (!s.ok()) return undo(s);
  sn.state = SnapshotState::kAvailable;
  return sn;
}

Status LocalBackend::delete_snapshot(const std::string& project, const std::string& id) {
  bool found = false;
  Status s = impl_->store->transact([&](Txn& t) -> Status {
    auto r = t.exec("UPDATE snapshots SET state = 'Deleting' WHERE project = ? AND id = ?",
                    {project, id});
    if (!r.ok()) return r.status();
    found = *r > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!found) return Status::NotFound("snapshot " + id + " not found");
  if (s = impl_->unlink_durably(impl_->snapshot_path(id)); !s.ok()) return s;
  return impl_->store->transact(
      [&](Txn& t) { return t.exec("DELETE FROM snapshots WHERE id = ?", {id}).status(); });
}

Result<std::unique_ptr<BlockSource>> LocalBackend::open_snapshot_data(const std::string& project,
                                                                      const std::string& id) {
  auto sn = get_snapshot(project, id);
  if (!sn.ok()) return sn.status();
  if (sn->state != SnapshotState::kAvailable)
    return Status::FailedPrecondition("snapshot " + id + " is " +
                                      std::string(to_string(sn->state)));
  auto src = detail::FileSource::open(impl_->snapshot_path(id));
  if (!src.ok()) return src.status();
  return std::unique_ptr<BlockSource>(std::move(src).value());
}

Result<std::unique_ptr<BlockSource>> LocalBackend::open_volume_data(const std::string& project,
                                                                    const std::string& id) {
  auto v = get_volume(project, id);
  if (!v.ok()) return v.status();
  if (v->state != VolumeState::kAvailable && v->state != VolumeState::kCreating)
    return Status::FailedPrecondition("volume " + id + " is " + std::string(to_string(v->state)));
  auto src = detail::FileSource::open(v->device_path);
  if (!src.ok()) return src.status();
  return std::unique_ptr<BlockSource>(std::move(src).value());
}

Result<std::unique_ptr<BlockSink>> LocalBackend::open_volume_sink(const std::string& project,
                                                                  const std::string& id,
                                                                  bool fresh) {
  auto v = get_volume(project, id);
  if (!v.ok()) return v.status();
  if (v->state != VolumeState::kAvailable && v->state != VolumeState::kCreating)
    return Status::FailedPrecondition("volume " + id + " is " + std::string(to_string(v->state)));
  auto sink = detail::FileSink::open(v->device_path, fresh);
  if (!sink.ok()) return sink.status();
  return std::unique_ptr<BlockSink>(std::move(sink).value());
}

}  // namespace dmscore
