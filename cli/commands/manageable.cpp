// dmsctl commands on what exists on a cluster: list manageable-volumes, manage volume,
// unmanage volume.
#include <boost/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "commands/commands.hpp"
#include "commands/project_objects.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct ManageArgs {
  ProjectArgs project;
  bool detail = false;
  std::string sort, marker, limit, offset, reference, name;
};

// The query as given, each parameter only when set (the service checks them, as Cinder does).
std::vector<std::pair<std::string, std::string>> manageable_query(const ManageArgs& a) {
  std::vector<std::pair<std::string, std::string>> q;
  for (auto [key, value] : {std::pair{"sort", &a.sort}, {"limit", &a.limit}, {"offset", &a.offset}})
    if (!value->empty()) q.emplace_back(key, *value);
  // A bare reference is sent as the JSON the service expects.
  if (!a.marker.empty())
    q.emplace_back("marker", a.marker.front() == '{'
                                 ? a.marker
                                 : json::serialize(json::object{{"source-name", a.marker}}));
  return q;
}

}  // namespace

void add_manageable_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<ManageArgs>();
  auto* list = ctx.leaf(
      app.get_subcommand("list"), "manageable-volumes",
      "List what a cluster holds that the service could adopt, and what it manages already",
      "  dmsctl list manageable-volumes --cluster CLUSTER_ID --detail --sort size:desc",
      ctx.printing("manageableVolume", [&a](auto& api) {
        return api.list_manageable_volumes(a.project.cluster_id, a.detail, manageable_query(a));
      }));
  list->add_option("--cluster", a.project.cluster_id, "cluster id")->required();
  list->add_flag("--detail", a.detail, "also why each unsafe one is unsafe, and extra details");
  list->add_option("--sort", a.sort, "key[:dir],... keys reference, size; dirs asc, desc");
  list->add_option("--marker", a.marker,
                   "start after this reference: import/a.img or its JSON {\"source-name\": ...}");
  list->add_option("--limit", a.limit, "at most this many (default and cap 1000)");
  list->add_option("--offset", a.offset, "skip this many after the marker");
  ctx.with_output(list);

  auto* manage = ctx.leaf(
      app.get_subcommand("manage"), "volume",
      "Adopt a candidate as a volume without copying it (MANAGE_VOLUME)",
      "  dmsctl manage volume import/db-2024.img --cluster CLUSTER_ID --name db --wait",
      [&ctx, &a] {
        json::object body{{"ref", json::object{{"source-name", a.reference}}},
                          {"projectName", a.project.project}};
        if (!a.name.empty()) body["name"] = a.name;
        auto conn = ctx.connect(true);
        auto r = conn.api->manage_volume(a.project.cluster_id, json::serialize(body));
        return ctx.started(conn, ctx.admitted(conn, std::move(r)), "Managing " + a.reference, true);
      });
  manage
      ->add_option("reference", a.reference,
                   "what to adopt, as listed (for a local cluster: import/<file>)")
      ->required();
  in_project(manage, a.project);
  manage->add_option("--name", a.name, "the volume's name (default: the file's name)");
  ctx.with_wait(manage);

  auto* unmanage =
      ctx.leaf(app.get_subcommand("unmanage"), "volume",
               "Stop managing a volume; its data stays where the answer says",
               "  dmsctl unmanage volume VOLUME_ID --cluster CLUSTER_ID",
               ctx.printing("reference", [&a](auto& api) {
                 return api.unmanage_volume(a.project.cluster_id, a.project.project, a.project.id);
               }));
  unmanage->add_option("id", a.project.id, "volume id")->required();
  ctx.with_output(in_project(unmanage, a.project));
}

}  // namespace dmsctl
