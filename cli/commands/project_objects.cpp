#include "commands/project_objects.hpp"

namespace dmsctl {

CLI::App* in_project(CLI::App* c, ProjectArgs& a) {
  c->add_option("--cluster", a.cluster_id, "cluster id")->required();
  c->add_option("--project", a.project, "project name")->capture_default_str();
  return c;
}

void add_list_get_delete(CLI::App& app, Context& ctx, ProjectArgs& a, const ProjectObject& o) {
  auto* list =
      ctx.leaf(app.get_subcommand("list"), o.kind + "s", "List the " + o.kind + "s of a project",
               o.list_example, ctx.printing(o.kind, [&a, o](auto& api) {
                 return (api.*o.list)(a.cluster_id, a.project, {a.page_size, a.page_token});
               }));
  list->add_option("--page-size", a.page_size, "objects per page")->check(CLI::Range(1, 1000));
  list->add_option("--page-token", a.page_token, "the page to show, from a previous list");
  ctx.with_output(in_project(list, a));

  auto* get = ctx.leaf(app.get_subcommand("get"), o.kind, "Show a " + o.kind, o.get_example,
                       ctx.printing(o.kind, [&a, o](auto& api) {
                         return (api.*o.get)(a.cluster_id, a.project, a.id);
                       }));
  get->add_option("id", a.id, o.kind + " id")->required();
  ctx.with_output(in_project(get, a));

  auto* del = ctx.leaf(
      app.get_subcommand("delete"), o.kind, "Delete a " + o.kind, o.delete_example,
      ctx.reporting([&a, o](auto& api) { return (api.*o.del)(a.cluster_id, a.project, a.id); },
                    [&a, o] { return "deleted " + o.kind + " " + a.id; }));
  del->add_option("id", a.id, o.kind + " id")->required();
  in_project(del, a);
}

}  // namespace dmsctl
