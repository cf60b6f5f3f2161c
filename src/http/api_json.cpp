#include "http/api_json.hpp"

#include <ctime>

#include "dmscore/service.hpp"

namespace dmscore::http::detail {

std::string rfc3339(Env::SystemTime t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

namespace {

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

// A stored JSON text as a value; an empty or broken one as an empty object.
json::value parsed(const std::string& text) {
  if (text.empty()) return json::object();
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return json::object();
  return v;
}

}  // namespace

json::object to_json(const Cluster& c) {
  json::array servers;
  for (const auto& s : c.servers)
    servers.push_back(json::object{{"name", s.name}, {"endpoint", s.endpoint}, {"state", s.state}});
  json::object o{{"id", c.id},
                 {"name", c.name},
                 {"version", c.version},
                 {"subsystemNqn", c.subsystem_nqn},
                 {"apiEndpoints", strings(c.api_endpoints)},
                 {"discoveryEndpoints", strings(c.discovery_endpoints)},
                 {"clusterConnectionStatus",
                  json::object{{"accessConnectionStatus", to_string(c.access_status)},
                               {"dataConnectionStatus", to_string(c.data_status)}}},
                 {"kind", to_string(c.kind)},
                 {"attachedAt", rfc3339(c.attached_at)},
                 {"servers", std::move(servers)}};
  if (c.refreshed_at) o["refreshedAt"] = rfc3339(*c.refreshed_at);
  if (!c.status_message.empty())
    o["clusterConnectionStatus"].as_object()["message"] = c.status_message;
  return o;
}

json::object to_json(const Volume& v) {
  json::object o{{"id", v.id},
                 {"name", v.name},
                 {"projectName", v.project_name},
                 {"clusterId", v.cluster_id},
                 {"size", std::to_string(v.size)},
                 {"replicaCount", v.replica_count},
                 {"sectorSize", v.sector_size},
                 {"compression", v.compression},
                 {"state", to_string(v.state)},
                 {"sourceSnapshotId", v.source_snapshot_id},
                 {"createdAt", rfc3339(v.created_at)},
                 {"devicePath", v.device_path}};
  // An adopted volume: where it came from, and what the request that adopted it said.
  if (!v.adopted_from.empty()) {
    o["adoptedFrom"] = json::object{{"source-name", v.adopted_from}};
    o["adoptedSize"] = std::to_string(v.adopted_size);
  }
  if (!v.description.empty()) o["description"] = v.description;
  if (!v.metadata.empty()) {
    json::object m;
    for (const auto& [k, val] : v.metadata) m[k] = val;
    o["metadata"] = std::move(m);
  }
  return o;
}

json::object to_json(const Snapshot& s) {
  return {{"id", s.id},
          {"name", s.name},
          {"projectName", s.project_name},
          {"clusterId", s.cluster_id},
          {"sourceVolumeId", s.source_volume_id},
          {"size", std::to_string(s.size)},
          {"state", to_string(s.state)},
          {"description", s.description},
          {"createdAt", rfc3339(s.created_at)}};
}

json::object to_json(const Workflow& w) {
  json::object o{
      {"id", w.id},
      {"type", w.type},
      {"state", to_string(w.state)},
      {"msg", w.msg},
      {"createdAt", rfc3339(w.created_at)},
      {"progress", json::object{{"percent", w.progress.percent},
                                {"stage", w.progress.stage},
                                {"bytesDone", std::to_string(w.progress.bytes_done)},
                                {"bytesTotal", std::to_string(w.progress.bytes_total)},
                                {"bytesPerSecond", std::to_string(w.progress.bytes_per_second)}}},
      {"cancelRequested", w.cancel_requested},
      {"result", parsed(w.result)}};
  if (w.started_at) o["startedAt"] = rfc3339(*w.started_at);
  if (!w.error_code.empty()) o["errorCode"] = w.error_code;
  if (w.ended_at) o["endedAt"] = rfc3339(*w.ended_at);
  const char* request_field = nullptr;
  if (w.type == kThickCloneVolume) request_field = "thickCloneVolumeRequest";
  if (w.type == kThickCloneSnapshot) request_field = "snapshotCloneRequest";
  if (w.type == kAttachCluster) request_field = "attachClusterRequest";
  if (w.type == kRefreshClusters) request_field = "refreshClustersRequest";
  if (w.type == kCreateCgSnapshot) request_field = "cgSnapshotRequest";
  if (w.type == kCreateConsistencyGroup) request_field = "consistencyGroupRequest";
  if (w.type == kCreateFullCopy || w.type == kActivateFullCopy ||
      w.type == kResynchronizeFullCopy || w.type == kRestoreFullCopy)
    request_field = "fullCopyRequest";
  if (w.type == kThickCloneConsistencyGroup) request_field = "groupThickCloneRequest";
  if (w.type == kRepairCluster) request_field = "repairClusterRequest";
  if (request_field) o[request_field] = parsed(w.request);
  return o;
}

json::object to_json(const ServiceCredentials& c) {
  return {{"pubKeyId", c.pub_key_id}, {"pubKey", c.pub_key}, {"hostNqn", c.host_nqn}};
}

json::object to_json(const LoginResult& r) {
  return {{"tokenType", r.token_type},
          {"expiresIn", std::to_string(r.expires_in)},
          {"idToken", r.id_token}};
}

json::object to_json(const ConsistencyGroup& g) {
  json::array ids;
  for (const auto& v : g.volume_ids) ids.push_back(json::value(v));
  return {{"id", g.id},
          {"name", g.name},
          {"description", g.description},
          {"clusterId", g.cluster_id},
          {"projectName", g.project_name},
          {"status", to_string(g.status)},
          {"volumeIds", std::move(ids)},
          {"sourceCgSnapshotId", g.source_cg_snapshot_id},
          {"workflowId", g.workflow_id},
          {"message", g.message},
          {"createdAt", rfc3339(g.created_at)},
          {"updatedAt", rfc3339(g.updated_at)}};
}

json::object to_json(const CgSnapshot& c) {
  return {{"id", c.id},
          {"name", c.name},
          {"description", c.description},
          {"consistencyGroupId", c.consistency_group_id},
          {"clusterId", c.cluster_id},
          {"projectName", c.project_name},
          {"status", to_string(c.status)},
          {"workflowId", c.workflow_id},
          {"message", c.message},
          {"createdAt", rfc3339(c.created_at)}};
}

json::object to_json(const CgSnapshotMember& m) {
  return {
      {"volumeId", m.volume_id}, {"snapshotId", m.snapshot_id}, {"size", std::to_string(m.size)}};
}

json::object to_json(const CopySet& c) {
  json::array copies;
  for (const auto& f : c.copies) {
    json::array vols;
    for (const auto& v : f.volumes)
      vols.push_back(json::object{{"sourceVolumeId", v.source_volume_id},
                                  {"volumeId", v.volume_id},
                                  {"name", v.name},
                                  {"size", std::to_string(v.size)}});
    copies.push_back(json::object{{"index", f.index},
                                  {"status", to_string(f.status)},
                                  {"cgSnapshotId", f.cg_snapshot_id},
                                  {"workflowId", f.workflow_id},
                                  {"message", f.message},
                                  {"updatedAt", rfc3339(f.updated_at)},
                                  {"volumes", std::move(vols)}});
  }
  return {{"id", c.id},
          {"name", c.name},
          {"consistencyGroupId", c.consistency_group_id},
          {"clusterId", c.cluster_id},
          {"projectName", c.project_name},
          {"count", c.count},
          {"partial", c.partial},
          {"createInactive", c.create_inactive},
          {"createdAt", rfc3339(c.created_at)},
          {"copies", std::move(copies)}};
}

json::object to_json(const CopySetWork& w) {
  json::array wfs;
  for (const auto& cw : w.workflows)
    wfs.push_back(json::object{{"copy", cw.index}, {"workflowId", cw.workflow_id}});
  return {{"copySet", to_json(w.copy_set)}, {"workflows", std::move(wfs)}};
}

}  // namespace dmscore::http::detail
