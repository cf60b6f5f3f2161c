// dmsctl commands on workflows: list, get (--watch follows one), cancel; and the instances
// that run them on a shared store.
#include <string>

#include "commands/commands.hpp"

namespace dmsctl {

namespace {

struct WorkflowArgs {
  std::string id, state, type, page_token;
  int page_size = 0;
  bool watch = false;
};

}  // namespace

void add_workflow_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<WorkflowArgs>();
  auto* list = ctx.leaf(app.get_subcommand("list"), "workflows", "List workflows, newest first",
                        "  dmsctl list workflows --state RUNNING\n  dmsctl list workflows --type "
                        "THICK_CLONE_VOLUME -o json",
                        ctx.printing("workflow", [&a](auto& api) {
                          return api.list_workflows({a.page_size, a.page_token, a.state, a.type});
                        }));
  list->add_option("--state", a.state, "PENDING, RUNNING, COMPLETED, FAILED or CANCELLED");
  list->add_option("--type", a.type, "ATTACH_CLUSTER, THICK_CLONE_VOLUME, ...");
  list->add_option("--page-size", a.page_size, "workflows per page")->check(CLI::Range(1, 1000));
  list->add_option("--page-token", a.page_token, "the page to show");
  ctx.with_output(list);

  auto* get =
      ctx.leaf(app.get_subcommand("get"), "workflow", "Show a workflow, or follow it with --watch",
               "  dmsctl get workflow WORKFLOW_ID -o yaml\n"
               "  dmsctl get workflow WORKFLOW_ID --watch",
               [&ctx, &a] {
                 auto c = ctx.connect(true);
                 if (a.watch) return ctx.follow(c, a.id, "Workflow " + a.id, true);
                 ctx.print(check(c.api->get_workflow(a.id)), "workflow");
                 return kExitOk;
               });
  get->add_option("id", a.id, "workflow id")->required();
  get->add_flag("--watch", a.watch, "follow it to its end (exit 7 when it fails)");
  get->add_flag("--no-progress", ctx.flags.no_progress, "no progress lines while watching");
  get->add_option("--timeout", ctx.flags.timeout_s, "seconds to watch at most (0: no limit)");
  ctx.with_output(get);

  auto* instances =
      ctx.leaf(app.get_subcommand("list"), "instances",
               "List the service's instances sharing its store, with their leases",
               "  dmsctl list instances\n  dmsctl list instances -o wide",
               ctx.printing("instance", [](auto& api) { return api.list_instances(); }));
  ctx.with_output(instances);

  auto* cancel =
      ctx.leaf(app.get_subcommand("cancel"), "workflow",
               "Ask a workflow to stop; it undoes its work", "  dmsctl cancel workflow WORKFLOW_ID",
               ctx.reporting([&a](auto& api) { return api.cancel_workflow(a.id); },
                             [&a] { return "cancel requested for workflow " + a.id; }));
  cancel->add_option("id", a.id, "workflow id")->required();
}

}  // namespace dmsctl
