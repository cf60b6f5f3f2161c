// dmsctl commands on consistency groups: create, list, get, update, reset, delete.
#include <fmt/core.h>

#include <boost/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "commands/commands.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct GroupArgs {
  std::string group_id, name, description, cluster_id, project = "default", source_cg_snapshot;
  std::vector<std::string> volume_ids, add_volumes, remove_volumes;
  std::optional<std::string> new_name, new_description;
  std::string status, page_token;
  int page_size = 0;
  bool force = false;
};

int create_group(Context& ctx, const GroupArgs& a) {
  json::object b{{"name", a.name}};
  if (!a.source_cg_snapshot.empty()) {
    if (!a.cluster_id.empty() || !a.volume_ids.empty())
      fail(kExitUsage,
           "--from-cg-snapshot takes the cluster, project and volumes from the group "
           "snapshot: leave --cluster and --volume out");
    b["sourceCgSnapshotId"] = a.source_cg_snapshot;
  } else {
    if (a.cluster_id.empty()) fail(kExitUsage, "--cluster is required");
    b["clusterId"] = a.cluster_id;
    b["projectName"] = a.project;
    b["volumeIds"] = string_array(a.volume_ids);
  }
  if (!a.description.empty()) b["description"] = a.description;
  auto c = ctx.connect(true);
  std::string answer = check(c.api->create_consistency_group(json::serialize(b)));
  if (!a.source_cg_snapshot.empty() && ctx.flags.wait) {
    std::string wid =
        decoded(dmscore::http::ConsistencyGroupAnswer::parse(std::move(answer))).workflow_id;
    fmt::print(stderr, "started workflow {}\n", wid);
    return ctx.follow(c, wid, "Making group " + a.name, ctx.flags.output != "table");
  }
  ctx.print(answer, "consistencyGroup");
  return kExitOk;
}

int update_group(Context& ctx, const GroupArgs& a) {
  json::object b;
  if (a.new_name) b["name"] = *a.new_name;
  if (a.new_description) b["description"] = *a.new_description;
  if (!a.add_volumes.empty()) b["addVolumeIds"] = string_array(a.add_volumes);
  if (!a.remove_volumes.empty()) b["removeVolumeIds"] = string_array(a.remove_volumes);
  if (b.empty())
    fail(kExitUsage,
         "nothing to change: pass --name, --description, "
         "--add-volume or --remove-volume");
  auto c = ctx.connect(true);
  ctx.print(check(c.api->update_consistency_group(a.group_id, json::serialize(b))),
            "consistencyGroup");
  return kExitOk;
}

void add_create_group(CLI::App& app, Context& ctx, GroupArgs& a) {
  auto* create = ctx.leaf(
      app.get_subcommand("create"), "consistency-group",
      "Group volumes whose snapshots must show one instant",
      "  dmsctl create consistency-group --cluster CLUSTER_ID --project db --name orders "
      "--volume DATA_ID --volume LOG_ID\n"
      "  dmsctl create consistency-group --name orders-copy --from-cg-snapshot CGSNAP_ID --wait",
      [&ctx, &a] { return create_group(ctx, a); });
  create->add_option("--cluster", a.cluster_id, "cluster id");
  create->add_option("--project", a.project, "project name")->capture_default_str();
  create->add_option("--from-cg-snapshot", a.source_cg_snapshot,
                     "make the group from this group snapshot: a new volume per member");
  create->add_option("--name", a.name, "group name")->required();
  create->add_option("--volume", a.volume_ids, "a member volume id (repeatable, in order)");
  create->add_option("--description", a.description, "free text");
  ctx.with_wait(create);
}

}  // namespace

void add_group_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<GroupArgs>();
  add_create_group(app, ctx, a);
  auto* list = ctx.leaf(app.get_subcommand("list"), "consistency-groups", "List consistency groups",
                        "  dmsctl list consistency-groups -o wide",
                        ctx.printing("consistencyGroup", [&a](auto& api) {
                          return api.list_consistency_groups({a.page_size, a.page_token});
                        }));
  list->add_option("--page-size", a.page_size, "groups per page")->check(CLI::Range(1, 1000));
  list->add_option("--page-token", a.page_token, "the page to show");
  ctx.with_output(list);

  auto* get = ctx.leaf(app.get_subcommand("get"), "consistency-group", "Show a consistency group",
                       "  dmsctl get consistency-group GROUP_ID -o yaml",
                       ctx.printing("consistencyGroup", [&a](auto& api) {
                         return api.get_consistency_group(a.group_id);
                       }));
  get->add_option("id", a.group_id, "group id")->required();
  ctx.with_output(get);

  auto* update = ctx.leaf(
      app.get_subcommand("update"), "consistency-group",
      "Rename a group, change its description or its members",
      "  dmsctl update consistency-group GROUP_ID --add-volume INDEX_ID --remove-volume OLD_ID",
      [&ctx, &a] { return update_group(ctx, a); });
  update->add_option("id", a.group_id, "group id")->required();
  update->add_option("--name", a.new_name, "new name");
  update->add_option("--description", a.new_description, "new description");
  update->add_option("--add-volume", a.add_volumes, "volume to add (repeatable)");
  update->add_option("--remove-volume", a.remove_volumes, "member to remove (repeatable)");
  ctx.with_output(update);

  auto* reset =
      ctx.leaf(app.get_subcommand("reset"), "consistency-group",
               "Set a group's status, whatever it is (admin; audited)",
               "  dmsctl reset consistency-group GROUP_ID --status available",
               ctx.reporting(
                   [&a](auto& api) {
                     json::object b{{"resetStatus", json::object{{"status", a.status}}}};
                     return api.consistency_group_action(a.group_id, json::serialize(b));
                   },
                   [&a] { return "consistency group " + a.group_id + " is now " + a.status; }));
  reset->add_option("id", a.group_id, "group id")->required();
  reset->add_option("--status", a.status, "the new status")
      ->required()
      ->check(CLI::IsMember({"creating", "available", "error", "deleting", "error_deleting"}));

  auto* del = ctx.leaf(
      app.get_subcommand("delete"), "consistency-group", "Delete a group (never its volumes)",
      "  dmsctl delete consistency-group GROUP_ID\n"
      "  dmsctl delete consistency-group GROUP_ID --force   # whatever its status (admin; audited)",
      ctx.reporting(
          [&a](auto& api) {
            return a.force ? api.consistency_group_action(a.group_id, R"({"forceDelete":{}})")
                           : api.delete_consistency_group(a.group_id);
          },
          [&a] { return "deleted consistency group " + a.group_id; }));
  del->add_option("id", a.group_id, "group id")->required();
  del->add_flag("--force", a.force, "remove the record whatever its status and snapshots");
}

}  // namespace dmsctl
