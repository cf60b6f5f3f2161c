// dmsctl commands on volumes: create, list, get, delete.
#include <boost/json.hpp>
#include <optional>
#include <string>

#include "commands/commands.hpp"
#include "commands/project_objects.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct VolumeArgs {
  ProjectArgs project;
  std::string name, size_text, source_snapshot;
  int replica = 0, sector = 0;
  std::optional<bool> compression;
};

int create_volume(Context& ctx, const VolumeArgs& a) {
  json::object b{{"name", a.name}, {"size", parse_size(a.size_text, "--size")}};
  if (a.replica) b["replicaCount"] = a.replica;
  if (a.sector) b["sectorSize"] = a.sector;
  if (a.compression) b["compression"] = *a.compression;
  if (!a.source_snapshot.empty()) b["sourceSnapshotId"] = a.source_snapshot;
  auto c = ctx.connect(true);
  ctx.print(
      check(c.api->create_volume(a.project.cluster_id, a.project.project, json::serialize(b))),
      "volume");
  return kExitOk;
}

}  // namespace

void add_volume_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<VolumeArgs>();
  auto* create = ctx.leaf(
      app.get_subcommand("create"), "volume",
      "Create a volume, empty or as a thin clone of a snapshot",
      "  dmsctl create volume --cluster CLUSTER_ID --name db --size 10GiB\n"
      "  dmsctl create volume --cluster CLUSTER_ID --name db2 --size 10GiB --source-snapshot "
      "SNAP_ID",
      [&ctx, &a] { return create_volume(ctx, a); });
  in_project(create, a.project);
  create->add_option("--name", a.name, "volume name")->required();
  create->add_option("--size", a.size_text, "size: bytes or with a unit (GiB, ...)")->required();
  create->add_option("--replica-count", a.replica, "replicas (1-3)");
  create->add_option("--sector-size", a.sector, "512 or 4096");
  create->add_option("--compression", a.compression, "true or false");
  create->add_option("--source-snapshot", a.source_snapshot, "thin clone of this snapshot");
  ctx.with_output(create);

  add_list_get_delete(
      app, ctx, a.project,
      {"volume", "  dmsctl list volumes --cluster CLUSTER_ID --project default -o wide",
       "  dmsctl get volume VOLUME_ID --cluster CLUSTER_ID -o json",
       "  dmsctl delete volume VOLUME_ID --cluster CLUSTER_ID",
       &dmscore::http::ApiClient::list_volumes, &dmscore::http::ApiClient::get_volume,
       &dmscore::http::ApiClient::delete_volume});
}

}  // namespace dmsctl
