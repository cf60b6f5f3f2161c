// dmsctl commands on full copies of a group (copy sets): create, list, get, and the actions
// activate, resync, restore and detach.
#include <fmt/core.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "commands/commands.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct CopySetArgs {
  std::string id, group_id, name, cluster, project, page_token;
  std::vector<std::string> volume_ids;
  std::vector<int> copies;
  int count = 1, page_size = 0;
  bool partial = false, inactive = false, confirm = false;
};

// Prints the copy set of `answer`; with --wait follows each copy's workflow in turn, then prints
// the copy set as it ended.
int copy_work(Context& ctx, Connection& c, const CopySetArgs& a, const std::string& answer,
              const std::string& title) {
  auto work = decoded(dmscore::http::CopySetWorkAnswer::parse(answer));
  if (!ctx.flags.wait || work.workflows.empty()) {
    ctx.print(answer, "copySet");
    for (const auto& w : work.workflows)
      fmt::print(stderr, "copy {}: workflow {}; follow it with: dmsctl get workflow {} --watch\n",
                 w.index, w.workflow_id, w.workflow_id);
    return kExitOk;
  }
  int rc = kExitOk;
  for (const auto& w : work.workflows) {
    fmt::print(stderr, "copy {}: workflow {}\n", w.index, w.workflow_id);
    int one = ctx.follow(c, w.workflow_id, title + " copy " + std::to_string(w.index), false);
    if (one != kExitOk) rc = one;
  }
  ctx.print(check(c.api->get_copy_set(a.group_id, work.copy_set_id)), "copySet");
  return rc;
}

int create_copy_set(Context& ctx, const CopySetArgs& a) {
  json::object b{{"name", a.name}, {"count", a.count}};
  if (a.partial) b["partial"] = true;
  if (!a.volume_ids.empty()) b["volumeIds"] = string_array(a.volume_ids);
  if (a.inactive) b["createInactive"] = true;
  if (!a.cluster.empty()) b["clusterId"] = a.cluster;
  if (!a.project.empty()) b["projectName"] = a.project;
  auto c = ctx.connect(true);
  auto r = c.api->create_full_copies(a.group_id, json::serialize(b));
  return copy_work(ctx, c, a, ctx.admitted(c, std::move(r)), "Full copy " + a.name);
}

int copy_set_action(Context& ctx, const CopySetArgs& a, const std::string& action) {
  json::object body;
  if (!a.copies.empty()) {
    json::array idx;
    for (int i : a.copies) idx.push_back(i);
    body["copies"] = std::move(idx);
  }
  if (action == "restore") body["confirm"] = a.confirm;
  auto c = ctx.connect(true);
  auto r = c.api->copy_set_action(a.group_id, a.id,
                                  json::serialize(json::object{{action, std::move(body)}}));
  return copy_work(ctx, c, a, ctx.admitted(c, std::move(r)), action);
}

// activate, resync, restore and detach copy-set: one action each.
struct SetAction {
  const char* verb;
  const char* action;
  const char* what;
  const char* example;
};
constexpr SetAction kSetActions[] = {
    {"activate", "activate", "Take a group snapshot and copy it into inactive copies",
     "  dmsctl activate copy-set SET_ID --group GROUP_ID --wait"},
    {"resync", "resynchronize",
     "Take a new group snapshot and copy the group's current state onto the copies",
     "  dmsctl resync copy-set SET_ID --group GROUP_ID --copy 2 --wait"},
    {"restore", "restore",
     "Write one copy back onto the group's volumes (their data is overwritten)",
     "  dmsctl restore copy-set SET_ID --group GROUP_ID --copy 1 --confirm --wait"},
    {"detach", "detach", "Unlink copies from the group: they become ordinary volumes",
     "  dmsctl detach copy-set SET_ID --group GROUP_ID"},
};

void add_set_actions(CLI::App& app, Context& ctx, CopySetArgs& a) {
  for (const SetAction& s : kSetActions) {
    const std::string action = s.action;
    auto* cmd = ctx.leaf(app.get_subcommand(s.verb), "copy-set", s.what, s.example,
                         [&ctx, &a, action] { return copy_set_action(ctx, a, action); });
    cmd->add_option("id", a.id, "copy set id")->required();
    cmd->add_option("--group", a.group_id, "consistency group id")->required();
    cmd->add_option("--copy", a.copies, "a copy (1-8; repeatable; default: all)")
        ->check(CLI::Range(1, 8));
    if (action == "restore")
      cmd->add_flag("--confirm", a.confirm, "yes, overwrite the group's volumes");
    if (action == "detach")
      ctx.with_output(cmd);
    else
      ctx.with_wait(cmd);
  }
}

}  // namespace

void add_copy_set_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<CopySetArgs>();
  auto* create = ctx.leaf(
      app.get_subcommand("create"), "copy-set",
      "Full copies of a group: one group snapshot, its members thick cloned COUNT times",
      "  dmsctl create copy-set --group GROUP_ID --name nightly --count 3 --wait\n"
      "  dmsctl create copy-set --group GROUP_ID --name dr --cluster C2 --project dr --inactive\n"
      "  dmsctl create copy-set --group GROUP_ID --name data-only --partial --volume DATA_ID",
      [&ctx, &a] { return create_copy_set(ctx, a); });
  create->add_option("--group", a.group_id, "consistency group id")->required();
  create->add_option("--name", a.name, "copy set name")->required();
  create->add_option("--count", a.count, "copies (1-8)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  create->add_flag("--partial", a.partial, "copy only the members given with --volume");
  create->add_option("--volume", a.volume_ids, "a member to copy, with --partial (repeatable)");
  create->add_flag("--inactive", a.inactive, "make the volumes, copy nothing until activate");
  create->add_option("--cluster", a.cluster, "cluster of the copies (default: the group's)");
  create->add_option("--project", a.project, "project of the copies (default: the group's)");
  ctx.with_wait(create);

  auto* list = ctx.leaf(app.get_subcommand("list"), "copy-sets", "List a group's copy sets",
                        "  dmsctl list copy-sets --group GROUP_ID -o wide",
                        ctx.printing("copySet", [&a](auto& api) {
                          return api.list_copy_sets(a.group_id, {a.page_size, a.page_token});
                        }));
  list->add_option("--group", a.group_id, "consistency group id")->required();
  list->add_option("--page-size", a.page_size, "per page")->check(CLI::Range(1, 1000));
  list->add_option("--page-token", a.page_token, "the page to show");
  ctx.with_output(list);

  auto* get = ctx.leaf(
      app.get_subcommand("get"), "copy-set",
      "Show a copy set: its copies, their states and volumes",
      "  dmsctl get copy-set SET_ID --group GROUP_ID -o yaml",
      ctx.printing("copySet", [&a](auto& api) { return api.get_copy_set(a.group_id, a.id); }));
  get->add_option("id", a.id, "copy set id")->required();
  get->add_option("--group", a.group_id, "consistency group id")->required();
  ctx.with_output(get);

  add_set_actions(app, ctx, a);
}

}  // namespace dmsctl
