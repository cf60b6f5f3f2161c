#include "workflows/cluster_maintenance.hpp"

#include "catalog/cluster_catalog.hpp"
#include "catalog/rows.hpp"
#include "service/service_impl.hpp"
#include "workflows/request_json.hpp"

namespace dmscore::detail {

namespace json = boost::json;

std::string ClusterWork::to_json() const {
  json::object o;
  if (!cluster_id.empty()) o["clusterId"] = cluster_id;
  return json::serialize(o);
}

Result<ClusterWork> ClusterWork::from_json(std::string_view request) {
  auto o = request_json::object(request);
  if (!o.ok()) return o.status();
  return ClusterWork{request_json::string_or_empty(*o, "clusterId")};
}

namespace {

json::array to_json_array(const std::vector<std::string>& v) {
  json::array a;
  for (auto& s : v) a.emplace_back(s);
  return a;
}

Status refresh_step(Service::Impl& s, StepContext& ctx) {
  auto w = ClusterWork::from_json(ctx.request());
  if (!w.ok()) return w.status();
  const std::string& only = w->cluster_id;
  auto all = rows::read<std::vector<ClusterCatalog::Entry>>(*s.store, ClusterCatalog::entries);
  if (!all.ok()) return all.status();
  std::vector<ClusterCatalog::Entry> targets;
  for (auto& e : *all)
    if (only.empty() || e.id == only) targets.push_back(std::move(e));
  if (!only.empty() && targets.empty())
    return Status::NotFound("cluster " + only + " is not attached");
  int connected = 0;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (ctx.should_stop()) return Status::Cancelled("refresh stopped");
    const auto& e = targets[i];
    Result<ClusterInfo> info = s.probe(e.id, e.api_endpoint);
    auto [status, message] = s.condition(e.id, info.status());
    Status r = Status::Ok();
    if (info.ok()) r = s.update_cluster_info(e.id, *info);
    if (r.ok() && status != ConnectionStatus::kConnected) r = s.set_status(e.id, status, message);
    if (status == ConnectionStatus::kConnected) ++connected;
    if (!r.ok()) return r;
    ctx.report_progress({static_cast<int>((i + 1) * 100 / targets.size()), "refresh", 0, 0, 0});
  }
  ctx.set_result(json::serialize(json::object{
      {"clusters", static_cast<std::int64_t>(targets.size())}, {"connected", connected}}));
  return Status::Ok();
}

Status repair_step(Service::Impl& s, StepContext& ctx) {
  auto w = ClusterWork::from_json(ctx.request());
  if (!w.ok()) return w.status();
  const std::string& id = w->cluster_id;
  auto b = s.backend_locked(id);
  if (!b.ok()) return b.status();
  auto* local = dynamic_cast<LocalBackend*>(ungated(b->get()));
  if (!local) return Status::FailedPrecondition("cluster " + id + " is not a local cluster");
  if (local->repair_needed().ok()) {
    if (!ctx.resumed()) return Status::FailedPrecondition("cluster " + id + " needs no repair");
    // Repaired before a restart cut the workflow short; the report went with the process.
    ctx.set_result(json::serialize(json::object{{"repairedBeforeRestart", true}}));
    return s.set_status(id, ConnectionStatus::kConnected);
  }
  auto report = local->repair();
  if (!report.ok()) return report.status();
  if (Status r = s.set_status(id, ConnectionStatus::kConnected); !r.ok()) return r;
  json::object r{{"volumes", report->volumes},
                 {"snapshots", report->snapshots},
                 {"setAside", to_json_array(report->set_aside)},
                 {"missing", to_json_array(report->missing)},
                 {"previousMetadata", report->previous_metadata}};
  ctx.set_result(json::serialize(r));
  return Status::Ok();
}

}  // namespace

Status register_refresh_clusters(WorkflowEngine& engine, Service::Impl& s) {
  return engine.register_type(
      {kRefreshClusters, {{"refresh", [&s](StepContext& c) { return refresh_step(s, c); }}}});
}

Status register_repair_cluster(WorkflowEngine& engine, Service::Impl& s) {
  return engine.register_type(
      {kRepairCluster, {{"repair", [&s](StepContext& c) { return repair_step(s, c); }}}});
}

}  // namespace dmscore::detail
