#pragma once
// The on-disk layout of a local cluster (see local_backend.hpp): file names, sidecars, the
// metadata schema, and the scan of its data folder that opening and repair share.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/result.hpp"
#include "dmscore/store.hpp"

namespace dmscore::detail::local {

inline constexpr const char* kFormat = "dmscore-local-1";
inline constexpr const char* kSidecarFormat = "dmscore-object-1";

enum class Kind { kVolume, kSnapshot };

// What a sidecar says of its data file: enough to rebuild the object's metadata row.
struct ObjectMeta {
  Kind kind = Kind::kVolume;
  std::string cluster_id;
  std::string id;
  std::string project;
  std::string name;
  std::uint64_t size = 0;
  int replica_count = 1;
  int sector_size = 4096;
  bool compression = false;
  // A volume's source snapshot (thin clone), or a snapshot's source volume.
  std::string source_id;
  std::string description;
  std::int64_t created_ms = 0;
  // A volume still being filled by a workflow (stays Creating until it is marked Available).
  bool held = false;
  std::map<std::string, std::string> labels;
};

std::string sidecar_json(const ObjectMeta& m);
// INVALID_ARGUMENT saying what is wrong with the text.
Result<ObjectMeta> parse_sidecar(const std::string& text);

// "<id>.vol" / "<id>.snap".
std::string data_name(Kind kind, const std::string& id);
inline std::string sidecar_name(Kind kind, const std::string& id) {
  return data_name(kind, id) + ".meta";
}
inline std::string temp_name(Kind kind, const std::string& id) {
  return data_name(kind, id) + ".tmp";
}
inline const char* kind_name(Kind kind) { return kind == Kind::kVolume ? "volume" : "snapshot"; }

// What a name in data/ is.
struct DataEntry {
  enum class Type { kData, kSidecar, kTemp, kOther };
  Type type = Type::kOther;
  Kind kind = Kind::kVolume;
  std::string id;  // the object id, for everything but kOther
};
DataEntry classify(const std::string& file_name);

// One file or directory found in data/.
struct Found {
  std::string name;
  DataEntry entry;
  bool regular = false;
};
// Lists data/ (names only; nothing is read). UNAVAILABLE when it cannot be read.
Result<std::vector<Found>> scan(const std::string& data_dir);

// The schema of cluster.db.
const std::vector<Migration>& migrations();

}  // namespace dmscore::detail::local
