// dmsctl commands on group snapshots: create, list, get, delete, and clone cg-snapshot (a group
// thick clone into a new group).
#include <boost/json.hpp>
#include <string>

#include "commands/commands.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct CgSnapshotArgs {
  std::string id, group_id, name, description, page_token;
  std::string dst_cluster, dst_project;
  int page_size = 0;
  bool members = false, verify = false;
};

void add_clone_cg_snapshot(CLI::App& app, Context& ctx, CgSnapshotArgs& a) {
  auto* clone = ctx.leaf(
      app.get_subcommand("clone"), "cg-snapshot",
      "Thick clone a group snapshot into a new group (THICK_CLONE_CONSISTENCY_GROUP workflow)",
      "  dmsctl clone cg-snapshot CGSNAP_ID --name orders-dr --dst-cluster C2 --dst-project dr "
      "--verify --wait",
      [&ctx, &a] {
        json::object dst{{"name", a.name}};
        if (!a.dst_cluster.empty()) dst["clusterId"] = a.dst_cluster;
        if (!a.dst_project.empty()) dst["projectName"] = a.dst_project;
        json::object b{{"src", json::object{{"cgSnapshotId", a.id}}},
                       {"dst", std::move(dst)},
                       {"verifyClone", a.verify}};
        auto c = ctx.connect(true);
        auto r = c.api->thick_clone_consistency_group(json::serialize(b));
        return ctx.started(c, ctx.admitted(c, std::move(r)), "Group " + a.name);
      });
  clone->add_option("id", a.id, "group snapshot id")->required();
  clone->add_option("--name", a.name, "the new group's name")->required();
  clone->add_option("--dst-cluster", a.dst_cluster, "cluster (default: the group snapshot's)");
  clone->add_option("--dst-project", a.dst_project, "project (default: the group snapshot's)");
  clone->add_flag("--verify", a.verify, "read every volume back and compare it");
  ctx.with_wait(clone);
}

}  // namespace

void add_cg_snapshot_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<CgSnapshotArgs>();
  auto* create = ctx.leaf(
      app.get_subcommand("create"), "cg-snapshot",
      "Snapshot every member of a group at one instant (CREATE_CG_SNAPSHOT workflow)",
      "  dmsctl create cg-snapshot --group GROUP_ID --name nightly --wait", [&ctx, &a] {
        json::object b{{"consistencyGroupId", a.group_id}};
        if (!a.name.empty()) b["name"] = a.name;
        if (!a.description.empty()) b["description"] = a.description;
        auto c = ctx.connect(true);
        auto r = c.api->create_cg_snapshot(json::serialize(b));
        return ctx.started(c, ctx.admitted(c, std::move(r)), "Group snapshot of " + a.group_id);
      });
  create->add_option("--group", a.group_id, "consistency group id")->required();
  create->add_option("--name", a.name, "name (default: cgsnap-<id>)");
  create->add_option("--description", a.description, "free text");
  ctx.with_wait(create);

  auto* list = ctx.leaf(app.get_subcommand("list"), "cg-snapshots", "List group snapshots",
                        "  dmsctl list cg-snapshots --group GROUP_ID",
                        ctx.printing("cgSnapshot", [&a](auto& api) {
                          return api.list_cg_snapshots({a.page_size, a.page_token}, a.group_id);
                        }));
  list->add_option("--group", a.group_id, "only this group's");
  list->add_option("--page-size", a.page_size, "per page")->check(CLI::Range(1, 1000));
  list->add_option("--page-token", a.page_token, "the page to show");
  ctx.with_output(list);

  auto* get =
      ctx.leaf(app.get_subcommand("get"), "cg-snapshot", "Show a group snapshot, or its members",
               "  dmsctl get cg-snapshot CGSNAP_ID\n"
               "  dmsctl get cg-snapshot CGSNAP_ID --members -o json",
               [&ctx, &a] {
                 auto c = ctx.connect(true);
                 if (a.members)
                   ctx.print(check(c.api->list_cg_snapshot_members(a.id)), "member");
                 else
                   ctx.print(check(c.api->get_cg_snapshot(a.id)), "cgSnapshot");
                 return kExitOk;
               });
  get->add_option("id", a.id, "group snapshot id")->required();
  get->add_flag("--members", a.members, "list its members: volume, snapshot, size");
  ctx.with_output(get);

  auto* del = ctx.leaf(app.get_subcommand("delete"), "cg-snapshot",
                       "Delete a group snapshot and its member snapshots",
                       "  dmsctl delete cg-snapshot CGSNAP_ID",
                       ctx.reporting([&a](auto& api) { return api.delete_cg_snapshot(a.id); },
                                     [&a] { return "deleted group snapshot " + a.id; }));
  del->add_option("id", a.id, "group snapshot id")->required();

  add_clone_cg_snapshot(app, ctx, a);
}

}  // namespace dmsctl
