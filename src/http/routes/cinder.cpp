// OpenStack Cinder's v3 dialect, so that OpenStack tooling (python-cinderclient, Horizon)
// adopts and gives back volumes unchanged: the manageable-volume lists and manage requests
// (/v3/{project_id}/manageable_volumes and the older os-volume-manage beside them), the volume
// they make read back (/v3/{project_id}/volumes/{id}), os-unmanage, and the version document
// clients read first. Paths, snake_case, status codes, fault bodies, microversions and messages
// follow Cinder; the work is the same library calls the native routes make.
//
// A Cinder host names a cluster: "host@backend#pool" with backend = the cluster's name or id and
// pool = the project (default: the URL's project_id); a bare "name" or "name#pool" works too.

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <map>
#include <regex>

#include "base/pytext.hpp"
#include "base/util.hpp"
#include "http/route_table.hpp"

namespace dmscore::http::routing {

namespace {

using dmscore::detail::python_repr;
using dmscore::detail::python_str;

constexpr int kMaxMinor = 71;  // Cinder's _MAX_API_VERSION 3.71
constexpr int kManageExistingList = 8;
constexpr int kVolumeMigrateCluster = 16;
constexpr int kManageExistingCluster = 17;
constexpr const char* kMalformed =
    "The server could not comply with the request since\r\nit is either malformed or "
    "otherwise incorrect.\r\n";
constexpr const char* kNotFound = "The resource could not be found.";
constexpr const char* kUnmanageState =
    "Invalid volume: Volume status must be available or error or error_restoring or "
    "error_extending or error_managing and must not be migrating, attached, belong to a group, "
    "have snapshots, awaiting a transfer, or be disassociated from snapshots after volume "
    "transfer.";
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

// An error at Cinder's HTTP status.
Status fail(Call& c, int http, const std::string& message) {
  c.error_status = http;
  switch (http) {
    case 404:
      return Status::NotFound(message);
    case 403:
      return Status::PermissionDenied(message);
    case 409:
      return Status::AlreadyExists(message);
    case 500:
      return Status::Internal(message);
    default:
      return Status::InvalidArgument(message);
  }
}

std::string strip(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// The request's microversion (minor of 3.x), read as Cinder's Request.set_api_version_request
// does; the answer's version headers are set here.
Result<int> api_version(Call& c) {
  std::string_view h = c.req.header("OpenStack-API-Version");
  int minor = 0;
  if (!h.empty()) {
    std::optional<std::string> element;
    std::string rest(h);
    for (std::size_t pos = 0; pos <= rest.size();) {
      std::size_t comma = rest.find(',', pos);
      if (comma == std::string::npos) comma = rest.size();
      std::string e = rest.substr(pos, comma - pos);
      if (e.find("volume") != std::string::npos) {
        element = e;
        break;
      }
      pos = comma + 1;
    }
    if (!element) return fail(c, 400, kMalformed);
    std::vector<std::string> words;
    std::istringstream in(*element);
    for (std::string w; in >> w;) words.push_back(w);
    if (words.size() != 2)
      return fail(c, 500,
                  "The server has either erred or is incapable of performing\r\nthe requested "
                  "operation.\r\n");
    const std::string& v = words[1];
    if (v == "latest") {
      minor = kMaxMinor;
    } else {
      // ^([1-9]\d*)\.([1-9]\d*|0)$, by hand: no regex over what a client sends. A number too
      // long to hold is above the maximum, as Cinder's range check finds.
      const auto dot = v.find('.');
      auto number = [](std::string_view d) -> std::optional<std::uint64_t> {
        if (d.empty() || (d.size() > 1 && d[0] == '0')) return std::nullopt;
        for (char ch : d)
          if (ch < '0' || ch > '9') return std::nullopt;
        std::uint64_t n = UINT64_MAX;
        std::from_chars(d.data(), d.data() + d.size(), n);  // out of range: left at the maximum
        return n;
      };
      const auto major =
          dot == std::string::npos ? std::nullopt : number(std::string_view(v).substr(0, dot));
      const auto mi =
          dot == std::string::npos ? std::nullopt : number(std::string_view(v).substr(dot + 1));
      if (!major || !mi || *major == 0)
        return fail(c, 400,
                    "API Version String " + v.substr(0, 64) +
                        " is of invalid format. Must be of format MajorNum.MinorNum.");
      if (*major != 3 || *mi > static_cast<std::uint64_t>(kMaxMinor)) {
        c.headers.emplace_back("OpenStack-API-Version", "volume " + v.substr(0, 64));
        c.headers.emplace_back("Vary", "OpenStack-API-Version");
        return fail(c, 406,
                    "Version " + v.substr(0, 64) +
                        " is not supported by the API. Minimum is 3.0 and maximum is 3." +
                        std::to_string(kMaxMinor) + ".");
      }
      minor = static_cast<int>(*mi);
    }
  }
  c.headers.emplace_back("OpenStack-API-Version", "volume 3." + std::to_string(minor));
  c.headers.emplace_back("Vary", "OpenStack-API-Version");
  return minor;
}

// How Cinder's messages read the library's: "<param>: <message>" becomes the message, with
// InvalidInput's prefix where Cinder raises that.
std::string cinder_text(const Status& s) {
  std::string m = s.message();
  const auto colon = m.find(": ");
  const std::string param = colon == std::string::npos ? "" : m.substr(0, colon);
  if (param == "marker") return "Invalid input received: " + m.substr(colon + 2);
  if (param == "sort" || param == "limit" || param == "offset") return m.substr(colon + 2);
  return m;
}

// ---- where: host and cluster ----

struct Place {
  Cluster cluster;
  std::string project;
};

// The backend and pool of a Cinder host ("host@backend#pool").
std::pair<std::string, std::string> backend_and_pool(const std::string& host) {
  std::string h = host, pool;
  if (auto hash = h.find('#'); hash != std::string::npos) {
    pool = h.substr(hash + 1);
    h = h.substr(0, hash);
  }
  if (auto at = h.find('@'); at != std::string::npos) h = h.substr(at + 1);
  return {h, pool};
}

// get_cluster_host: exactly one of host and cluster (cluster only from `cluster_minor`).
Result<std::pair<std::string, std::string>> host_or_cluster(Call& c, int minor, int cluster_minor,
                                                            const std::string& host,
                                                            const std::string& cluster) {
  const bool clusters = minor >= cluster_minor;
  const std::string cl = clusters ? cluster : "";
  if (cl.empty() == host.empty())
    return fail(c, 400,
                std::string("Invalid input received: ") +
                    (clusters ? "One and only one of cluster and host must be set."
                              : "Host field is missing."));
  return std::pair{host, cl};
}

// The cluster a host or cluster names, and the project. `listing`: Cinder's 404 of a list;
// otherwise the 400 of a manage request.
Result<Place> place(Call& c, Service& svc, const std::string& host, const std::string& cluster,
                    bool listing) {
  const std::string& given = host.empty() ? cluster : host;
  auto [backend, pool] = backend_and_pool(given);
  auto all = svc.clusters().list();
  if (!all.ok()) return all.status();
  const Cluster* found = nullptr;
  for (const auto& cl : *all)
    if (cl.id == backend || cl.name == backend) found = &cl;
  if (!found) {
    if (listing)
      return fail(c, 404,
                  host.empty() ? std::string("Service cinder-volume could not be found.")
                               : "Service cinder-volume could not be found on host " +
                                     given.substr(0, given.find('#')) + ".");
    return fail(
        c, 400,
        host.empty() ? "Cluster '" + cluster + "' not found" : "Host '" + host + "' not found");
  }
  if (found->access_status != ConnectionStatus::kConnected)
    return fail(c, 400, "Service is unavailable at this time.");
  Place p{*found, pool.empty() ? c.params.path["projectId"] : pool};
  return p;
}

// ---- the manage body, checked as Cinder's JSON schema is (the first error, in its order) ----

std::string schema_error(const std::string& field, const json::value& value,
                         const std::string& message) {
  return "Invalid input for field/attribute " + field + ". Value: " + python_str(value) + ". " +
         message;
}

std::string unexpected(std::vector<std::string> extra) {
  std::sort(extra.begin(), extra.end());
  std::string list;
  for (const auto& e : extra) list += (list.empty() ? "" : ", ") + python_repr(json::string(e));
  return "Additional properties are not allowed (" + list +
         (extra.size() == 1 ? " was unexpected)" : " were unexpected)");
}

// Python's len() of a str: code points.
std::size_t py_len(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

// {'type': ['string', 'null'], 'minLength': min, 'maxLength': 255}
std::string string_or_null(const std::string& field, const json::value& v, std::size_t min) {
  if (v.is_null()) return "";
  if (!v.is_string())
    return schema_error(field, v, python_repr(v) + " is not of type 'string', 'null'");
  const std::size_t n = py_len(v.get_string());
  if (n < min) return schema_error(field, v, python_repr(v) + " should be non-empty");
  if (n > 255) return schema_error(field, v, python_repr(v) + " is too long");
  return "";
}

const std::vector<json::value>& bootable_values() {
  static const auto& kValues = *new std::vector<json::value>{
      true,  "True",  "TRUE",  "true",  "1", "ON",  "On",  "on",  "YES", "Yes", "yes", "y", "t",
      false, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO",  "No",  "no",  "n", "f"};
  return kValues;
}

bool truthy(const json::value& v) {
  if (v.is_bool()) return v.get_bool();
  for (std::size_t i = 0; i < 13; ++i)
    if (bootable_values()[i] == v) return true;
  return false;
}

// The manage request's `volume`, checked; "" when it passes.
std::string check_manage_body(const json::value& body, bool cluster_allowed) {
  if (!body.is_object()) return python_repr(body) + " is not of type 'object'";
  const json::object& top = body.get_object();
  if (const json::value* vol = top.if_contains("volume")) {
    if (!vol->is_object())
      return schema_error("volume", *vol, python_repr(*vol) + " is not of type 'object'");
    const json::object& o = vol->get_object();
    static const std::regex kHost(R"(^[a-zA-Z0-9\-._#@:/+\[\]]*$)");
    static const std::regex kMetaKey(R"(^[a-zA-Z0-9\-_:. /]{1,255}$)");
    for (const char* k : {"description", "availability_zone", "bootable", "volume_type", "name",
                          "host", "ref", "metadata", "cluster"}) {
      const json::value* v = o.if_contains(k);
      if (!v) continue;
      const std::string key = k;
      std::string e;
      if (key == "cluster" && !cluster_allowed) continue;
      if (key == "description") {
        e = string_or_null(key, *v, 0);
        if (e.empty() && v->is_string())
          for (unsigned char ch : std::string(v->get_string()))
            if (ch < 0x20 || ch == 0x7f)
              e = schema_error(key, *v,
                               python_repr(*v) + " does not match the printable text pattern");
      } else if (key == "availability_zone" || key == "volume_type" || key == "name" ||
                 key == "cluster") {
        e = string_or_null(key, *v, 0);
      } else if (key == "bootable") {
        if (!v->is_bool() && !v->is_string())
          e = schema_error(key, *v, python_repr(*v) + " is not of type 'boolean', 'string'");
        else if (std::find(bootable_values().begin(), bootable_values().end(), *v) ==
                 bootable_values().end()) {
          std::string list;
          for (const auto& b : bootable_values())
            list += (list.empty() ? "" : ", ") + python_repr(b);
          e = schema_error(key, *v, python_repr(*v) + " is not one of [" + list + "]");
        }
      } else if (key == "host") {
        e = string_or_null(key, *v, 1);
        if (e.empty() && v->is_string() && !std::regex_match(std::string(v->get_string()), kHost))
          e = schema_error(key, *v,
                           python_repr(*v) + " does not match '^[a-zA-Z0-9-._#@:/+\\\\[\\\\]]*$'");
      } else if (key == "ref") {
        if (!v->is_object() && !v->is_string())
          e = schema_error(key, *v, python_repr(*v) + " is not of type 'object', 'string'");
      } else if (key == "metadata" && !v->is_null()) {
        if (!v->is_object()) {
          e = schema_error(key, *v, python_repr(*v) + " is not of type 'object', 'null'");
        } else {
          for (const auto& [mk, mv] : v->get_object()) {
            if (!std::regex_match(std::string(mk), kMetaKey)) continue;
            if (!mv.is_string()) {
              e = schema_error(std::string(mk), mv, python_repr(mv) + " is not of type 'string'");
              break;
            }
            if (py_len(mv.get_string()) > 255) {
              e = schema_error(std::string(mk), mv, python_repr(mv) + " is too long");
              break;
            }
          }
          if (e.empty()) {
            std::string bad;
            for (const auto& [mk, mv] : v->get_object())
              if (!std::regex_match(std::string(mk), kMetaKey))
                bad += (bad.empty() ? "" : ", ") + python_repr(json::string(mk));
            if (!bad.empty())
              e = schema_error(key, *v,
                               bad + (bad.find("', '") == std::string::npos ? " does" : " do") +
                                   " not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'");
          }
        }
      }
      if (!e.empty()) return e;
    }
    if (!o.contains("ref")) return schema_error("volume", *vol, "'ref' is a required property");
    std::vector<std::string> extra;
    for (const auto& [k, v] : o) {
      const std::string key(k);
      if (key != "description" && key != "availability_zone" && key != "bootable" &&
          key != "volume_type" && key != "name" && key != "host" && key != "ref" &&
          key != "metadata" && !(cluster_allowed && key == "cluster"))
        extra.push_back(key);
    }
    if (!extra.empty()) return schema_error("volume", *vol, unexpected(extra));
  } else {
    return "'volume' is a required property";
  }
  std::vector<std::string> extra;
  for (const auto& [k, v] : top)
    if (k != "volume") extra.emplace_back(k);
  if (!extra.empty()) return unexpected(extra);
  return "";
}

std::string text_of(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : "";
}

// ---- the views ----

json::value null_or(const std::string& s) { return s.empty() ? json::value() : json::value(s); }

// oslo's to_primitive of a naive UTC datetime: 2026-12-05T19:35:20.123000
std::string cinder_time(Env::SystemTime t) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(us % 1000000));
  return buf;
}

std::string status_text(VolumeState s) {
  switch (s) {
    case VolumeState::kCreating:
      return "creating";
    case VolumeState::kAvailable:
      return "available";
    case VolumeState::kUpdating:
      return "extending";
    case VolumeState::kDeleting:
      return "deleting";
    case VolumeState::kFailed:
      return "error";
  }
  return "error";
}

std::string base_url(const Call& c) {
  // The client's Host, when it is one (a name or address and a port): it is echoed into links.
  std::string host(c.req.header("Host"));
  const bool sane =
      !host.empty() && host.size() <= 255 && std::all_of(host.begin(), host.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ||
               ch == ':' || ch == '[' || ch == ']';
      });
  if (!sane) host = "localhost";
  return std::string(c.req.secure ? "https://" : "http://") + host;
}

// Cinder's legacy_detail view of a managed volume, keys in its order.
json::object legacy_view(const Call& c, const ManagedVolume& m, const std::string& project_id,
                         bool admin) {
  json::object meta;
  for (const auto& [k, v] : m.metadata) meta[k] = v;
  if (m.volume && !m.volume->adopted_from.empty()) {
    // Where it came from and how large it was then (its size is rounded up to whole GiB).
    meta["adopted_from"] = m.volume->adopted_from;
    meta["adopted_size"] = std::to_string(m.volume->adopted_size);
  }
  const std::string base = base_url(c);
  json::object v{
      {"id", m.id},
      {"status", status_text(m.state)},
      {"size", m.volume ? m.volume->size / kGiB + (m.volume->size % kGiB != 0) : 0},
      {"availability_zone", m.availability_zone.empty() ? "nova" : m.availability_zone},
      {"created_at", cinder_time(m.created_at)},
      {"updated_at", nullptr},
      {"name", null_or(m.display_name)},
      {"description", null_or(m.description)},
      {"volume_type", "__DEFAULT__"},
      {"snapshot_id", nullptr},
      {"source_volid", nullptr},
      {"metadata", std::move(meta)},
      {"links", json::array{json::object{{"rel", "self"},
                                         {"href", base + "/v3/" + project_id + "/volumes/" + m.id}},
                            json::object{{"rel", "bookmark"},
                                         {"href", base + "/" + project_id + "/volumes/" + m.id}}}},
      {"user_id", nullptr},
      {"bootable", m.bootable ? "true" : "false"},
      {"encrypted", false},
      {"replication_status", nullptr},
      {"consistencygroup_id", nullptr},
      {"multiattach", false},
      {"attachments", json::array()},
  };
  if (admin) v["migration_status"] = nullptr;
  return v;
}

json::object manageable_view(const ManageableObject& m, bool detail, bool snapshot) {
  json::object o{{"reference", json::object{{"source-name", m.reference}}},
                 {"size", size_in_gib(m.size)},
                 {"safe_to_manage", m.safe_to_manage}};
  if (detail) {
    o["reason_not_safe"] = null_or(m.reason_not_safe);
    if (snapshot) o["extra_info"] = null_or(m.extra_info);
    o["cinder_id"] = null_or(m.managed_id);
    if (!snapshot) o["extra_info"] = null_or(m.extra_info);
  }
  if (snapshot) o["source_reference"] = json::object{{"source-name", m.source_reference}};
  return o;
}

std::string snapshot_status_text(SnapshotState s) {
  switch (s) {
    case SnapshotState::kCreating:
      return "creating";
    case SnapshotState::kAvailable:
      return "available";
    case SnapshotState::kDeleting:
      return "deleting";
    case SnapshotState::kFailed:
      return "error";
  }
  return "error";
}

// Cinder's snapshot view, keys in its order; `minor` adds what later microversions show.
json::object snapshot_view(const ManagedSnapshot& m, const std::string& project_id, int minor) {
  json::object meta;
  for (const auto& [k, v] : m.metadata) meta[k] = v;
  if (m.snapshot && !m.snapshot->adopted_from.empty()) {
    meta["adopted_from"] = m.snapshot->adopted_from;
    meta["adopted_size"] = std::to_string(m.snapshot->adopted_size);
  }
  json::object v{{"id", m.id},
                 {"created_at", cinder_time(m.created_at)},
                 {"updated_at", nullptr},
                 {"name", null_or(m.display_name.empty() ? m.name : m.display_name)},
                 {"description", null_or(m.description)},
                 {"volume_id", m.volume_id},
                 {"status", snapshot_status_text(m.state)},
                 {"size", m.snapshot ? size_in_gib(m.snapshot->size) : 0},
                 {"metadata", std::move(meta)}};
  if (minor >= 14) v["group_snapshot_id"] = nullptr;
  if (minor >= 41) v["user_id"] = nullptr;
  if (minor >= 65) v["consumes_quota"] = true;
  v["os-extended-snapshot-attributes:progress"] =
      m.state == SnapshotState::kAvailable ? "100%" : "0%";
  v["os-extended-snapshot-attributes:project_id"] = project_id;
  return v;
}

// A Cinder id as oslo's is_uuid_like reads it (any case, dashes or none, braces, urn:uuid:),
// in its canonical form; "" when it is none.
std::string canonical_uuid(std::string s) {
  for (const char* p : {"urn:", "uuid:"})
    if (s.rfind(p, 0) == 0) s = s.substr(std::string(p).size());
  std::string hex;
  for (char ch : s) {
    if (ch == '-' || ch == '{' || ch == '}') continue;
    if (!std::isxdigit(static_cast<unsigned char>(ch))) return "";
    hex += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  if (hex.size() != 32) return "";
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

// ---- the calls ----

R list_manageable(Call& c, Service& svc, bool detail, bool versioned, bool snapshots) {
  auto minor = api_version(c);
  if (!minor.ok()) return minor.status();
  if (versioned && *minor < kManageExistingList) return fail(c, 404, kNotFound);
  auto hc = host_or_cluster(c, *minor, kManageExistingCluster, query(c.params, "host"),
                            query(c.params, "cluster"));
  if (!hc.ok()) return hc.status();
  ManageableQuery q = manageable_query_of(c.params);
  // The paging and sort parameters are checked before the service is looked for; the marker
  // after, against the list.
  ManageableQuery no_marker = q;
  no_marker.marker.reset();
  if (auto pre = paginate_manageable({}, no_marker); !pre.ok())
    return fail(c, 400, cinder_text(pre.status()));
  auto where = place(c, svc, hc->first, hc->second, true);
  if (!where.ok()) return where.status();
  auto page = snapshots ? svc.volumes().list_manageable_snapshots(ClusterId(where->cluster.id), q)
                        : svc.volumes().list_manageable(ClusterId(where->cluster.id), q);
  if (!page.ok()) {
    if (page.status().code() == Code::kInvalidArgument)
      return fail(c, 400, cinder_text(page.status()));
    return page.status();
  }
  json::array a;
  for (const auto& m : *page) a.push_back(manageable_view(m, detail, snapshots));
  return json::value(
      json::object{{snapshots ? "manageable-snapshots" : "manageable-volumes", std::move(a)}});
}

// The reference a Cinder ref names: its source-name (else source-id), or the string itself.
Result<std::string> reference_of(Call& c, const json::value& ref) {
  if (ref.is_string()) return std::string(ref.get_string());
  if (ref.is_object()) {
    for (const char* k : {"source-name", "source-id"})
      if (const json::value* n = ref.get_object().if_contains(k))
        return n->is_string() ? std::string(n->get_string()) : python_str(*n);
  }
  return fail(c, 400,
              "Invalid input received: ref: must name the object as {\"source-name\": ...}");
}

R manage(Call& c, Service& svc, bool versioned) {
  auto minor = api_version(c);
  if (!minor.ok()) return minor.status();
  boost::system::error_code ec;
  json::value body = json::parse(c.req.body, ec);
  if (ec) return fail(c, 400, "Malformed request body");
  if (std::string e = check_manage_body(body, *minor >= kVolumeMigrateCluster); !e.empty())
    return fail(c, 400, e);
  if (versioned && *minor < kManageExistingList) return fail(c, 404, kNotFound);
  const json::object& v = body.at("volume").get_object();
  auto hc =
      host_or_cluster(c, *minor, kVolumeMigrateCluster, text_of(v, "host"), text_of(v, "cluster"));
  if (!hc.ok()) return hc.status();
  if (std::string vt = text_of(v, "volume_type"); !vt.empty() && vt != "__DEFAULT__")
    return fail(c, 400, "Invalid volume type: Cannot find requested '" + vt + "' volume type");
  auto where = place(c, svc, hc->first, hc->second, false);
  if (!where.ok()) return where.status();

  ManageRequest r;
  auto ref = reference_of(c, v.at("ref"));
  if (!ref.ok()) return ref.status();
  r.reference = *ref;
  r.project_name = where->project;
  r.display_name = strip(text_of(v, "name"));
  r.description = strip(text_of(v, "description"));
  r.availability_zone = text_of(v, "availability_zone");
  if (const json::value* b = v.if_contains("bootable")) r.bootable = truthy(*b);
  if (const json::value* md = v.if_contains("metadata"); md && md->is_object())
    for (const auto& [k, e] : md->get_object())
      r.metadata[std::string(k)] = std::string(e.get_string());
  auto started = svc.volumes().manage(ClusterId(where->cluster.id), r);
  if (!started.ok()) {
    const Status& s = started.status();
    if (s.code() == Code::kInvalidArgument &&
        s.message().find("is not safe to manage: already managed") != std::string::npos)
      return fail(c, 400,
                  "Invalid volume: Unable to manage existing volume. The volume is already "
                  "managed");
    if (s.code() == Code::kInvalidArgument || s.code() == Code::kAlreadyExists)
      return fail(c, 400, "Invalid input received: " + s.message());
    return s;
  }
  auto m = svc.volumes().managed(started->volume_id);
  if (!m.ok()) return m.status();
  c.status = 202;
  return json::value(json::object{{"volume", legacy_view(c, *m, c.params.path["projectId"],
                                                         c.principal.role == Role::kAdmin)}});
}

// The volume `id` the service adopted; Cinder's 404 otherwise.
Result<ManagedVolume> managed_volume(Call& c, Service& svc, const std::string& id) {
  auto m = svc.volumes().managed(id);
  if (!m.ok() && m.status().code() == Code::kNotFound)
    return fail(c, 404, "Volume " + id + " could not be found.");
  return m;
}

R show_volume(Call& c, Service& svc) {
  auto minor = api_version(c);
  if (!minor.ok()) return minor.status();
  const std::string id = c.params.path["volumeId"];
  auto m = managed_volume(c, svc, id);
  if (!m.ok()) return m.status();
  const bool admin = c.principal.role == Role::kAdmin;
  const std::string project = c.params.path["projectId"];
  json::object v = legacy_view(c, *m, project, admin);
  if (*minor >= 13) v["group_id"] = nullptr;
  if (*minor >= 21 && admin) v["provider_id"] = nullptr;
  if (*minor >= 48) {
    v["shared_targets"] = false;
    v["service_uuid"] = m->cluster_id;
  }
  if (*minor >= 61 && admin) v["cluster_name"] = nullptr;
  if (*minor >= 63) v["volume_type_id"] = nullptr;
  if (*minor >= 65) v["consumes_quota"] = true;
  v["os-vol-tenant-attr:tenant_id"] = project;
  if (admin) {
    std::string cluster_name = m->cluster_id;
    if (auto cl = svc.clusters().get(ClusterId(m->cluster_id)); cl.ok()) cluster_name = cl->name;
    v["os-vol-host-attr:host"] = "dms@" + cluster_name + "#" + m->project_name;
    v["os-vol-mig-status-attr:migstat"] = nullptr;
    v["os-vol-mig-status-attr:name_id"] = nullptr;
  }
  return json::value(json::object{{"volume", std::move(v)}});
}

// The snapshot manage body, checked as Cinder's schema is; "" when it passes.
std::string check_snapshot_body(const json::value& body) {
  if (!body.is_object()) return python_repr(body) + " is not of type 'object'";
  const json::object& top = body.get_object();
  const json::value* sn = top.if_contains("snapshot");
  if (!sn) return "'snapshot' is a required property";
  if (!sn->is_object())
    return schema_error("snapshot", *sn, python_repr(*sn) + " is not of type 'object'");
  const json::object& o = sn->get_object();
  static const std::regex kMetaKey(R"(^[a-zA-Z0-9\-_:. /]{1,255}$)");
  for (const char* k : {"description", "metadata", "name", "volume_id", "ref"}) {
    const json::value* v = o.if_contains(k);
    if (!v) continue;
    const std::string key = k;
    std::string e;
    if (key == "description" || key == "name") {
      e = string_or_null(key, *v, 0);
    } else if (key == "metadata" && !v->is_null()) {
      if (!v->is_object())
        return schema_error(key, *v, python_repr(*v) + " is not of type 'object', 'null'");
      for (const auto& [mk, mv] : v->get_object()) {
        if (!std::regex_match(std::string(mk), kMetaKey))
          return schema_error(
              key, *v,
              python_repr(json::string(mk)) +
                  " does not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'");
        if (!mv.is_string())
          return schema_error(std::string(mk), mv, python_repr(mv) + " is not of type 'string'");
        if (py_len(mv.get_string()) > 255)
          return schema_error(std::string(mk), mv, python_repr(mv) + " is too long");
      }
    } else if (key == "volume_id") {
      if (!v->is_string())
        return schema_error(key, *v, python_repr(*v) + " is not of type 'string'");
      if (canonical_uuid(std::string(v->get_string())).empty())
        return schema_error(key, *v, python_repr(*v) + " is not a 'uuid'");
    } else if (key == "ref") {
      if (!v->is_object() && !v->is_string() && !v->is_null())
        e = schema_error(key, *v, python_repr(*v) + " is not of type 'object', 'null', 'string'");
    }
    if (!e.empty()) return e;
  }
  for (const char* req : {"ref", "volume_id"})
    if (!o.contains(req))
      return schema_error("snapshot", *sn, "'" + std::string(req) + "' is a required property");
  std::vector<std::string> extra;
  for (const auto& [k, v] : o)
    if (k != "description" && k != "metadata" && k != "name" && k != "volume_id" && k != "ref")
      extra.emplace_back(k);
  if (!extra.empty()) return schema_error("snapshot", *sn, unexpected(extra));
  extra.clear();
  for (const auto& [k, v] : top)
    if (k != "snapshot") extra.emplace_back(k);
  if (!extra.empty()) return unexpected(extra);
  return "";
}

R manage_snapshot(Call& c, Service& svc, bool versioned) {
  auto minor = api_version(c);
  if (!minor.ok()) return minor.status();
  boost::system::error_code ec;
  json::value body = json::parse(c.req.body, ec);
  if (ec) return fail(c, 400, "Malformed request body");
  if (std::string e = check_snapshot_body(body); !e.empty()) return fail(c, 400, e);
  if (versioned && *minor < kManageExistingList) return fail(c, 404, kNotFound);
  const json::object& o = body.at("snapshot").get_object();
  const std::string volume_id = canonical_uuid(text_of(o, "volume_id"));
  auto vol = svc.volumes().managed(volume_id);
  if (!vol.ok()) {
    if (vol.status().code() == Code::kNotFound)
      return fail(c, 404, "Volume " + text_of(o, "volume_id") + " could not be found.");
    return vol.status();
  }
  ManageRequest r;
  auto ref = reference_of(c, o.at("ref"));
  if (!ref.ok()) return ref.status();
  r.reference = *ref;
  r.project_name = vol->project_name;
  r.volume_id = volume_id;
  r.display_name = strip(text_of(o, "name"));
  r.description = strip(text_of(o, "description"));
  if (const json::value* md = o.if_contains("metadata"); md && md->is_object())
    for (const auto& [k, e] : md->get_object())
      r.metadata[std::string(k)] = std::string(e.get_string());
  auto started = svc.volumes().manage_snapshot(ClusterId(vol->cluster_id), r);
  if (!started.ok()) {
    const Status& s = started.status();
    if (s.code() == Code::kInvalidArgument || s.code() == Code::kAlreadyExists ||
        s.code() == Code::kFailedPrecondition)
      return fail(c, 400, "Invalid input received: " + s.message());
    return s;
  }
  auto m = svc.volumes().managed_snapshot(started->snapshot_id);
  if (!m.ok()) return m.status();
  c.status = 202;
  json::object v = snapshot_view(*m, c.params.path["projectId"], 0);
  for (const char* k :
       {"os-extended-snapshot-attributes:progress", "os-extended-snapshot-attributes:project_id"})
    v.erase(k);
  return json::value(json::object{{"snapshot", std::move(v)}});
}

Result<ManagedSnapshot> managed_snapshot(Call& c, Service& svc, const std::string& id) {
  auto m = svc.volumes().managed_snapshot(id);
  if (!m.ok() && m.status().code() == Code::kNotFound)
    return fail(c, 404, "Snapshot " + id + " could not be found.");
  return m;
}

R show_snapshot(Call& c, Service& svc) {
  auto minor = api_version(c);
  if (!minor.ok()) return minor.status();
  auto m = managed_snapshot(c, svc, c.params.path["snapshotId"]);
  if (!m.ok()) return m.status();
  return json::value(
      json::object{{"snapshot", snapshot_view(*m, c.params.path["projectId"], *minor)}});
}

// The one action served: os-unmanage. `snapshot`: on a snapshot, else a volume.
R unmanage_action(Call& c, Service& svc, bool snapshot) {
  auto minor = api_version(c);
  if (!minor.ok()) return minor.status();
  boost::system::error_code ec;
  json::value body = json::parse(c.req.body, ec);
  if (ec || !body.is_object() || body.get_object().size() != 1)
    return fail(c, 400, "Malformed request body");
  const std::string action(body.get_object().begin()->key());
  if (action != "os-unmanage")
    return fail(c, 400,
                "There is no such action: " + action.substr(0, 255) +
                    ". Verify the request body and Content-Type header and try again.");
  const std::string id = c.params.path[snapshot ? "snapshotId" : "volumeId"];
  const std::string unknown = (snapshot ? "Snapshot " : "Volume ") + id + " could not be found.";
  Result<std::string> given = std::string();
  if (snapshot) {
    auto m = managed_snapshot(c, svc, id);
    if (!m.ok()) return m.status();
    given = svc.volumes().unmanage_snapshot({ClusterId(m->cluster_id), m->project_name, id});
  } else {
    auto m = managed_volume(c, svc, id);
    if (!m.ok()) return m.status();
    given = svc.volumes().unmanage({ClusterId(m->cluster_id), m->project_name, id});
  }
  if (!given.ok()) {
    if (given.status().code() == Code::kFailedPrecondition)
      return fail(c, 400,
                  snapshot ? "Invalid snapshot: Snapshot status must be available or error and "
                             "must not be part of a group."
                           : kUnmanageState);
    if (given.status().code() == Code::kNotFound) return fail(c, 404, unknown);
    return given.status();
  }
  c.status = 202;
  c.raw_body = "";
  c.raw_content_type = "text/html; charset=UTF-8";
  return json::value();
}

// GET /: the version document clients read before their first call.
R versions(Call& c) {
  c.status = 300;
  const std::string base = base_url(c);
  return json::value(json::object{
      {"versions",
       json::array{json::object{
           {"id", "v3.0"},
           {"status", "CURRENT"},
           {"version", "3." + std::to_string(kMaxMinor)},
           {"min_version", "3.0"},
           {"updated", "2023-08-31T00:00:00Z"},
           {"links", json::array{json::object{{"rel", "describedby"},
                                              {"type", "text/html"},
                                              {"href", "https://docs.openstack.org/"}},
                                 json::object{{"rel", "self"}, {"href", base + "/v3/"}}}},
           {"media-types", json::array{json::object{
                               {"base", "application/json"},
                               {"type", "application/vnd.openstack.volume+json;version=3"}}}}}}}});
}

}  // namespace

Response cinder_fault(const Status& s, int http_status) {
  // The status Cinder gives each kind of error, and the fault name of each status.
  static const auto& kStatus =
      *new std::map<Code, int>{{Code::kInvalidArgument, 400},   {Code::kFailedPrecondition, 400},
                               {Code::kOutOfRange, 400},        {Code::kUnauthenticated, 401},
                               {Code::kPermissionDenied, 403},  {Code::kNotFound, 404},
                               {Code::kAlreadyExists, 409},     {Code::kAborted, 409},
                               {Code::kResourceExhausted, 413}, {Code::kUnimplemented, 501},
                               {Code::kUnavailable, 503}};
  static const auto& kNames = *new std::map<int, const char*>{
      {400, "badRequest"},        {401, "unauthorized"}, {403, "forbidden"},
      {404, "itemNotFound"},      {405, "badMethod"},    {409, "conflictingRequest"},
      {413, "overLimit"},         {415, "badMediaType"}, {501, "notImplemented"},
      {503, "serviceUnavailable"}};
  int status = http_status;
  if (status == 0) {
    auto it = kStatus.find(s.code());
    status = it == kStatus.end() ? 500 : it->second;
  }
  auto named = kNames.find(status);
  const char* name = named == kNames.end() ? "computeFault" : named->second;
  json::object fault{{"code", status}, {"message", valid_utf8(s.message())}};
  Response r;
  if (status == 413 || status == 503) {
    fault["retryAfter"] = "1";
    r.headers.emplace_back("Retry-After", "1");
  }
  r.status = status;
  r.body = json::serialize(json::object{{name, std::move(fault)}});
  return r;
}

void add_cinder_routes(RouteTable& add, Service& svc) {
  add(
      "GET", "/", [](Call& c) { return versions(c); }, false);
  add.speaks(Dialect::kCinder);
  const std::string base = "/v3/{projectId}/";
  const std::string v3 = "/v3/{projectId}/manageable_volumes";
  const std::string ext = "/v3/{projectId}/os-volume-manage";
  const std::string v3s = "/v3/{projectId}/manageable_snapshots";
  const std::string exts = "/v3/{projectId}/os-snapshot-manage";
  auto cinder = [&add] {
    add.calls_clusters();
    add.speaks(Dialect::kCinder);
  };
  for (bool detail : {false, true}) {
    add("GET", detail ? v3 + "/detail" : v3,
        [&svc, detail](Call& c) { return list_manageable(c, svc, detail, true, false); });
    cinder();
    add("GET", detail ? ext + "/detail" : ext,
        [&svc, detail](Call& c) { return list_manageable(c, svc, detail, false, false); });
    cinder();
    add("GET", detail ? v3s + "/detail" : v3s,
        [&svc, detail](Call& c) { return list_manageable(c, svc, detail, true, true); });
    cinder();
    add("GET", detail ? exts + "/detail" : exts,
        [&svc, detail](Call& c) { return list_manageable(c, svc, detail, false, true); });
    cinder();
  }
  add("POST", v3, [&svc](Call& c) { return manage(c, svc, true); });
  cinder();
  add("POST", ext, [&svc](Call& c) { return manage(c, svc, false); });
  cinder();
  add("POST", v3s, [&svc](Call& c) { return manage_snapshot(c, svc, true); });
  cinder();
  add("POST", exts, [&svc](Call& c) { return manage_snapshot(c, svc, false); });
  cinder();
  add("GET", base + "volumes/{volumeId}", [&svc](Call& c) { return show_volume(c, svc); });
  cinder();
  add("POST", base + "volumes/{volumeId}/action",
      [&svc](Call& c) { return unmanage_action(c, svc, false); });
  cinder();
  add("GET", base + "snapshots/{snapshotId}", [&svc](Call& c) { return show_snapshot(c, svc); });
  cinder();
  add("POST", base + "snapshots/{snapshotId}/action",
      [&svc](Call& c) { return unmanage_action(c, svc, true); });
  cinder();
}

}  // namespace dmscore::http::routing
