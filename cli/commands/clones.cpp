// dmsctl clone volume and clone snapshot: thick clones of a snapshot (THICK_CLONE_VOLUME,
// THICK_CLONE_SNAPSHOT workflows).
#include <boost/json.hpp>
#include <optional>
#include <string>

#include "commands/commands.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct CloneArgs {
  std::string cluster_id, project = "default", snap_id, dst_cluster, dst_project;
  std::string name, size_text, description;
  int replica = 0, sector = 0;
  std::optional<bool> compression;
  bool verify = false;
};

// The thick clone request: {"src", "dst", "verifyClone"}.
std::string clone_body(const CloneArgs& a, bool snapshot) {
  json::object src{{"snapId", a.snap_id}, {"projectName", a.project}, {"clusterId", a.cluster_id}};
  json::object dst{{"name", a.name},
                   {"clusterId", a.dst_cluster.empty() ? a.cluster_id : a.dst_cluster}};
  if (!a.dst_project.empty()) dst["projectName"] = a.dst_project;
  if (!a.size_text.empty()) dst["size"] = parse_size(a.size_text, "--size");
  if (a.replica) dst["replica"] = a.replica;
  if (a.sector) dst["sectorSize"] = a.sector;
  if (a.compression) dst["compression"] = *a.compression;
  if (snapshot && !a.description.empty()) dst["description"] = a.description;
  return json::serialize(json::object{{"src", src}, {"dst", dst}, {"verifyClone", a.verify}});
}

}  // namespace

void add_clone_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<CloneArgs>();
  for (bool snapshot : {false, true}) {
    const std::string kind = snapshot ? "snapshot" : "volume";
    auto* c = ctx.leaf(app.get_subcommand("clone"), kind,
                       "Thick clone a snapshot into a new, independent " + kind + " (THICK_CLONE_" +
                           (snapshot ? "SNAPSHOT" : "VOLUME") + ")",
                       "  dmsctl clone " + kind +
                           " --cluster SRC_CLUSTER --snapshot SNAP_ID --dst-cluster " +
                           "DST_CLUSTER --name copy1 --verify --wait",
                       [&ctx, &a, snapshot, kind] {
                         auto conn = ctx.connect(true);
                         std::string body = clone_body(a, snapshot);
                         auto r = snapshot ? conn.api->thick_clone_snapshot(body)
                                           : conn.api->thick_clone_volume(body);
                         return ctx.started(conn, ctx.admitted(conn, std::move(r)),
                                            "Cloning " + kind + " " + a.name);
                       });
    c->add_option("--cluster", a.cluster_id, "the source snapshot's cluster")->required();
    c->add_option("--project", a.project, "the source snapshot's project")->capture_default_str();
    c->add_option("--snapshot", a.snap_id, "source snapshot id")->required();
    c->add_option("--dst-cluster", a.dst_cluster, "destination cluster (default: the source's)");
    c->add_option("--dst-project", a.dst_project, "destination project (default: the source's)");
    c->add_option("--name", a.name, "name of the new " + kind)->required();
    c->add_option("--size", a.size_text, "destination size (default: the source's)");
    c->add_option("--replica", a.replica, "replicas (default: inherited)");
    c->add_option("--sector-size", a.sector, "512 or 4096 (default: inherited)");
    c->add_option("--compression", a.compression, "true or false (default: inherited)");
    c->add_flag("--verify", a.verify, "read the copy back and compare it with the source");
    if (snapshot) c->add_option("--description", a.description, "the new snapshot's description");
    ctx.with_wait(c);
  }
}

}  // namespace dmsctl
