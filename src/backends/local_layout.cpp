#include "backends/local_layout.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

#include "base/codec.hpp"
#include "base/util.hpp"

namespace dmscore::detail::local {

namespace json = boost::json;

std::string data_name(Kind kind, const std::string& id) {
  return id + (kind == Kind::kVolume ? ".vol" : ".snap");
}

std::string sidecar_json(const ObjectMeta& m) {
  json::object labels;
  for (const auto& [k, v] : m.labels) labels[k] = v;
  json::object o{{"format", kSidecarFormat},
                 {"kind", kind_name(m.kind)},
                 {"clusterId", m.cluster_id},
                 {"id", m.id},
                 {"projectName", m.project},
                 {"name", m.name},
                 {"size", std::to_string(m.size)},
                 {"replicaCount", m.replica_count},
                 {"sectorSize", m.sector_size},
                 {"compression", m.compression},
                 {m.kind == Kind::kVolume ? "sourceSnapshotId" : "sourceVolumeId", m.source_id},
                 {"createdAt", m.created_ms},
                 {"labels", std::move(labels)}};
  if (m.kind == Kind::kVolume) o["held"] = m.held;
  if (m.kind == Kind::kSnapshot) o["description"] = m.description;
  return json::serialize(o) + "\n";
}

Result<ObjectMeta> parse_sidecar(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return Status::InvalidArgument("not a JSON object");
  const json::object& o = v.as_object();
  auto str = [&](const char* k) -> std::optional<std::string> {
    auto* f = o.if_contains(k);
    if (!f || !f->is_string()) return std::nullopt;
    return std::string(f->as_string());
  };
  auto num = [&](const char* k) -> std::optional<std::int64_t> {
    auto* f = o.if_contains(k);
    if (!f || !f->is_int64()) return std::nullopt;
    return f->as_int64();
  };
  auto flag = [&](const char* k) -> std::optional<bool> {
    auto* f = o.if_contains(k);
    if (!f || !f->is_bool()) return std::nullopt;
    return f->as_bool();
  };
  if (str("format") != std::string(kSidecarFormat))
    return Status::InvalidArgument("unknown format");
  ObjectMeta m;
  auto kind = str("kind");
  if (kind == std::string("volume"))
    m.kind = Kind::kVolume;
  else if (kind == std::string("snapshot"))
    m.kind = Kind::kSnapshot;
  else
    return Status::InvalidArgument("kind: must be volume or snapshot");
  auto cluster = str("clusterId"), id = str("id"), project = str("projectName"), name = str("name"),
       size = str("size");
  auto replica = num("replicaCount"), sector = num("sectorSize"), created = num("createdAt");
  auto compression = flag("compression");
  auto source = str(m.kind == Kind::kVolume ? "sourceSnapshotId" : "sourceVolumeId");
  if (!cluster || !id || !project || !name || !size || !replica || !sector || !created ||
      !compression || !source)
    return Status::InvalidArgument("a required field is missing or of the wrong type");
  if (!is_uuid(*id)) return Status::InvalidArgument("id: not a UUID");
  if (!validate_object_name(*name, "name").ok() || !validate_object_name(*project, "project").ok())
    return Status::InvalidArgument("name or projectName: not a valid name");
  std::uint64_t bytes = 0;
  for (char c : *size) {
    if (c < '0' || c > '9' || bytes > (std::uint64_t{1} << 50)) {
      return Status::InvalidArgument("size: not a byte count");
    }
    bytes = bytes * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (size->empty() || bytes == 0) return Status::InvalidArgument("size: not a byte count");
  if (*replica < 1 || *replica > 3 || (*sector != 512 && *sector != 4096))
    return Status::InvalidArgument("replicaCount or sectorSize: out of range");
  m.cluster_id = *cluster;
  m.id = *id;
  m.project = *project;
  m.name = *name;
  m.size = bytes;
  m.replica_count = static_cast<int>(*replica);
  m.sector_size = static_cast<int>(*sector);
  m.compression = *compression;
  m.source_id = *source;
  m.created_ms = *created;
  if (m.kind == Kind::kVolume) m.held = flag("held").value_or(false);
  if (m.kind == Kind::kSnapshot) m.description = str("description").value_or("");
  if (auto* l = o.if_contains("labels"); l && l->is_object()) {
    for (const auto& [k, val] : l->as_object())
      if (val.is_string()) m.labels.emplace(std::string(k), std::string(val.as_string()));
  }
  if (!validate_labels(m.labels, "labels").ok()) return Status::InvalidArgument("labels: invalid");
  return m;
}

DataEntry classify(const std::string& file_name) {
  DataEntry e;
  if (file_name.size() < 36 + 4) return e;
  std::string id = file_name.substr(0, 36);
  if (!is_uuid(id)) return e;
  std::string rest = file_name.substr(36);
  static const struct {
    const char* suffix;
    Kind kind;
    DataEntry::Type type;
  } kNames[] = {
      {".vol", Kind::kVolume, DataEntry::Type::kData},
      {".snap", Kind::kSnapshot, DataEntry::Type::kData},
      {".vol.meta", Kind::kVolume, DataEntry::Type::kSidecar},
      {".snap.meta", Kind::kSnapshot, DataEntry::Type::kSidecar},
      {".vol.tmp", Kind::kVolume, DataEntry::Type::kTemp},
      {".snap.tmp", Kind::kSnapshot, DataEntry::Type::kTemp},
      // A sidecar's own temporary file (write_file_atomic).
      {".vol.meta.tmp", Kind::kVolume, DataEntry::Type::kTemp},
      {".snap.meta.tmp", Kind::kSnapshot, DataEntry::Type::kTemp},
  };
  for (const auto& n : kNames) {
    if (rest == n.suffix) {
      e.type = n.type;
      e.kind = n.kind;
      e.id = id;
      return e;
    }
  }
  return e;
}

Result<std::vector<Found>> scan(const std::string& data_dir) {
  std::vector<Found> out;
  DIR* d = ::opendir(data_dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return Status::Unavailable("cannot read " + data_dir + ": " + std::strerror(errno));
  }
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    bool regular = ::lstat((data_dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode);
    out.push_back({name, classify(name), regular});
  }
  ::closedir(d);
  return out;
}

const std::vector<Migration>& migrations() {
  // Never destroyed: a workflow thread may still open a store while exit() runs the static
  // destructors (an embedder that exits without closing its Service).
  static const auto& kMigrations = *new std::vector<Migration>{
      {1, R"sql(
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
)sql"},
      {2, R"sql(
ALTER TABLE volumes ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE snapshots ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
)sql"},
      // Adopted volumes: where each was found and its size then; and the intent of giving one
      // back (the path, relative to the cluster directory, its file is being moved to).
      {3, R"sql(
ALTER TABLE volumes ADD COLUMN adopted_from TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN adopted_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN releasing_to TEXT NOT NULL DEFAULT '';
)sql"},
      // The same for adopted snapshots.
      {4, R"sql(
ALTER TABLE snapshots ADD COLUMN adopted_from TEXT NOT NULL DEFAULT '';
ALTER TABLE snapshots ADD COLUMN adopted_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN releasing_to TEXT NOT NULL DEFAULT '';
)sql"},
  };
  return kMigrations;
}

}  // namespace dmscore::detail::local
