// dmsctl commands on clusters: attach, list, get, refresh, repair, detach.
#include <string>

#include "commands/commands.hpp"

namespace dmsctl {

namespace {

struct ClusterArgs {
  std::string cluster_id, cluster_name, endpoint;
};

}  // namespace

void add_cluster_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<ClusterArgs>();
  auto* attach_cluster = ctx.leaf(
      app.get_subcommand("attach"), "cluster", "Attach a cluster (ATTACH_CLUSTER workflow)",
      "  dmsctl attach cluster file:///var/lib/dms-local/c1 --name c1 --wait\n"
      "  dmsctl attach cluster https://10.0.0.10:443 --name prod --wait",
      [&ctx, &a] {
        auto c = ctx.connect(true);
        return ctx.started(c, check(c.api->attach_cluster(a.endpoint, a.cluster_name)),
                           "Attaching " + a.endpoint);
      });
  attach_cluster->add_option("endpoint", a.endpoint, "file:///dir or https://host:port")
      ->required();
  attach_cluster->add_option("--name", a.cluster_name, "name to give the cluster");
  ctx.with_wait(attach_cluster);

  ctx.with_output(ctx.leaf(app.get_subcommand("list"), "clusters", "List attached clusters",
                           "  dmsctl list clusters -o wide",
                           ctx.printing("cluster", [](auto& api) { return api.list_clusters(); })));
  auto* get_cluster =
      ctx.leaf(app.get_subcommand("get"), "cluster", "Show a cluster",
               "  dmsctl get cluster CLUSTER_ID -o yaml",
               ctx.printing("cluster", [&a](auto& api) { return api.get_cluster(a.cluster_id); }));
  get_cluster->add_option("id", a.cluster_id, "cluster id")->required();
  ctx.with_output(get_cluster);
  auto* refresh_clusters = ctx.leaf(
      app.get_subcommand("refresh"), "clusters",
      "Re-read every cluster's information, or one's (REFRESH_CLUSTERS)",
      "  dmsctl refresh clusters --wait\n  dmsctl refresh clusters CLUSTER_ID", [&ctx, &a] {
        auto c = ctx.connect(true);
        return ctx.started(c, check(c.api->refresh_clusters(a.cluster_id)), "Refreshing clusters");
      });
  refresh_clusters->add_option("id", a.cluster_id, "only this cluster");
  ctx.with_wait(refresh_clusters);
  auto* repair_cluster = ctx.leaf(
      app.get_subcommand("repair"), "cluster",
      "Rebuild the metadata of a local cluster in NeedsRepair from its data files and their "
      "sidecars; files it cannot explain go to the cluster's lost+found/, nothing is deleted "
      "(REPAIR_CLUSTER). With --wait, prints what it found",
      "  dmsctl repair cluster CLUSTER_ID --wait", [&ctx, &a] {
        auto c = ctx.connect(true);
        return ctx.started(c, check(c.api->repair_cluster(a.cluster_id)),
                           "Repairing cluster " + a.cluster_id, /*show_result=*/true);
      });
  repair_cluster->add_option("id", a.cluster_id, "cluster id")->required();
  ctx.with_wait(repair_cluster);
  auto* detach_cluster =
      ctx.leaf(app.get_subcommand("detach"), "cluster",
               "Forget a cluster (its data is not touched)", "  dmsctl detach cluster CLUSTER_ID",
               ctx.reporting([&a](auto& api) { return api.detach_cluster(a.cluster_id); },
                             [&a] { return "detached cluster " + a.cluster_id; }));
  detach_cluster->add_option("id", a.cluster_id, "cluster id")->required();
}

}  // namespace dmsctl
