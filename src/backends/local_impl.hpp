#pragma once
// The state LocalBackend's sources share: its Impl and the helpers over its metadata rows.
// Internal to local_backend.cpp (objects) and local_open.cpp (open, recovery, repair).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>

#include "backends/local_layout.hpp"
#include "base/util.hpp"
#include "copy/file_io.hpp"
#include "dmscore/local_backend.hpp"
#include "dmscore/store.hpp"

namespace dmscore {

namespace detail::local {

namespace json = boost::json;
namespace fs = std::filesystem;

inline constexpr const char* kVolumeCols =
    "id, project, name, size, replica_count, sector_size, compression, state, source_snapshot_id, "
    "created_at, seq, labels, held, adopted_from, adopted_size";
inline constexpr const char* kSnapshotCols =
    "id, project, name, source_volume_id, size, state, description, created_at, replica_count, "
    "sector_size, compression, seq, labels, adopted_from, adopted_size";

inline VolumeState volume_state(const std::string& s) {
  for (auto v : {VolumeState::kCreating, VolumeState::kAvailable, VolumeState::kUpdating,
                 VolumeState::kDeleting, VolumeState::kFailed})
    if (to_string(v) == s) return v;
  return VolumeState::kFailed;
}

inline SnapshotState snapshot_state(const std::string& s) {
  for (auto v : {SnapshotState::kCreating, SnapshotState::kAvailable, SnapshotState::kDeleting,
                 SnapshotState::kFailed})
    if (to_string(v) == s) return v;
  return SnapshotState::kFailed;
}

inline std::string labels_json(const std::map<std::string, std::string>& labels) {
  json::object o;
  for (const auto& [k, v] : labels) o[k] = v;
  return json::serialize(o);
}

inline std::map<std::string, std::string> labels_from(const std::string& text) {
  std::map<std::string, std::string> out;
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return out;
  for (const auto& [k, val] : v.as_object())
    if (val.is_string()) out.emplace(std::string(k), std::string(val.as_string()));
  return out;
}

inline Status check_page(const PageRequest& p) {
  if (p.page_size < 0 || p.page_size > 1000)
    return Status::InvalidArgument("pageSize: must be 0..1000");
  return Status::Ok();
}

// True when `dir` holds nothing, or only what an interrupted initialisation leaves behind
// (cluster.json is written last, so without it nothing else there can hold user data).
inline bool dir_is_initialisable(const std::string& dir) {
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

// The nearest directory above `dir` that is a local cluster, if any.
inline std::optional<std::string> enclosing_cluster(const std::string& dir) {
  fs::path p = fs::path(dir).parent_path();
  for (;;) {
    if (LocalBackend::is_cluster_dir(p.string())) return p.string();
    if (p == p.root_path() || p.empty()) return std::nullopt;
    p = p.parent_path();
  }
}

}  // namespace detail::local

using detail::Fd;
using namespace detail::local;
using detail::local::DataEntry;
using detail::local::Kind;
using detail::local::ObjectMeta;

struct LocalBackend::Impl {
  using Row = dmscore::Row;
  std::string dir;
  std::string id;
  std::string name;
  std::shared_ptr<Env> env;
  LocalBackendOptions options;
  CopyEngine copy;
  std::unique_ptr<Store> store;
  Fd lock;
  // Set when the cluster needs repair; guarded by repair_mu.
  mutable std::mutex repair_mu;
  Status repair_reason;
  std::atomic<std::uint64_t> set_aside{0};

  explicit Impl(LocalBackendOptions& o) : options(o), copy(o.copy) {}

  std::string data_dir() const { return dir + "/data"; }
  std::string lost_dir() const { return dir + "/lost+found"; }
  std::string path(Kind k, const std::string& oid) const {
    return data_dir() + "/" + detail::local::data_name(k, oid);
  }
  std::string sidecar(Kind k, const std::string& oid) const {
    return data_dir() + "/" + detail::local::sidecar_name(k, oid);
  }
  std::string temp(Kind k, const std::string& oid) const {
    return data_dir() + "/" + detail::local::temp_name(k, oid);
  }
  std::string volume_path(const std::string& vid) const { return path(Kind::kVolume, vid); }
  std::string snapshot_path(const std::string& sid) const { return path(Kind::kSnapshot, sid); }

  int gid() const { return options.file_group; }
  unsigned volume_mode() const { return gid() >= 0 ? 0640 : 0600; }
  unsigned snapshot_mode() const { return gid() >= 0 ? 0440 : 0400; }
  unsigned file_mode(Kind k) const { return k == Kind::kVolume ? volume_mode() : snapshot_mode(); }
  unsigned dir_mode() const { return gid() >= 0 ? 0750 : 0700; }

  void log(const std::string& line) const {
    if (options.log) options.log("local cluster " + dir + ": " + line);
  }

  Status usable() const {
    std::lock_guard lock(repair_mu);
    if (repair_reason.ok()) return Status::Ok();
    return Status::FailedPrecondition("local cluster " + id +
                                      " needs repair: " + repair_reason.message() +
                                      "; run: dmsctl repair cluster " + id);
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
    v.labels = labels_from(r.text(11));
    v.adopted_from = r.text(13);
    v.adopted_size = static_cast<std::uint64_t>(r.int64(14));
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
    s.labels = labels_from(r.text(12));
    s.adopted_from = r.text(13);
    s.adopted_size = static_cast<std::uint64_t>(r.int64(14));
    s.cluster_id = id;
    return s;
  }

  // What a sidecar says of a volume or snapshot (both carry these fields).
  template <typename Object>
  ObjectMeta common_meta(Kind kind, const Object& o) const {
    ObjectMeta m;
    m.kind = kind;
    m.cluster_id = id;
    m.id = o.id;
    m.project = o.project_name;
    m.name = o.name;
    m.size = o.size;
    m.replica_count = o.replica_count;
    m.sector_size = o.sector_size;
    m.compression = o.compression;
    m.created_ms = detail::to_millis(o.created_at);
    m.labels = o.labels;
    return m;
  }

  ObjectMeta meta_of(const Volume& v, bool held) const {
    ObjectMeta m = common_meta(Kind::kVolume, v);
    m.source_id = v.source_snapshot_id;
    m.held = held;
    return m;
  }

  ObjectMeta meta_of(const Snapshot& s) const {
    ObjectMeta m = common_meta(Kind::kSnapshot, s);
    m.source_id = s.source_volume_id;
    m.description = s.description;
    return m;
  }

  // Writes an object's sidecar; the caller fsyncs the directory (sync_dir) when it needs the
  // rename durable before going on.
  Status write_sidecar(const ObjectMeta& m, bool sync_dir) const {
    return detail::write_file_atomic(sidecar(m.kind, m.id), detail::local::sidecar_json(m),
                                     gid() >= 0 ? 0640 : 0600, env.get(), sync_dir, gid());
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

  // Records volume `v` as Creating: the intent that explains the files that follow it.
  // ALREADY_EXISTS naming `name` when the project has a volume of that name.
  Status insert_volume_row(const Volume& v, bool held) {
    Status s = store->transact([&](Txn& t) -> Status {
      return t
          .exec(
              "INSERT INTO volumes (id, project, name, size, replica_count, sector_size, "
              "compression, state, held, source_snapshot_id, created_at, labels, adopted_from, "
              "adopted_size) VALUES (?, ?, ?, ?, ?, ?, ?, 'Creating', ?, ?, ?, ?, ?, ?)",
              {v.id, v.project_name, v.name, static_cast<std::int64_t>(v.size),
               std::int64_t{v.replica_count}, std::int64_t{v.sector_size},
               std::int64_t{v.compression}, std::int64_t{held}, v.source_snapshot_id,
               detail::to_millis(v.created_at), labels_json(v.labels), v.adopted_from,
               static_cast<std::int64_t>(v.adopted_size)})
          .status();
    });
    if (s.code() == Code::kAlreadyExists)
      return Status::AlreadyExists("name: a volume named " + v.name +
                                   " already exists in project " + v.project_name);
    return s;
  }

  // Records snapshot `sn` as Creating. ALREADY_EXISTS naming `name` for a taken name.
  Status insert_snapshot_row(const Snapshot& sn) {
    Status s = store->transact([&](Txn& t) -> Status {
      return t
          .exec(
              "INSERT INTO snapshots (id, project, name, source_volume_id, size, state, "
              "description, created_at, replica_count, sector_size, compression, labels, "
              "adopted_from, adopted_size) "
              "VALUES (?, ?, ?, ?, ?, 'Creating', ?, ?, ?, ?, ?, ?, ?, ?)",
              {sn.id, sn.project_name, sn.name, sn.source_volume_id,
               static_cast<std::int64_t>(sn.size), sn.description, detail::to_millis(sn.created_at),
               std::int64_t{sn.replica_count}, std::int64_t{sn.sector_size},
               std::int64_t{sn.compression}, labels_json(sn.labels), sn.adopted_from,
               static_cast<std::int64_t>(sn.adopted_size)})
          .status();
    });
    if (s.code() == Code::kAlreadyExists)
      return Status::AlreadyExists("name: a snapshot named " + sn.name +
                                   " already exists in project " + sn.project_name);
    return s;
  }

  static const char* table_of(Kind k) { return k == Kind::kVolume ? "volumes" : "snapshots"; }

  // Removes a recorded object's files: its data and the temporary of its data, then its
  // sidecars (remove_sidecars), then fsyncs data/.
  Status remove_files(Kind k, const std::string& oid) {
    for (const std::string& p : {path(k, oid), temp(k, oid)}) {
      if (::unlink(p.c_str()) != 0 && errno != ENOENT) return detail::errno_status("unlink " + p);
    }
    return remove_sidecars(k, oid);
  }

  // Removes the sidecar of recorded object `oid` and the temporary of one being written, each
  // only when its content says it is that object's sidecar in this cluster. Anything else found
  // under those names is not the service's to remove: it is moved to lost+found/, logged and
  // counted. Then fsyncs data/.
  Status remove_sidecars(Kind k, const std::string& oid) {
    for (const std::string& p : {sidecar(k, oid), sidecar(k, oid) + ".tmp"}) {
      auto text = detail::read_small_file(p, 64 << 10);
      if (text.status().code() == Code::kNotFound) continue;
      auto meta =
          text.ok() ? detail::local::parse_sidecar(*text) : Result<ObjectMeta>(text.status());
      if (meta.ok() && meta->kind == k && meta->id == oid && meta->cluster_id == id) {
        if (::unlink(p.c_str()) != 0 && errno != ENOENT) return detail::errno_status("unlink " + p);
        continue;
      }
      const std::string name = fs::path(p).filename().string();
      auto where = set_aside_file(p, name);
      if (!where.ok()) return where.status();
      log("moved data/" + name + ", which is not the sidecar of " + kind_name(k) + " " + oid +
          ", to " + *where);
    }
    return detail::fsync_dir(data_dir());
  }

  // Moves data/<file> to lost+found/ under a name nothing there has. Answers where it went,
  // relative to the cluster directory.
  Result<std::string> set_aside_file(const std::string& from, const std::string& file) {
    std::error_code ec;
    fs::create_directories(lost_dir(), ec);
    if (ec) return Status::Unavailable("cannot create " + lost_dir() + ": " + ec.message());
    ::chmod(lost_dir().c_str(), dir_mode());
    for (int n = 0; n < 10000; ++n) {
      std::string target = file + (n == 0 ? "" : "." + std::to_string(n));
      Status s = detail::rename_noreplace(from, lost_dir() + "/" + target);
      if (s.code() == Code::kAlreadyExists) continue;
      if (!s.ok()) return s;
      ++set_aside;
      return "lost+found/" + target;
    }
    return Status::ResourceExhausted("lost+found holds too many files named " + file);
  }

  struct Inventory {
    struct Object {
      Kind kind;
      std::string id, state, name;
      bool held = false;
      // An object being adopted (Creating) or given back: the path relative to the cluster
      // directory its file comes from / goes to.
      std::string adopted_from, releasing_to;
    };
    std::vector<Object> objects;
    std::vector<detail::local::Found> files;
  };

  Result<Inventory> inventory() {
    Inventory inv;
    Status s = store->read([&](Txn& t) -> Status {
      auto v = t.query("SELECT id, state, held, name, adopted_from, releasing_to FROM volumes");
      if (!v.ok()) return v.status();
      for (auto& r : *v)
        inv.objects.push_back({Kind::kVolume, r.text(0), r.text(1), r.text(3), r.int64(2) != 0,
                               r.text(4), r.text(5)});
      auto sn = t.query("SELECT id, state, name, adopted_from, releasing_to FROM snapshots");
      if (!sn.ok()) return sn.status();
      for (auto& r : *sn)
        inv.objects.push_back(
            {Kind::kSnapshot, r.text(0), r.text(1), r.text(2), false, r.text(3), r.text(4)});
      return Status::Ok();
    });
    if (!s.ok()) return s;
    auto files = detail::local::scan(data_dir());
    if (!files.ok()) return files.status();
    inv.files = std::move(files).value();
    return inv;
  }

  // Read-only: whether the metadata explains the data files. OK, or the reason the cluster
  // needs repair.
  Status inspect(const Inventory& inv) const {
    std::set<std::string> known, present;
    for (const auto& o : inv.objects) known.insert(detail::local::data_name(o.kind, o.id));
    for (const auto& f : inv.files)
      if (f.entry.type == DataEntry::Type::kData) present.insert(f.name);
    int unknown = 0, missing = 0;
    for (const auto& f : inv.files)
      if (f.entry.type == DataEntry::Type::kData && !known.count(f.name)) ++unknown;
    for (const auto& o : inv.objects) {
      // Intents (Creating, Deleting, giving back) explain a missing file; a held volume gets its
      // file back.
      if (o.state == "Creating" || o.state == "Deleting" || !o.releasing_to.empty()) continue;
      if (!present.count(detail::local::data_name(o.kind, o.id))) ++missing;
    }
    if (unknown == 0 && missing == 0) return Status::Ok();
    std::string why;
    if (unknown > 0)
      why = std::to_string(unknown) +
            " data file(s) that cluster.db does not name (it is empty or older than its files)";
    if (missing > 0)
      why += (why.empty() ? "" : "; ") + std::to_string(missing) +
             " object(s) whose data file is missing";
    return Status::FailedPrecondition(why);
  }

  Status drop_row(Kind k, const std::string& oid) {
    const char* table = k == Kind::kVolume ? "volumes" : "snapshots";
    return store->transact([&](Txn& t) {
      return t.exec(std::string("DELETE FROM ") + table + " WHERE id = ?", {oid}).status();
    });
  }

  Status recover(const Inventory& inv);
  // ---- adopting and giving back (local_manage.cpp) ----
  // Finishes an adoption a restart interrupted (the file is in place: sized, made Available) or
  // rolls it back (the file never moved: the row and sidecar go; the file is not touched).
  Status recover_adoption(const Inventory::Object& o);
  // Finishes giving an object back: its file to where the intent says (or a free name beside
  // it), then the sidecar and row go.
  Status recover_release(const Inventory::Object& o);
  // The candidates under import/ and lost+found/, looked at twice (one whose size or
  // modification time changed meanwhile is being written); `snapshots`: those whose names make
  // them snapshots (<volume file>@<snapshot>), else the others.
  std::vector<ManageableObject> candidates(bool snapshots);
  // Adopts a candidate as `a` describes, refusing one whose fingerprint is not `fingerprint`
  // (when given): the row, then the sidecar, then the rename, the size, Available. Undone on
  // error (the candidate where it was).
  struct Adoption;
  Status adopt(const Adoption& a, const std::string& fingerprint);
  // Gives an Available object back to `to` (relative to the cluster directory, or a free name
  // beside it): `check` runs in the transaction that records the intent; then its old size, the
  // rename, the sidecar and row go. Answers where it went.
  Result<std::string> give_back(Kind k, const std::string& oid, const std::string& to,
                                const std::function<Status(Txn&)>& check);
  // An object's size and, when adopted, its size then.
  Result<std::pair<std::uint64_t, std::uint64_t>> sizes_of(Kind k, const std::string& oid);
  // Moves `from` to `to_rel` (relative to the cluster directory) or, when taken, to the first
  // free "<to_rel>.<n>"; creates the directory. Answers where it went.
  Result<std::string> move_out(const std::string& from, const std::string& to_rel);
  // An adopted volume's file given back at its old size when nothing was written past its old
  // end (only the hole adoption added is dropped). Idempotent.
  Status shrink_to_adopted(const std::string& file, std::uint64_t adopted_size);
  Status fix_modes(const Inventory& inv);

  // ---- repair (local_open.cpp) ----
  // What the metadata being replaced named, by data file: "volume <id> (<name>)" (best effort).
  std::map<std::string, std::string> repair_old_objects();
  // The objects whose whole data file has a sidecar describing it (the first of a name per
  // project and kind); every other file is set aside into lost+found and reported. `keep`: the
  // files that stay.
  Result<std::vector<ObjectMeta>> repair_objects(RepairReport& report, std::set<std::string>& keep);
  // Fresh metadata for `objects` at `path`, counted in `report`.
  Status repair_write_metadata(const std::string& path, const std::vector<ObjectMeta>& objects,
                               RepairReport& report);
};

// Finishes or rolls back what the recorded intents describe, gives held volumes their files,

}  // namespace dmscore
