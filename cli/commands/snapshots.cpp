// dmsctl commands on snapshots: create, list, get, delete.
#include <boost/json.hpp>
#include <string>

#include "commands/commands.hpp"
#include "commands/project_objects.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct SnapshotArgs {
  ProjectArgs project;
  std::string name, source_volume, description;
};

}  // namespace

void add_snapshot_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<SnapshotArgs>();
  auto* create = ctx.leaf(
      app.get_subcommand("create"), "snapshot", "Take a snapshot of a volume",
      "  dmsctl create snapshot --cluster CLUSTER_ID --name nightly --source-volume VOLUME_ID",
      [&ctx, &a] {
        json::object b{{"name", a.name}, {"sourceVolumeId", a.source_volume}};
        if (!a.description.empty()) b["description"] = a.description;
        auto c = ctx.connect(true);
        ctx.print(check(c.api->create_snapshot(a.project.cluster_id, a.project.project,
                                               json::serialize(b))),
                  "snapshot");
        return kExitOk;
      });
  in_project(create, a.project);
  create->add_option("--name", a.name, "snapshot name")->required();
  create->add_option("--source-volume", a.source_volume, "volume id")->required();
  create->add_option("--description", a.description, "free text");
  ctx.with_output(create);

  add_list_get_delete(
      app, ctx, a.project,
      {"snapshot", "  dmsctl list snapshots --cluster CLUSTER_ID -o name",
       "  dmsctl get snapshot SNAP_ID --cluster CLUSTER_ID -o yaml",
       "  dmsctl delete snapshot SNAP_ID --cluster CLUSTER_ID",
       &dmscore::http::ApiClient::list_snapshots, &dmscore::http::ApiClient::get_snapshot,
       &dmscore::http::ApiClient::delete_snapshot});
}

}  // namespace dmsctl
