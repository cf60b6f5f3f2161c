// Adopting what exists: Cinder's sorting and paging of manageable lists, and the Volumes
// requests that list, adopt (MANAGE_VOLUME) and give back.

#include "dmscore/manageable.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

#include "base/codec.hpp"
#include "base/pytext.hpp"
#include "base/util.hpp"
#include "engine/engine_txn.hpp"
#include "service/service_impl.hpp"
#include "workflows/manage_volume.hpp"

namespace dmscore {

namespace json = boost::json;

namespace {

constexpr std::int64_t kMaxLimit = 1000;        // Cinder's osapi_max_limit default
constexpr std::int64_t kDbMaxInt = 0x7FFFFFFF;  // Cinder's constants.DB_MAX_INT

Status bad(const char* param, const std::string& cinder_message) {
  return Status::InvalidArgument(std::string(param) + ": " + cinder_message);
}

// Cinder's bounds on what it keeps with a volume.
Status check_description_metadata(const ManageRequest& r) {
  if (r.display_name.size() > 255)
    return Status::InvalidArgument("displayName: longer than 255 bytes");
  if (r.availability_zone.size() > 255)
    return Status::InvalidArgument("availabilityZone: longer than 255 bytes");
  if (r.description.size() > 255)
    return Status::InvalidArgument("description: longer than 255 bytes");
  if (r.metadata.size() > 64) return Status::InvalidArgument("metadata: more than 64 entries");
  for (const auto& [k, v] : r.metadata) {
    if (k.empty() || k.size() > 255)
      return Status::InvalidArgument("metadata: keys must be 1-255 bytes");
    if (v.size() > 255) return Status::InvalidArgument("metadata." + k + ": longer than 255 bytes");
  }
  return Status::Ok();
}

std::string metadata_text(const std::map<std::string, std::string>& m) {
  json::object o;
  for (const auto& [k, v] : m) o[k] = v;
  return json::serialize(o);
}

std::map<std::string, std::string> metadata_of(const std::string& text) {
  std::map<std::string, std::string> m;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (!ec && v.is_object())
    for (const auto& [k, e] : v.get_object())
      if (e.is_string()) m.emplace(std::string(k), std::string(e.get_string()));
  return m;
}

constexpr const char* kRecordCols =
    "id, cluster_id, project_name, name, reference, display_name, description, metadata, "
    "bootable, availability_zone, workflow_id, created_at";

ManagedVolume record_from(const Row& r) {
  ManagedVolume m;
  m.id = r.text(0);
  m.cluster_id = r.text(1);
  m.project_name = r.text(2);
  m.name = r.text(3);
  m.reference = r.text(4);
  m.display_name = r.text(5);
  m.description = r.text(6);
  m.metadata = metadata_of(r.text(7));
  m.bootable = r.int64(8) != 0;
  m.availability_zone = r.text(9);
  m.workflow_id = r.text(10);
  m.created_at = detail::from_millis(r.int64(11));
  return m;
}

constexpr const char* kVolumeRecords = "managed_volumes";
constexpr const char* kSnapshotRecords = "managed_snapshots";

// The record of object `id` in `table`, or nullopt; a snapshot's volume in `volume_id`.
Result<std::optional<ManagedVolume>> read_record(Store& store, const std::string& id,
                                                 const char* table = kVolumeRecords,
                                                 std::string* volume_id = nullptr) {
  std::optional<ManagedVolume> out;
  const bool snapshot = std::string_view(table) == kSnapshotRecords;
  Status s = store.read([&](Txn& t) -> Status {
    auto r = t.query_one(std::string("SELECT ") + kRecordCols + (snapshot ? ", volume_id" : "") +
                             " FROM " + table + " WHERE id = ?",
                         {id});
    if (!r.ok()) return r.status();
    if (*r) out = record_from(**r);
    if (*r && volume_id) *volume_id = (**r).text(12);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

// Drops the record of `id` in `table`: the one of `workflow_id` when given (a newer adoption of
// the same object keeps its own), else any.
Status drop_record(Store& store, const std::string& id, const char* table = kVolumeRecords,
                   const std::string& workflow_id = "") {
  return store.transact([&](Txn& t) {
    if (workflow_id.empty())
      return t.exec(std::string("DELETE FROM ") + table + " WHERE id = ?", {id}).status();
    return t
        .exec(std::string("DELETE FROM ") + table + " WHERE id = ? AND workflow_id = ?",
              {id, workflow_id})
        .status();
  });
}

// Whether the object a FAILED or CANCELLED adoption named was taken all the same: its undo
// could not finish, and the object carries the workflow's label.
bool taken_anyway(const std::map<std::string, std::string>& labels, const std::string& wf) {
  auto owner = labels.find(kOwnerLabel);
  return owner != labels.end() && owner->second == wf;
}

// A cluster that cannot mark a snapshot (Lightbits) lists what the service adopted there as a
// candidate: the service's records say it is managed.
Status overlay_records(Store& store, std::vector<ManageableObject>& all) {
  return store.read([&](Txn& t) -> Status {
    for (auto& m : all) {
      if (m.object_id.empty() || !m.managed_id.empty()) continue;
      auto r = t.query_one(
          "SELECT 1 FROM managed_snapshots JOIN workflows ON workflows.id = "
          "managed_snapshots.workflow_id WHERE managed_snapshots.id = ? AND workflows.state IN "
          "('PENDING', 'RUNNING', 'COMPLETED')",
          {m.object_id});
      if (!r.ok()) return r.status();
      if (*r) {
        m.safe_to_manage = false;
        m.reason_not_safe = "already managed";
        m.managed_id = m.object_id;
      }
    }
    return Status::Ok();
  });
}

// The candidate `ref` of `all`: INVALID_ARGUMENT naming ref when it is unknown or not safe.
Result<ManageableObject> safe_candidate(const std::vector<ManageableObject>& all,
                                        const std::string& ref, const std::string& cluster,
                                        const char* kind) {
  auto it = std::find_if(all.begin(), all.end(),
                         [&](const ManageableObject& m) { return m.reference == ref; });
  if (it == all.end())
    return Status::InvalidArgument("ref: no manageable " + std::string(kind) + " " + ref +
                                   " on cluster " + cluster);
  if (!it->safe_to_manage)
    return Status::InvalidArgument("ref: " + ref +
                                   " is not safe to manage: " + it->reason_not_safe);
  return *it;
}

// Submits the adoption `w` as a workflow of `type`, recording it in `table` in the same
// transaction (an earlier record of the same object whose adoption failed is superseded), so the
// object reads as Creating from now on. `shown_name`: the name the record shows.
Result<std::string> submit_recorded(detail::ServiceImpl& im, const char* type, const char* table,
                                    const detail::ManageWork& w, const std::string& object_id,
                                    const std::string& shown_name, const ManageRequest& request,
                                    std::vector<std::string> resources) {
  const bool snapshot = std::string_view(table) == kSnapshotRecords;
  auto ids = detail::EngineTxn::submit_all(
      *im.engine, {{type, w.to_json(), std::move(resources)}},
      [&](Txn& t, const std::vector<std::string>& wf) -> Status {
        if (auto r = t.exec(std::string("DELETE FROM ") + table +
                                " WHERE id = ? AND workflow_id IN (SELECT id FROM workflows "
                                "WHERE state IN ('FAILED', 'CANCELLED'))",
                            {object_id});
            !r.ok())
          return r.status();
        std::vector<SqlValue> values{object_id,
                                     w.cluster_id,
                                     w.project_name,
                                     shown_name,
                                     w.reference,
                                     request.display_name,
                                     request.description,
                                     metadata_text(request.metadata),
                                     std::int64_t{request.bootable},
                                     request.availability_zone,
                                     wf[0],
                                     im.now_ms()};
        if (snapshot) values.push_back(w.volume_id);
        return t
            .exec(std::string("INSERT INTO ") + table + " (" + kRecordCols +
                      (snapshot ? ", volume_id" : "") +
                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?" + (snapshot ? ", ?" : "") +
                      ")",
                  values)
            .status();
      });
  if (!ids.ok()) return ids.status();
  return ids->front();
}

}  // namespace

std::uint64_t size_in_gib(std::uint64_t bytes) {
  constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
  return bytes / kGiB + (bytes % kGiB != 0);
}

Result<std::vector<ManageableObject>> paginate_manageable(std::vector<ManageableObject> all,
                                                          const ManageableQuery& q) {
  // get_pagination_params: limit, marker, offset.
  std::int64_t limit = kMaxLimit, offset = 0;
  if (q.limit) {
    auto l = detail::python_int(*q.limit);
    if (!l) return bad("limit", "limit param must be an integer");
    if (*l < 0) return bad("limit", "limit param must be positive");
    limit = std::min(*l, kMaxLimit);
  }
  if (q.offset) {
    auto o = detail::python_int(*q.offset);
    if (!o) return bad("offset", "offset must be an integer");
    if (*o < 0) return bad("offset", "offset must be >= 0");
    if (*o > kDbMaxInt) return bad("offset", "offset must be <= " + std::to_string(kDbMaxInt));
    offset = *o;
  }
  // get_sort_params, default key reference, default dir desc.
  if (q.sort && (q.sort_key || q.sort_dir))
    return bad("sort",
               "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with "
               "the 'sort' parameter.");
  auto strip = [](std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
  };
  std::vector<std::string> keys, dirs;
  if (q.sort) {
    std::string rest = strip(*q.sort);
    for (;;) {
      const auto comma = rest.find(',');
      const std::string item = rest.substr(0, comma);
      const auto colon = item.find(':');
      std::string dir = colon == std::string::npos ? "" : item.substr(colon + 1);
      keys.push_back(strip(item.substr(0, colon)));
      dirs.push_back(strip(dir.empty() ? "desc" : dir));
      if (comma == std::string::npos) break;
      rest = rest.substr(comma + 1);
    }
  } else {
    keys.push_back(strip(q.sort_key.value_or("reference")));
    dirs.push_back(strip(q.sort_dir.value_or("desc")));
  }
  std::string invalid;
  for (const auto& k : keys)
    if (k != "reference" && k != "size") invalid += (invalid.empty() ? "" : ", ") + k;
  if (!invalid.empty()) return bad("sort", "Invalid sort keys passed: " + invalid);
  for (const auto& d : dirs)
    if (d != "asc" && d != "desc") invalid += (invalid.empty() ? "" : ", ") + d;
  if (!invalid.empty()) return bad("sort", "Invalid sort dirs passed: " + invalid);

  std::stable_sort(all.begin(), all.end(),
                   [&](const ManageableObject& a, const ManageableObject& b) {
                     for (std::size_t i = 0; i < keys.size(); ++i) {
                       int c = 0;
                       if (keys[i] == "reference") {
                         c = a.reference.compare(b.reference);
                       } else {
                         const auto sa = size_in_gib(a.size), sb = size_in_gib(b.size);
                         c = sa == sb ? 0 : (sa < sb ? -1 : 1);
                       }
                       if (c == 0) continue;
                       return dirs[i] == "asc" ? c < 0 : c > 0;
                     }
                     return false;
                   });

  std::int64_t start = 0;
  if (q.marker && !q.marker->empty()) {
    boost::system::error_code ec;
    json::value m = json::parse(*q.marker, ec);
    if (ec)
      return bad("marker",
                 "marker " + *q.marker + " can not be analysed, please use json like format");
    start = -1;
    for (std::size_t i = 0; i < all.size(); ++i) {
      const json::object ref{{"source-name", all[i].reference}};
      if (m.is_object() && m.as_object() == ref) {
        start = static_cast<std::int64_t>(i) + 1;
        break;
      }
    }
    if (start < 0) return bad("marker", "marker not found: " + detail::python_repr(m));
  }
  // sorted_entries[start + offset : start + limit + offset]
  const auto n = static_cast<std::int64_t>(all.size());
  const std::int64_t from = std::min(start + offset, n), to = std::min(start + limit + offset, n);
  std::vector<ManageableObject> page;
  for (std::int64_t i = from; i < to; ++i)
    page.push_back(std::move(all[static_cast<std::size_t>(i)]));
  return page;
}

// ---- Volumes: adopting and giving back ----

Result<std::vector<ManageableObject>> Volumes::list_manageable(const ClusterId& cluster,
                                                               const ManageableQuery& query) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cluster.str());
  if (!b.ok()) return b.status();
  auto all = (*b)->list_manageable_volumes();
  if (!all.ok()) return all.status();
  return paginate_manageable(std::move(all).value(), query);
}

Result<ManageStarted> Volumes::manage(const ClusterId& cluster, const ManageRequest& request) {
  auto scope = impl_->caller();
  if (request.reference.empty()) return Status::InvalidArgument("ref: is required");
  if (request.reference.size() > 4096)
    return Status::InvalidArgument("ref: longer than 4096 bytes");
  if (Status s = validate_object_name(request.project_name, "projectName"); !s.ok()) return s;
  if (!request.name.empty()) {
    if (Status s = validate_object_name(request.name, "name"); !s.ok()) return s;
  }
  if (Status s = check_description_metadata(request); !s.ok()) return s;
  auto b = impl_->backend_locked(cluster.str());
  if (!b.ok()) return b.status();
  // The candidate as it is now: it must exist and be safe, and the workflow refuses it if it
  // changes before it is taken.
  auto all = (*b)->list_manageable_volumes();
  if (!all.ok()) return all.status();
  auto it = safe_candidate(*all, request.reference, cluster.str(), "volume");
  if (!it.ok()) return it.status();
  // The id and name it gets. A candidate that keeps its own id (a Lightbits volume) keeps its
  // name too unless one is asked for. Otherwise: the name asked for; else the file's own when
  // that is a valid name, free, and no display name is given; else volume-<id>, as Cinder names
  // what it manages.
  const bool keeps_identity = !it->object_id.empty();
  const std::string volume_id = keeps_identity ? it->object_id : impl_->env->new_uuid();
  const std::string own = request.reference.substr(request.reference.rfind('/') + 1);
  std::string name = request.name;
  if (!name.empty()) {
    auto other = (*b)->find_volume(request.project_name, name);
    if (other.ok() && other->id != volume_id)
      return Status::AlreadyExists("name: a volume named " + name + " already exists in project " +
                                   request.project_name);
  } else if (!keeps_identity) {
    const bool usable = request.display_name.empty() && validate_object_name(own, "name").ok();
    name =
        usable && !(*b)->find_volume(request.project_name, own).ok() ? own : "volume-" + volume_id;
  }
  detail::ManageWork w;
  w.cluster_id = cluster.str();
  w.reference = request.reference;
  w.project_name = request.project_name;
  w.name = name;
  w.volume_id = volume_id;
  w.fingerprint = it->fingerprint;
  auto id = submit_recorded(*impl_, kManageVolume, kVolumeRecords, w, volume_id,
                            name.empty() ? own : name, request,
                            {"cluster:" + w.cluster_id, "volume:" + w.volume_id});
  if (!id.ok()) return id.status();
  return ManageStarted{*id, w.volume_id};
}

Result<ManagedVolume> Volumes::managed(const std::string& volume_id) const {
  auto scope = impl_->caller();
  auto rec = read_record(*impl_->store, volume_id);
  if (!rec.ok()) return rec.status();
  if (!*rec) return Status::NotFound("volume " + volume_id + " not found");
  ManagedVolume m = std::move(**rec);
  auto wf = impl_->engine->get(m.workflow_id);
  if (!wf.ok()) return wf.status();
  if (wf->state == WorkflowState::kCompleted) {
    auto b = impl_->backend_locked(m.cluster_id);
    if (!b.ok()) return b.status();
    auto v = (*b)->get_volume(m.project_name, m.id);
    if (!v.ok()) return v.status();
    v->description = m.description;
    v->metadata = m.metadata;
    m.state = v->state;
    m.volume = std::move(v).value();
  } else if (is_terminal(wf->state)) {
    m.state = VolumeState::kFailed;
    m.failure = wf->msg;
  }
  return m;
}

Result<std::string> Volumes::unmanage(const VolumeRef& ref) {
  const std::string& cid = ref.cluster.str();
  auto rec = read_record(*impl_->store, ref.id);
  if (!rec.ok()) return rec.status();
  if (*rec && (**rec).cluster_id == cid && (**rec).project_name == ref.project) {
    auto wf = impl_->engine->get((**rec).workflow_id);
    if (!wf.ok()) return wf.status();
    if (!is_terminal(wf->state))
      return Status::FailedPrecondition("volume " + ref.id + " is being adopted (workflow " +
                                        wf->id + "); wait for it or cancel it");
    if (wf->state != WorkflowState::kCompleted) {
      auto b = impl_->backend_locked(cid);
      if (!b.ok()) return b.status();
      auto v = (*b)->get_volume(ref.project, ref.id);
      if (!v.ok() && v.status().code() != Code::kNotFound) return v.status();
      if (!v.ok() || !taken_anyway(v->labels, wf->id)) {
        // Never taken: only the record goes.
        if (Status s = drop_record(*impl_->store, ref.id, kVolumeRecords, wf->id); !s.ok())
          return s;
        return (**rec).reference;
      }
    }
  }
  // Snapshots the service adopted of it (on a cluster that cannot mark them) would be left
  // without their volume.
  std::int64_t adopted = 0;
  if (Status s = impl_->store->read([&](Txn& t) -> Status {
        auto r = t.query_one(
            "SELECT COUNT(*) FROM managed_snapshots JOIN workflows ON workflows.id = "
            "managed_snapshots.workflow_id WHERE managed_snapshots.volume_id = ? AND "
            "workflows.state IN ('PENDING', 'RUNNING', 'COMPLETED')",
            {ref.id});
        if (!r.ok()) return r.status();
        adopted = *r ? (**r).int64(0) : 0;
        return Status::Ok();
      });
      !s.ok())
    return s;
  if (adopted > 0)
    return Status::FailedPrecondition("volume " + ref.id + " has " + std::to_string(adopted) +
                                      " adopted snapshot(s); unmanage them first");
  auto where = impl_->claimed_call<Result<std::string>>(
      cid, "volume:" + ref.id, "unmanaged",
      [&](Backend& b) { return b.get_volume(ref.project, ref.id).status(); },
      [&] { return impl_->groups->check_volume_free(cid, ref.id); },
      [&](Backend& b) { return b.unmanage_volume(ref.project, ref.id); });
  if (!where.ok()) return where;
  if (*rec) {
    if (Status s = drop_record(*impl_->store, ref.id, kVolumeRecords, (**rec).workflow_id); !s.ok())
      return s;
  }
  return where;
}

// ---- snapshots ----

Result<std::vector<ManageableObject>> Volumes::list_manageable_snapshots(
    const ClusterId& cluster, const ManageableQuery& query) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cluster.str());
  if (!b.ok()) return b.status();
  auto all = (*b)->list_manageable_snapshots();
  if (!all.ok()) return all.status();
  if (Status s = overlay_records(*impl_->store, *all); !s.ok()) return s;
  return paginate_manageable(std::move(all).value(), query);
}

Result<ManageStarted> Volumes::manage_snapshot(const ClusterId& cluster,
                                               const ManageRequest& request) {
  auto scope = impl_->caller();
  if (request.reference.empty()) return Status::InvalidArgument("ref: is required");
  if (request.reference.size() > 4096)
    return Status::InvalidArgument("ref: longer than 4096 bytes");
  if (Status s = validate_object_name(request.project_name, "projectName"); !s.ok()) return s;
  if (!detail::is_uuid(request.volume_id))
    return Status::InvalidArgument("volumeId: must be the UUID of a managed volume");
  if (!request.name.empty()) {
    if (Status s = validate_object_name(request.name, "name"); !s.ok()) return s;
  }
  if (Status s = check_description_metadata(request); !s.ok()) return s;
  auto b = impl_->backend_locked(cluster.str());
  if (!b.ok()) return b.status();
  auto vol = (*b)->get_volume(request.project_name, request.volume_id);
  if (!vol.ok()) return vol.status();
  if (vol->state != VolumeState::kAvailable)
    return Status::FailedPrecondition("volumeId: volume " + vol->id + " is " +
                                      std::string(to_string(vol->state)));
  auto all = (*b)->list_manageable_snapshots();
  if (!all.ok()) return all.status();
  if (Status s = overlay_records(*impl_->store, *all); !s.ok()) return s;
  auto it = safe_candidate(*all, request.reference, cluster.str(), "snapshot");
  if (!it.ok()) return it.status();
  // A local file names its volume by the file it was adopted from; a cluster whose snapshots
  // keep their ids checks the volume itself.
  if (it->object_id.empty() && it->source_reference != vol->adopted_from)
    return Status::InvalidArgument("volumeId: " + request.reference + " is a snapshot of " +
                                   it->source_reference + ", which volume " + vol->id +
                                   " was not adopted from");
  const std::string snapshot_id = it->object_id.empty() ? impl_->env->new_uuid() : it->object_id;
  std::string name = request.name;
  if (!name.empty()) {
    auto other = (*b)->find_snapshot(request.project_name, name);
    if (other.ok() && other->id != snapshot_id)
      return Status::AlreadyExists("name: a snapshot named " + name +
                                   " already exists in project " + request.project_name);
  } else {
    // After the part of the file name past the '@' when that is a valid, free name.
    const std::string own = request.reference.substr(request.reference.rfind('@') + 1);
    const bool usable = request.display_name.empty() && validate_object_name(own, "name").ok();
    name = usable && !(*b)->find_snapshot(request.project_name, own).ok()
               ? own
               : "snapshot-" + snapshot_id;
  }
  detail::ManageWork w;
  w.cluster_id = cluster.str();
  w.reference = request.reference;
  w.project_name = request.project_name;
  w.name = name;
  w.volume_id = vol->id;
  w.snapshot_id = snapshot_id;
  w.fingerprint = it->fingerprint;
  auto id = submit_recorded(
      *impl_, kManageSnapshot, kSnapshotRecords, w, snapshot_id, name, request,
      {"cluster:" + w.cluster_id, "volume:" + w.volume_id, "snapshot:" + snapshot_id});
  if (!id.ok()) return id.status();
  return ManageStarted{*id, w.volume_id, snapshot_id};
}

Result<ManagedSnapshot> Volumes::managed_snapshot(const std::string& snapshot_id) const {
  auto scope = impl_->caller();
  std::string volume_id;
  auto rec = read_record(*impl_->store, snapshot_id, kSnapshotRecords, &volume_id);
  if (!rec.ok()) return rec.status();
  if (!*rec) return Status::NotFound("snapshot " + snapshot_id + " not found");
  const ManagedVolume& r = **rec;
  ManagedSnapshot m{r.id,
                    r.cluster_id,
                    r.project_name,
                    r.name,
                    r.reference,
                    volume_id,
                    r.display_name,
                    r.description,
                    r.metadata,
                    r.workflow_id,
                    "",
                    r.created_at,
                    SnapshotState::kCreating,
                    std::nullopt};
  auto wf = impl_->engine->get(m.workflow_id);
  if (!wf.ok()) return wf.status();
  if (wf->state == WorkflowState::kCompleted) {
    auto b = impl_->backend_locked(m.cluster_id);
    if (!b.ok()) return b.status();
    auto sn = (*b)->get_snapshot(m.project_name, m.id);
    if (!sn.ok()) return sn.status();
    if (sn->adopted_from.empty()) {
      // A cluster that cannot mark a snapshot (Lightbits) adopted it as it was.
      sn->adopted_from = m.reference;
      sn->adopted_size = sn->size;
    }
    m.state = sn->state;
    m.snapshot = std::move(sn).value();
  } else if (is_terminal(wf->state)) {
    m.state = SnapshotState::kFailed;
    m.failure = wf->msg;
  }
  return m;
}

Result<std::string> Volumes::unmanage_snapshot(const SnapshotRef& ref) {
  const std::string& cid = ref.cluster.str();
  auto rec = read_record(*impl_->store, ref.id, kSnapshotRecords);
  if (!rec.ok()) return rec.status();
  if (*rec && (**rec).cluster_id == cid && (**rec).project_name == ref.project) {
    auto wf = impl_->engine->get((**rec).workflow_id);
    if (!wf.ok()) return wf.status();
    if (!is_terminal(wf->state))
      return Status::FailedPrecondition("snapshot " + ref.id + " is being adopted (workflow " +
                                        wf->id + "); wait for it or cancel it");
    if (wf->state != WorkflowState::kCompleted) {
      auto b = impl_->backend_locked(cid);
      if (!b.ok()) return b.status();
      auto sn = (*b)->get_snapshot(ref.project, ref.id);
      if (!sn.ok() && sn.status().code() != Code::kNotFound) return sn.status();
      if (!sn.ok() || !taken_anyway(sn->labels, wf->id)) {
        if (Status s = drop_record(*impl_->store, ref.id, kSnapshotRecords, wf->id); !s.ok())
          return s;
        return (**rec).reference;
      }
    }
  }
  auto where = impl_->claimed_call<Result<std::string>>(
      cid, "snapshot:" + ref.id, "unmanaged",
      [&](Backend& b) { return b.get_snapshot(ref.project, ref.id).status(); },
      [&] { return impl_->groups->check_snapshot_free(ref.id); },
      [&](Backend& b) { return b.unmanage_snapshot(ref.project, ref.id); });
  if (!where.ok()) return where;
  if (*rec) {
    if (Status s = drop_record(*impl_->store, ref.id, kSnapshotRecords, (**rec).workflow_id);
        !s.ok())
      return s;
  }
  return where;
}

namespace detail {

Result<Volume> with_record(ServiceImpl& im, const VolumeRef& ref, Result<Volume> found) {
  if (!found.ok() && found.status().code() != Code::kNotFound) return found;
  auto rec = read_record(*im.store, ref.id);
  if (!rec.ok()) return rec.status();
  if (!*rec || (**rec).cluster_id != ref.cluster.str() || (**rec).project_name != ref.project)
    return found;
  const ManagedVolume& m = **rec;
  auto wf = im.engine->get(m.workflow_id);
  if (!wf.ok()) return wf.status();
  if (found.ok()) {
    // Adopted: with what the request said. Not (yet): the cluster's own object (a Lightbits
    // volume keeps its id while it is a candidate).
    if (wf->state == WorkflowState::kCompleted) {
      found->description = m.description;
      found->metadata = m.metadata;
    }
    return found;
  }
  // Not on the cluster: being adopted, or the adoption failed.
  if (wf->state == WorkflowState::kCompleted) return found;
  Volume v;
  v.id = m.id;
  v.name = m.name;
  v.project_name = m.project_name;
  v.cluster_id = m.cluster_id;
  v.size = 0;
  v.state = is_terminal(wf->state) ? VolumeState::kFailed : VolumeState::kCreating;
  v.created_at = m.created_at;
  v.adopted_from = m.reference;
  v.description = m.description;
  v.metadata = m.metadata;
  return v;
}

Status forget_record(ServiceImpl& im, const std::string& volume_id) {
  return drop_record(*im.store, volume_id);
}

Status forget_snapshot_record(ServiceImpl& im, const std::string& snapshot_id) {
  return drop_record(*im.store, snapshot_id, kSnapshotRecords);
}

}  // namespace detail

}  // namespace dmscore
