#include "catalog/cluster_catalog.hpp"

#include <boost/json.hpp>

#include "base/util.hpp"
#include "catalog/rows.hpp"

namespace dmscore::detail {

namespace json = boost::json;

namespace {

constexpr const char* kClusterCols =
    "id, name, kind, api_endpoint, version, subsystem_nqn, api_endpoints, discovery_endpoints, "
    "servers, access_status, data_status, attached_at, refreshed_at, status_message";

std::string text(ConnectionStatus s) { return std::string(to_string(s)); }

std::string strings_json(const std::vector<std::string>& v) {
  json::array a;
  for (auto& s : v) a.emplace_back(s);
  return json::serialize(a);
}

std::vector<std::string> strings_from(const std::string& text) {
  std::vector<std::string> out;
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (auto& e : v.as_array())
    if (e.is_string()) out.emplace_back(e.as_string());
  return out;
}

std::string servers_json(const std::vector<ClusterServer>& servers) {
  json::array a;
  for (auto& s : servers)
    a.push_back(json::object{{"name", s.name}, {"endpoint", s.endpoint}, {"state", s.state}});
  return json::serialize(a);
}

std::vector<ClusterServer> servers_from(const std::string& text) {
  std::vector<ClusterServer> out;
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (auto& e : v.as_array()) {
    if (!e.is_object()) continue;
    auto get = [&](const char* k) {
      auto* f = e.as_object().if_contains(k);
      return f && f->is_string() ? std::string(f->as_string()) : std::string();
    };
    out.push_back({get("name"), get("endpoint"), get("state")});
  }
  return out;
}

ConnectionStatus connection_status(const std::string& s) {
  for (auto c : {ConnectionStatus::kConnected, ConnectionStatus::kUnauthorized,
                 ConnectionStatus::kNeedsRepair}) {
    if (to_string(c) == s) return c;
  }
  return ConnectionStatus::kDisconnected;
}

ClusterKind kind_from(const std::string& s) {
  return s == to_string(ClusterKind::kLocal) ? ClusterKind::kLocal : ClusterKind::kLightbits;
}

Cluster cluster_from(const Row& r) {
  Cluster c;
  c.id = r.text(0);
  c.name = r.text(1);
  c.kind = kind_from(r.text(2));
  c.version = r.text(4);
  c.subsystem_nqn = r.text(5);
  c.api_endpoints = strings_from(r.text(6));
  c.discovery_endpoints = strings_from(r.text(7));
  c.servers = servers_from(r.text(8));
  c.access_status = connection_status(r.text(9));
  c.data_status = connection_status(r.text(10));
  c.attached_at = from_millis(r.int64(11));
  if (!r.is_null(12)) c.refreshed_at = from_millis(r.int64(12));
  c.status_message = r.text(13);
  return c;
}

}  // namespace

Result<std::vector<Cluster>> ClusterCatalog::list(Txn& t) {
  auto r =
      t.query(std::string("SELECT ") + kClusterCols + " FROM clusters ORDER BY attached_at, id");
  if (!r.ok()) return r.status();
  std::vector<Cluster> out;
  for (auto& row : *r) out.push_back(cluster_from(row));
  return out;
}

Result<std::optional<Cluster>> ClusterCatalog::find(Txn& t, const std::string& id) {
  auto r = t.query_one(std::string("SELECT ") + kClusterCols + " FROM clusters WHERE id = ?", {id});
  if (!r.ok()) return r.status();
  if (!*r) return std::optional<Cluster>();
  return std::optional<Cluster>(cluster_from(**r));
}

Result<std::vector<ClusterCatalog::Entry>> ClusterCatalog::entries(Txn& t) {
  auto r = t.query(
      "SELECT id, name, kind, api_endpoint, access_status, status_message FROM clusters ORDER BY "
      "attached_at, id");
  if (!r.ok()) return r.status();
  std::vector<Entry> out;
  for (auto& row : *r)
    out.push_back({row.text(0), row.text(1), kind_from(row.text(2)), row.text(3),
                   connection_status(row.text(4)), row.text(5)});
  return out;
}

Result<std::int64_t> ClusterCatalog::count(Txn& t) {
  auto r = t.query_one("SELECT COUNT(*) FROM clusters", {});
  if (!r.ok()) return r.status();
  return r->has_value() ? (**r).int64(0) : 0;
}

Result<std::string> ClusterCatalog::attached_as(Txn& t, const std::string& id,
                                                const std::string& endpoint) {
  return rows::first_text(t, "SELECT id FROM clusters WHERE id = ? OR api_endpoint = ?",
                          {id, endpoint});
}

Result<std::vector<std::string>> ClusterCatalog::reported_endpoints(Txn& t, const std::string& id) {
  auto r = rows::first_text(t, "SELECT api_endpoints FROM clusters WHERE id = ?", {id});
  if (!r.ok()) return r.status();
  return strings_from(*r);
}

Status ClusterCatalog::insert(Txn& t, const ClusterInfo& info, ClusterKind kind,
                              const std::string& endpoint, bool adopt, std::int64_t now_ms) {
  auto existing = t.query_one("SELECT api_endpoint FROM clusters WHERE id = ?", {info.id});
  if (!existing.ok()) return existing.status();
  if (*existing) {
    if (adopt && (*existing)->text(0) == endpoint) return Status::Ok();
    return Status::AlreadyExists("cluster " + info.id + " is already attached");
  }
  const std::string connected = text(ConnectionStatus::kConnected);
  return t
      .exec(
          "INSERT INTO clusters (id, name, kind, api_endpoint, version, subsystem_nqn, "
          "api_endpoints, discovery_endpoints, servers, access_status, data_status, attached_at) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          {info.id, info.name, std::string(to_string(kind)), endpoint, info.version,
           info.subsystem_nqn, strings_json(info.api_endpoints),
           strings_json(info.discovery_endpoints), servers_json(info.servers), connected, connected,
           now_ms})
      .status();
}

Status ClusterCatalog::update_info(Txn& t, const std::string& id, const ClusterInfo& info,
                                   std::int64_t now_ms) {
  const std::string connected = text(ConnectionStatus::kConnected);
  return t
      .exec(
          "UPDATE clusters SET name = ?, version = ?, subsystem_nqn = ?, api_endpoints = ?, "
          "discovery_endpoints = ?, servers = ?, access_status = ?, data_status = ?, "
          "status_message = '', refreshed_at = ? WHERE id = ?",
          {info.name, info.version, info.subsystem_nqn, strings_json(info.api_endpoints),
           strings_json(info.discovery_endpoints), servers_json(info.servers), connected, connected,
           now_ms, id})
      .status();
}

Status ClusterCatalog::set_status(Txn& t, const std::string& id, ConnectionStatus status,
                                  const std::string& message) {
  return t
      .exec(
          "UPDATE clusters SET access_status = ?, data_status = ?, status_message = ? WHERE id = ?",
          {text(status), text(status), message.substr(0, 1024), id})
      .status();
}

Status ClusterCatalog::remove(Txn& t, const std::string& id) {
  // What the service recorded of the volumes it adopted there goes with the cluster.
  for (const char* table : {"managed_volumes", "managed_snapshots"})
    if (auto r = t.exec(std::string("DELETE FROM ") + table + " WHERE cluster_id = ?", {id});
        !r.ok())
      return r.status();
  return t.exec("DELETE FROM clusters WHERE id = ?", {id}).status();
}

}  // namespace dmscore::detail
