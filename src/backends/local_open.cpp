#include <sys/file.h>

#include "backends/local_impl.hpp"

namespace dmscore {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace detail::local;

// writes sidecars that are missing, and moves every file nothing explains to lost+found/.
Status LocalBackend::Impl::recover(const Inventory& inv) {
  std::set<std::string> explained;
  for (const auto& o : inv.objects) {
    const std::string data = detail::local::data_name(o.kind, o.id);
    explained.insert(data);
    explained.insert(detail::local::sidecar_name(o.kind, o.id));
    const bool whole = fs::exists(path(o.kind, o.id));
    Status s;
    if (!o.adopted_from.empty() && o.state == "Creating") {
      s = recover_adoption(o);
    } else if (!o.releasing_to.empty()) {
      s = recover_release(o);
    } else if (o.state == "Deleting") {
      s = remove_files(o.kind, o.id);
      if (s.ok()) s = drop_row(o.kind, o.id);
    } else if (o.state == "Creating" && !o.held) {
      if (whole) {
        // The file was renamed into place, so it is whole: keep it rather than undo it.
        const char* table = o.kind == Kind::kVolume ? "volumes" : "snapshots";
        s = store->transact([&](Txn& t) {
          return t
              .exec(std::string("UPDATE ") + table + " SET state = 'Available' WHERE id = ?",
                    {o.id})
              .status();
        });
        log("kept " + data + ", whose creation a restart interrupted after it was whole");
      } else {
        s = remove_files(o.kind, o.id);
        if (s.ok()) s = drop_row(o.kind, o.id);
      }
    } else if (o.state == "Creating" && o.held) {
      // A workflow will fill it; nothing was written into it before create_volume returned, so
      // an unsized or missing file is given back empty at its full size.
      auto v = volume_where("id = ?", {o.id}, "volume " + o.id);
      if (!v.ok()) return v.status();
      struct stat st {};
      if (::stat(path(o.kind, o.id).c_str(), &st) != 0) {
        ::unlink(temp(o.kind, o.id).c_str());
        s = detail::create_sparse_file(path(o.kind, o.id), v->size, volume_mode(), gid(),
                                       env.get());
      } else if (static_cast<std::uint64_t>(st.st_size) < v->size) {
        Fd fd(::open(path(o.kind, o.id).c_str(), O_RDWR | O_CLOEXEC));
        if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(v->size)) != 0 ||
            ::fsync(fd.get()) != 0)
          return detail::errno_status("resize " + path(o.kind, o.id));
      }
      if (s.ok() && !fs::exists(sidecar(o.kind, o.id))) s = write_sidecar(meta_of(*v, true), false);
      if (s.ok()) s = detail::fsync_dir(data_dir());
    } else if (!fs::exists(sidecar(o.kind, o.id))) {
      // Made by a release that wrote no sidecars: give it one, so it can be rebuilt.
      if (o.kind == Kind::kVolume) {
        auto v = volume_where("id = ?", {o.id}, "volume " + o.id);
        if (!v.ok()) return v.status();
        s = write_sidecar(meta_of(*v, false), true);
      } else {
        auto sn = snapshot_where("id = ?", {o.id}, "snapshot " + o.id);
        if (!sn.ok()) return sn.status();
        s = write_sidecar(meta_of(*sn), true);
      }
    }
    if (!s.ok()) return s;
  }
  bool moved = false;
  for (const auto& f : inv.files) {
    if (explained.count(f.name)) continue;
    if (f.entry.type == DataEntry::Type::kTemp) {
      // The temporary file of an object whose intent is recorded was handled above.
      bool ours = false;
      for (const auto& o : inv.objects) ours |= o.id == f.entry.id && o.kind == f.entry.kind;
      if (ours) continue;
    }
    if (!f.regular) {
      log("left " + f.name + " in data/ alone: not a regular file");
      continue;
    }
    auto where = set_aside_file(data_dir() + "/" + f.name, f.name);
    if (!where.ok()) return where.status();
    log("moved data/" + f.name + ", which no metadata explains, to " + *where);
    moved = true;
  }
  if (moved) return detail::fsync_dir(data_dir());
  return Status::Ok();
}

// Data files with looser modes than the configured ones (an older release made volumes 0644)
// are tightened, with a log line.
Status LocalBackend::Impl::fix_modes(const Inventory& inv) {
  int fixed = 0;
  for (const auto& f : inv.files) {
    if (!f.regular || f.entry.type == DataEntry::Type::kOther) continue;
    std::string p = data_dir() + "/" + f.name;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) continue;
    unsigned want = f.entry.type == DataEntry::Type::kData ? file_mode(f.entry.kind)
                                                           : (gid() >= 0 ? 0640u : 0600u);
    if ((st.st_mode & 07777 & ~want) == 0) continue;
    if (::chmod(p.c_str(), want) == 0) ++fixed;
  }
  if (fixed > 0) log("tightened the mode of " + std::to_string(fixed) + " data file(s)");
  return Status::Ok();
}

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
  if (!impl->copy.options().env) {
    CopyOptions co = impl->copy.options();
    co.env = impl->env;
    impl->copy = CopyEngine(co);
  }

  std::error_code ec;
  const bool exists = fs::exists(impl->dir, ec);
  if (exists && !fs::is_directory(impl->dir, ec))
    return Status::FailedPrecondition(impl->dir + " is not a directory");
  const bool initialised = is_cluster_dir(impl->dir);
  if (exists && !initialised && !dir_is_initialisable(impl->dir))
    return Status::FailedPrecondition(impl->dir +
                                      " is not empty and holds no local cluster; use an empty "
                                      "or new directory");
  if (!initialised) {
    if (auto outer = enclosing_cluster(impl->dir))
      return Status::FailedPrecondition(impl->dir + " lies inside the local cluster at " + *outer +
                                        "; use a directory outside it");
  }
  if (!exists) {
    fs::create_directories(impl->dir, ec);
    if (ec) return Status::Unavailable("cannot create " + impl->dir + ": " + ec.message());
    ::chmod(impl->dir.c_str(), impl->dir_mode());
  }
  if (impl->gid() >= 0 &&
      ::chown(impl->dir.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(impl->gid())) != 0 &&
      !initialised)
    return detail::errno_status("chown " + impl->dir);

  impl->lock = Fd(::open((impl->dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!impl->lock.valid()) return detail::errno_status("open " + impl->dir + "/.lock");
  if (::flock(impl->lock.get(), LOCK_EX | LOCK_NB) != 0)
    return Status::Unavailable("local cluster " + impl->dir +
                               " is open in another process; stop it first");

  StoreOptions so{5000, 2, detail::local::migrations()};
  so.env = impl->env;
  const std::string db = impl->dir + "/cluster.db";
  if (!initialised) {
    fs::create_directories(impl->data_dir(), ec);
    if (ec) return Status::Unavailable("cannot create " + impl->data_dir() + ": " + ec.message());
    ::chmod(impl->data_dir().c_str(), impl->dir_mode());
    if (impl->gid() >= 0)
      (void)!::chown(impl->data_dir().c_str(), static_cast<uid_t>(-1),
                     static_cast<gid_t>(impl->gid()));
    impl->id = impl->env->new_uuid();
    impl->name = name.empty() ? fs::path(impl->dir).filename().string() : name;
    if (validate_object_name(impl->name, "name").ok() == false) impl->name = "local";
    json::object o{{"id", impl->id},
                   {"name", impl->name},
                   {"format", detail::local::kFormat},
                   {"createdAt", detail::to_millis(impl->env->now())}};
    auto store = Store::open(db, so);
    if (!store.ok()) return store.status();
    impl->store = std::move(store).value();
    // Written last: its presence is what makes the directory a cluster.
    if (Status s = detail::write_file_atomic(impl->dir + "/cluster.json", json::serialize(o));
        !s.ok())
      return s;
    return std::unique_ptr<LocalBackend>(new LocalBackend(std::move(impl)));
  }

  auto text = detail::read_small_file(impl->dir + "/cluster.json");
  if (!text.ok()) return text.status();
  boost::system::error_code jec;
  auto v = json::parse(*text, jec);
  if (jec || !v.is_object() || !v.as_object().contains("id") ||
      !v.as_object().at("id").is_string() || !v.as_object().contains("format") ||
      v.as_object().at("format") != detail::local::kFormat)
    return Status::FailedPrecondition(impl->dir +
                                      "/cluster.json is not a local cluster "
                                      "description this release understands");
  impl->id = std::string(v.as_object().at("id").as_string());
  if (auto* n = v.as_object().if_contains("name"); n && n->is_string())
    impl->name = std::string(n->as_string());

  // Nothing is written until the metadata is known to explain the data.
  auto needs_repair = [&](const std::string& why) {
    impl->repair_reason = Status::FailedPrecondition(why);
    impl->log("needs repair: " + why);
    return std::unique_ptr<LocalBackend>(new LocalBackend(std::move(impl)));
  };
  auto version = Store::peek_schema_version(db);
  if (version.status().is_not_found()) return needs_repair("its metadata cluster.db is missing");
  if (!version.ok())
    return needs_repair("its metadata cluster.db cannot be read (" + version.status().message() +
                        ")");
  if (*version > static_cast<int>(detail::local::migrations().size()))
    return Status::FailedPrecondition(db + " was written by a newer release (schema " +
                                      std::to_string(*version) + "); open it with that release");
  so.create_if_missing = false;
  auto store = Store::open(db, so);
  if (!store.ok())
    return needs_repair("its metadata cluster.db fails to open (" + store.status().message() + ")");
  impl->store = std::move(store).value();
  auto inv = impl->inventory();
  if (!inv.ok()) return inv.status();
  if (Status problem = impl->inspect(*inv); !problem.ok()) return needs_repair(problem.message());
  fs::create_directories(impl->data_dir(), ec);
  if (Status s = impl->recover(*inv); !s.ok()) return s;
  if (Status s = impl->fix_modes(*inv); !s.ok()) return s;
  return std::unique_ptr<LocalBackend>(new LocalBackend(std::move(impl)));
}

const std::string& LocalBackend::dir() const { return impl_->dir; }
const std::string& LocalBackend::cluster_id() const { return impl_->id; }
std::uint64_t LocalBackend::set_aside_count() const { return impl_->set_aside.load(); }

Status LocalBackend::repair_needed() const {
  std::lock_guard lock(impl_->repair_mu);
  return impl_->repair_reason;
}

Result<ClusterInfo> LocalBackend::info() {
  if (!is_cluster_dir(impl_->dir))
    return Status::Unavailable("local cluster " + impl_->dir + " is gone (no cluster.json)");
  ClusterInfo c;
  c.id = impl_->id;
  c.name = impl_->name;
  c.version = std::string("libdmscore-local/") + detail::local::kFormat;
  c.subsystem_nqn = "nqn.2024-01.io.dmscore:local:" + impl_->id;
  c.api_endpoints = {"file://" + impl_->dir};
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  c.servers = {{host, "file://" + impl_->dir, "Active"}};
  return c;
}

std::map<std::string, std::string> LocalBackend::Impl::repair_old_objects() {
  Impl& im = *this;
  const std::string db = im.dir + "/cluster.db";
  // What the replaced metadata named, for the report (best effort: it may be unreadable).
  std::map<std::string, std::string> old_objects;
  if (!im.store) {
    StoreOptions ro{1000, 1, detail::local::migrations()};
    ro.create_if_missing = false;
    if (auto v = Store::peek_schema_version(db);
        v.ok() && *v <= static_cast<int>(ro.migrations.size())) {
      if (auto old = Store::open(db, ro); old.ok()) im.store = std::move(old).value();
    }
  }
  if (im.store) {
    (void)im.store->read([&](Txn& t) -> Status {
      for (auto [table, kind] :
           {std::pair{"volumes", Kind::kVolume}, {"snapshots", Kind::kSnapshot}}) {
        auto rows = t.query(std::string("SELECT id, name FROM ") + table);
        if (!rows.ok()) return rows.status();
        for (auto& r : *rows)
          old_objects[detail::local::data_name(kind, r.text(0))] =
              std::string(detail::local::kind_name(kind)) + " " + r.text(0) + " (" + r.text(1) +
              ")";
      }
      return Status::Ok();
    });
    im.store.reset();
  }

  return old_objects;
}

Result<std::vector<ObjectMeta>> LocalBackend::Impl::repair_objects(RepairReport& report,
                                                                   std::set<std::string>& keep) {
  Impl& im = *this;
  // Every whole data file whose sidecar describes it, in this cluster, is an object again.
  auto files = detail::local::scan(im.data_dir());
  if (!files.ok()) return files.status();
  std::vector<ObjectMeta> objects;
  std::set<std::pair<std::string, std::string>> names[2];  // (project, name) per kind
  std::sort(files->begin(), files->end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& f : *files) {
    if (!f.regular || f.entry.type != DataEntry::Type::kData) continue;
    auto text = detail::read_small_file(im.sidecar(f.entry.kind, f.entry.id), 64 << 10);
    if (!text.ok()) continue;
    auto m = detail::local::parse_sidecar(*text);
    if (!m.ok() || m->id != f.entry.id || m->kind != f.entry.kind || m->cluster_id != im.id)
      continue;
    auto& taken = names[m->kind == Kind::kVolume ? 0 : 1];
    if (!taken.insert({m->project, m->name}).second) continue;  // a second object of that name
    keep.insert(f.name);
    keep.insert(detail::local::sidecar_name(m->kind, m->id));
    objects.push_back(std::move(m).value());
  }
  bool moved = false;
  for (const auto& f : *files) {
    if (!f.regular || keep.count(f.name)) continue;
    auto where = im.set_aside_file(im.data_dir() + "/" + f.name, f.name);
    if (!where.ok()) return where.status();
    im.log("repair moved data/" + f.name + " to " + *where);
    report.set_aside.push_back(*where);
    moved = true;
  }
  if (moved) {
    if (Status s = detail::fsync_dir(im.data_dir()); !s.ok()) return s;
  }

  return objects;
}

Status LocalBackend::Impl::repair_write_metadata(const std::string& fresh,
                                                 const std::vector<ObjectMeta>& objects,
                                                 RepairReport& report) {
  Impl& im = *this;
  StoreOptions so{5000, 1, detail::local::migrations()};
  so.env = im.env;
  auto store = Store::open(fresh, so);
  if (!store.ok()) return store.status();
  Status s = (*store)->transact([&](Txn& t) -> Status {
    for (const auto& m : objects) {
      Result<std::int64_t> r = 0;
      if (m.kind == Kind::kVolume) {
        r = t.exec(
            "INSERT INTO volumes (id, project, name, size, replica_count, sector_size, "
            "compression, state, held, source_snapshot_id, created_at, labels) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            {m.id, m.project, m.name, static_cast<std::int64_t>(m.size),
             std::int64_t{m.replica_count}, std::int64_t{m.sector_size},
             std::int64_t{m.compression}, std::string(m.held ? "Creating" : "Available"),
             std::int64_t{m.held}, m.source_id, m.created_ms, labels_json(m.labels)});
        ++report.volumes;
      } else {
        r = t.exec(
            "INSERT INTO snapshots (id, project, name, source_volume_id, size, state, "
            "description, created_at, replica_count, sector_size, compression, labels) "
            "VALUES (?, ?, ?, ?, ?, 'Available', ?, ?, ?, ?, ?, ?)",
            {m.id, m.project, m.name, m.source_id, static_cast<std::int64_t>(m.size), m.description,
             m.created_ms, std::int64_t{m.replica_count}, std::int64_t{m.sector_size},
             std::int64_t{m.compression}, labels_json(m.labels)});
        ++report.snapshots;
      }
      if (!r.ok()) return r.status();
    }
    return Status::Ok();
  });
  return s;
}

Result<RepairReport> LocalBackend::repair() {
  Impl& im = *impl_;
  static std::mutex one_repair;  // repairs of one directory never overlap (the flock is ours)
  std::lock_guard run(one_repair);
  {
    std::lock_guard lock(im.repair_mu);
    if (im.repair_reason.ok())
      return Status::FailedPrecondition("local cluster " + im.id + " does not need repair");
  }
  RepairReport report;
  const std::string db = im.dir + "/cluster.db";
  const std::map<std::string, std::string> old_objects = im.repair_old_objects();
  std::set<std::string> keep;
  auto objects = im.repair_objects(report, keep);
  if (!objects.ok()) return objects.status();

  // The new metadata is built aside, then swapped in: until then the cluster still needs
  // repair, so an interrupted repair is simply run again.
  const std::string fresh = im.dir + "/cluster.db.repair";
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((fresh + suffix).c_str());
  if (Status s = im.repair_write_metadata(fresh, *objects, report); !s.ok()) return s;
  if (fs::exists(db)) {
    const std::string stamp = std::to_string(detail::to_millis(im.env->now()));
    auto where = im.set_aside_file(db, "cluster.db." + stamp);
    if (!where.ok()) return where.status();
    for (const char* suffix : {"-wal", "-shm"}) {
      if (fs::exists(db + suffix))
        (void)detail::rename_noreplace(db + suffix, im.dir + "/" + *where + suffix);
    }
    report.previous_metadata = *where;
  }
  if (::rename(fresh.c_str(), db.c_str()) != 0) return detail::errno_status("rename " + fresh);
  if (Status s = detail::fsync_dir(im.dir); !s.ok()) return s;
  for (const auto& [file, what] : old_objects)
    if (!keep.count(file)) report.missing.push_back(what);

  StoreOptions so{5000, 2, detail::local::migrations()};
  so.env = im.env;
  so.create_if_missing = false;
  auto store = Store::open(db, so);
  if (!store.ok()) return store.status();
  im.store = std::move(store).value();
  auto inv = im.inventory();
  if (!inv.ok()) return inv.status();
  if (Status problem = im.inspect(*inv); !problem.ok())
    return Status::Internal("repair left the metadata inconsistent: " + problem.message());
  if (Status s = im.recover(*inv); !s.ok()) return s;
  {
    std::lock_guard lock(im.repair_mu);
    im.repair_reason = Status::Ok();
  }
  im.log("repaired: " + std::to_string(report.volumes) + " volume(s), " +
         std::to_string(report.snapshots) + " snapshot(s), " +
         std::to_string(report.set_aside.size()) + " file(s) set aside, " +
         std::to_string(report.missing.size()) + " object(s) missing");
  return report;
}

}  // namespace dmscore
