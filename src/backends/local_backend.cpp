#include "dmscore/local_backend.hpp"

#include "backends/local_impl.hpp"
#include "base/call_scope.hpp"

namespace dmscore {

using namespace detail::local;

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

Status Backend::release_data(const std::string&) { return Status::Ok(); }

Result<std::vector<ManageableObject>> Backend::list_manageable_volumes() {
  return Status::Unimplemented("this cluster's driver cannot list manageable volumes");
}
Result<Volume> Backend::manage_volume(const ManageVolumeRequest&) {
  return Status::Unimplemented("this cluster's driver cannot manage existing volumes");
}
Result<std::string> Backend::unmanage_volume(const std::string&, const std::string&) {
  return Status::Unimplemented("this cluster's driver cannot unmanage volumes");
}
Result<std::vector<ManageableObject>> Backend::list_manageable_snapshots() {
  return Status::Unimplemented("this cluster's driver cannot list manageable snapshots");
}
Result<Snapshot> Backend::manage_snapshot(const ManageSnapshotRequest&) {
  return Status::Unimplemented("this cluster's driver cannot manage existing snapshots");
}
Result<std::string> Backend::unmanage_snapshot(const std::string&, const std::string&) {
  return Status::Unimplemented("this cluster's driver cannot unmanage snapshots");
}

Status validate_labels(const std::map<std::string, std::string>& labels, const std::string& field) {
  if (labels.size() > 16) return Status::InvalidArgument(field + ": at most 16 labels");
  auto ok = [](const std::string& s, std::size_t min, std::size_t max) {
    if (s.size() < min || s.size() > max) return false;
    for (char c : s)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
          c != ':' && c != '/')
        return false;
    return true;
  };
  for (const auto& [k, v] : labels) {
    if (!ok(k, 1, 63) || !ok(v, 0, 253))
      return Status::InvalidArgument(field + ": keys 1-63 and values 0-253 characters of " +
                                     "[A-Za-z0-9._:/-]");
  }
  return Status::Ok();
}

namespace {

// Stops a local copy at the caller's deadline (CallScope), when it has one.
StopFn deadline_stop(const std::shared_ptr<Env>& env) {
  auto d = detail::CallScope::deadline();
  if (!d) return {};
  return [env, at = *d] { return env->steady_now() >= at; };
}

Status copy_outcome(const Status& s, const std::string& what) {
  if (s.code() != Code::kCancelled) return s;
  return Status::DeadlineExceeded(
      what +
      " did not finish within the request's deadline (this file system cannot reflink; "
      "on XFS or Btrfs it is instant)");
}

}  // namespace

Result<VolumePage> LocalBackend::list_volumes(const std::string& project, const PageRequest& page) {
  if (Status u = impl_->usable(); !u.ok()) return u;
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
  if (Status u = impl_->usable(); !u.ok()) return u;
  return impl_->volume_where("project = ? AND id = ?", {project, id}, "volume " + id);
}

Result<Volume> LocalBackend::find_volume(const std::string& project, const std::string& name) {
  if (Status u = impl_->usable(); !u.ok()) return u;
  return impl_->volume_where("project = ? AND name = ?", {project, name}, "volume named " + name);
}

Result<Volume> LocalBackend::create_volume(const CreateVolumeRequest& req) {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.replica_count < 1 || req.replica_count > 3)
    return Status::InvalidArgument("replicaCount: must be 1..3");
  if (req.sector_size != 512 && req.sector_size != 4096)
    return Status::InvalidArgument("sectorSize: must be 512 or 4096");
  if (Status s = validate_labels(req.labels, "labels"); !s.ok()) return s;
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
  v.id = im.env->new_uuid();
  v.project_name = req.project_name;
  v.name = req.name;
  v.size = size;
  v.replica_count = req.replica_count;
  v.sector_size = req.sector_size;
  v.compression = req.compression;
  v.state = VolumeState::kCreating;
  v.source_snapshot_id = req.source_snapshot_id;
  v.created_at = im.env->now();
  v.cluster_id = im.id;
  v.device_path = im.volume_path(v.id);
  v.labels = req.labels;
  // The row first: it claims the name and records the intent, so recovery knows the files that
  // follow are ours. Then the sidecar, then the data under a temporary name, renamed into place
  // once whole; Available last.
  Status s = im.insert_volume_row(v, req.hold_in_creating);
  if (!s.ok()) return s;

  auto undo = [&](Status why) -> Status {
    if (im.remove_files(Kind::kVolume, v.id).ok()) (void)im.drop_row(Kind::kVolume, v.id);
    return why;
  };
  if (s = im.write_sidecar(im.meta_of(v, req.hold_in_creating), false); !s.ok()) return undo(s);
  const std::string tmp = im.temp(Kind::kVolume, v.id);
  if (source) {
    auto r = detail::clone_file(im.snapshot_path(source->id), tmp, size, im.copy, im.volume_mode(),
                                im.gid(), deadline_stop(im.env), im.env);
    if (!r.ok())
      return undo(copy_outcome(r.status(), "copying snapshot " + source->id + " into a volume"));
  } else {
    s = detail::create_sparse_file(tmp, size, im.volume_mode(), im.gid(), im.env.get());
    if (!s.ok()) return undo(s);
  }
  if (s = detail::rename_noreplace(tmp, v.device_path); !s.ok()) return undo(s);
  if (s = detail::fsync_dir(im.data_dir()); !s.ok()) return undo(s);
  if (!req.hold_in_creating) {
    s = im.store->transact([&](Txn& t) {
      return t.exec("UPDATE volumes SET state = 'Available' WHERE id = ?", {v.id}).status();
    });
    if (!s.ok()) return undo(s);
    v.state = VolumeState::kAvailable;
  }
  return v;
}

Status LocalBackend::mark_volume_available(const std::string& project, const std::string& id) {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  auto v = im.volume_where("project = ? AND id = ?", {project, id}, "volume " + id);
  if (!v.ok()) return v.status();
  if (v->state == VolumeState::kAvailable) return Status::Ok();
  if (v->state != VolumeState::kCreating) return Status::NotFound("volume " + id + " not found");
  // The sidecar first: a rebuild after this point makes the volume Available, as it now is.
  if (Status s = im.write_sidecar(im.meta_of(*v, false), true); !s.ok()) return s;
  bool found = false;
  Status s = im.store->transact([&](Txn& t) -> Status {
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
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  bool found = false;
  Status s = im.store->transact([&](Txn& t) -> Status {
    auto r =
        t.exec("UPDATE volumes SET state = 'Deleting' WHERE project = ? AND id = ?", {project, id});
    if (!r.ok()) return r.status();
    found = *r > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!found) return Status::NotFound("volume " + id + " not found");
  if (s = im.remove_files(Kind::kVolume, id); !s.ok()) return s;
  return im.drop_row(Kind::kVolume, id);
}

Result<SnapshotPage> LocalBackend::list_snapshots(const std::string& project,
                                                  const PageRequest& page) {
  if (Status u = impl_->usable(); !u.ok()) return u;
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
  if (Status u = impl_->usable(); !u.ok()) return u;
  return impl_->snapshot_where("project = ? AND id = ?", {project, id}, "snapshot " + id);
}

Result<Snapshot> LocalBackend::find_snapshot(const std::string& project, const std::string& name) {
  if (Status u = impl_->usable(); !u.ok()) return u;
  return impl_->snapshot_where("project = ? AND name = ?", {project, name},
                               "snapshot named " + name);
}

Result<Snapshot> LocalBackend::create_snapshot(const CreateSnapshotRequest& req) {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  if (Status s = validate_object_name(req.name, "name"); !s.ok()) return s;
  if (req.description.size() > 256)
    return Status::InvalidArgument("description: must be at most 256 bytes");
  if (req.source_volume_id.empty())
    return Status::InvalidArgument("sourceVolumeId: must not be empty");
  if (Status s = validate_labels(req.labels, "labels"); !s.ok()) return s;
  auto vol = get_volume(req.project_name, req.source_volume_id);
  if (!vol.ok()) return vol.status();
  if (vol->state != VolumeState::kAvailable)
    return Status::FailedPrecondition("volume " + vol->id + " is " +
                                      std::string(to_string(vol->state)));
  Snapshot sn;
  sn.id = im.env->new_uuid();
  sn.project_name = req.project_name;
  sn.name = req.name;
  sn.source_volume_id = vol->id;
  sn.size = vol->size;
  sn.state = SnapshotState::kCreating;
  sn.description = req.description;
  sn.created_at = im.env->now();
  sn.replica_count = vol->replica_count;
  sn.sector_size = vol->sector_size;
  sn.compression = vol->compression;
  sn.cluster_id = im.id;
  sn.labels = req.labels;
  Status s = im.insert_snapshot_row(sn);
  if (!s.ok()) return s;
  auto undo = [&](Status why) -> Status {
    if (im.remove_files(Kind::kSnapshot, sn.id).ok()) (void)im.drop_row(Kind::kSnapshot, sn.id);
    return why;
  };
  if (s = im.write_sidecar(im.meta_of(sn), false); !s.ok()) return undo(s);
  const std::string tmp = im.temp(Kind::kSnapshot, sn.id);
  auto r = detail::clone_file(vol->device_path, tmp, sn.size, im.copy, im.snapshot_mode(), im.gid(),
                              deadline_stop(im.env), im.env);
  if (!r.ok())
    return undo(copy_outcome(r.status(), "copying volume " + vol->id + " into a snapshot"));
  if (s = detail::rename_noreplace(tmp, im.snapshot_path(sn.id)); !s.ok()) return undo(s);
  if (s = detail::fsync_dir(im.data_dir()); !s.ok()) return undo(s);
  s = im.store->transact([&](Txn& t) {
    return t.exec("UPDATE snapshots SET state = 'Available' WHERE id = ?", {sn.id}).status();
  });
  if (!s.ok()) return undo(s);
  sn.state = SnapshotState::kAvailable;
  return sn;
}

Status LocalBackend::delete_snapshot(const std::string& project, const std::string& id) {
  Impl& im = *impl_;
  if (Status u = im.usable(); !u.ok()) return u;
  bool found = false;
  Status s = im.store->transact([&](Txn& t) -> Status {
    auto r = t.exec("UPDATE snapshots SET state = 'Deleting' WHERE project = ? AND id = ?",
                    {project, id});
    if (!r.ok()) return r.status();
    found = *r > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!found) return Status::NotFound("snapshot " + id + " not found");
  if (s = im.remove_files(Kind::kSnapshot, id); !s.ok()) return s;
  return im.drop_row(Kind::kSnapshot, id);
}

Result<std::unique_ptr<BlockSource>> LocalBackend::open_snapshot_data(const std::string& project,
                                                                      const std::string& id,
                                                                      const DataAccess&) {
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
                                                                    const std::string& id,
                                                                    const DataAccess&) {
  auto v = get_volume(project, id);
  if (!v.ok()) return v.status();
  if (v->state != VolumeState::kAvailable && v->state != VolumeState::kCreating)
    return Status::FailedPrecondition("volume " + id + " is " + std::string(to_string(v->state)));
  auto src = detail::FileSource::open(v->device_path);
  if (!src.ok()) return src.status();
  return std::unique_ptr<BlockSource>(std::move(src).value());
}

Result<std::unique_ptr<BlockSink>> LocalBackend::open_volume_sink(const std::string& project,
                                                                  const std::string& id, bool fresh,
                                                                  const DataAccess&) {
  auto v = get_volume(project, id);
  if (!v.ok()) return v.status();
  if (v->state != VolumeState::kAvailable && v->state != VolumeState::kCreating)
    return Status::FailedPrecondition("volume " + id + " is " + std::string(to_string(v->state)));
  auto sink = detail::FileSink::open(v->device_path, fresh, impl_->env);
  if (!sink.ok()) return sink.status();
  return std::unique_ptr<BlockSink>(std::move(sink).value());
}

}  // namespace dmscore