// dmsctl commands on what exists on a cluster: list manageable-volumes|manageable-snapshots,
// manage volume|snapshot, unmanage volume|snapshot.
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
  std::string sort, marker, limit, offset, reference, name, description, volume_id;
  std::vector<std::string> metadata;
};

// What differs between the two kinds.
struct Kind {
  const char* noun;       // "volume"
  const char* list;       // "manageable-volumes"
  const char* list_item;  // "manageableVolume"
  const char* workflow;   // "MANAGE_VOLUME"
  const char* reference;  // a reference's form, for --help
  const char* example;    // of manage
  const char* unmanage_example;
  dmscore::Result<std::string> (dmscore::http::ApiClient::*list_call)(
      const std::string&, bool, const std::vector<std::pair<std::string, std::string>>&);
  dmscore::Result<std::string> (dmscore::http::ApiClient::*manage_call)(const std::string&,
                                                                        const std::string&);
  dmscore::Result<std::string> (dmscore::http::ApiClient::*unmanage_call)(const std::string&,
                                                                          const std::string&,
                                                                          const std::string&);
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
  using dmscore::http::ApiClient;
  static const Kind kKinds[] = {
      {"volume", "manageable-volumes", "manageableVolume", "MANAGE_VOLUME",
       "what to adopt, as listed (for a local cluster: import/<file>; Lightbits: <project>/<name>)",
       "  dmsctl manage volume import/db-2024.img --cluster CLUSTER_ID --name db --wait",
       "  dmsctl unmanage volume VOLUME_ID --cluster CLUSTER_ID",
       &ApiClient::list_manageable_volumes, &ApiClient::manage_volume, &ApiClient::unmanage_volume},
      {"snapshot", "manageable-snapshots", "manageableSnapshot", "MANAGE_SNAPSHOT",
       "what to adopt, as listed (for a local cluster: import/<volume file>@<snapshot>)",
       "  dmsctl manage snapshot import/db-2024.img@monday --cluster CLUSTER_ID --volume VOLUME_ID "
       "--wait",
       "  dmsctl unmanage snapshot SNAPSHOT_ID --cluster CLUSTER_ID",
       &ApiClient::list_manageable_snapshots, &ApiClient::manage_snapshot,
       &ApiClient::unmanage_snapshot},
  };
  for (const Kind& k : kKinds) {
    auto& a = ctx.hold<ManageArgs>();
    auto* list = ctx.leaf(
        app.get_subcommand("list"), k.list,
        std::string("List what a cluster holds that the service could adopt as ") + k.noun +
            "s, and what it manages already",
        std::string("  dmsctl list ") + k.list + " --cluster CLUSTER_ID --detail --sort size:desc",
        ctx.printing(k.list_item, [&a, &k](auto& api) {
          return (api.*k.list_call)(a.project.cluster_id, a.detail, manageable_query(a));
        }));
    list->add_option("--cluster", a.project.cluster_id, "cluster id")->required();
    list->add_flag("--detail", a.detail, "also why each unsafe one is unsafe, and extra details");
    list->add_option("--sort", a.sort, "key[:dir],... keys reference, size; dirs asc, desc");
    list->add_option("--marker", a.marker,
                     "start after this reference: import/a.img or its JSON {\"source-name\": ...}");
    list->add_option("--limit", a.limit, "at most this many (default and cap 1000)");
    list->add_option("--offset", a.offset, "skip this many after the marker");
    ctx.with_output(list);

    const bool snapshot = std::string(k.noun) == "snapshot";
    auto* manage = ctx.leaf(
        app.get_subcommand("manage"), k.noun,
        std::string("Adopt a candidate as a ") + k.noun + " without copying it (" + k.workflow +
            ")",
        k.example, [&ctx, &a, &k, snapshot]() -> int {
          json::object body{{"ref", json::object{{"source-name", a.reference}}},
                            {"projectName", a.project.project}};
          if (!a.name.empty()) body["name"] = a.name;
          if (!a.description.empty()) body["description"] = a.description;
          if (snapshot) body["volumeId"] = a.volume_id;
          if (!a.metadata.empty()) {
            json::object md;
            for (const auto& kv : a.metadata) {
              const auto eq = kv.find('=');
              md[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
            }
            body["metadata"] = std::move(md);
          }
          auto conn = ctx.connect(true);
          auto r = ((*conn.api).*k.manage_call)(a.project.cluster_id, json::serialize(body));
          return ctx.started(conn, ctx.admitted(conn, std::move(r)), "Managing " + a.reference,
                             true);
        });
    manage->add_option("reference", a.reference, k.reference)->required();
    in_project(manage, a.project);
    if (snapshot)
      manage
          ->add_option("--volume", a.volume_id,
                       "the managed volume it is a snapshot of (adopted from its volume file)")
          ->required();
    manage->add_option("--name", a.name,
                       snapshot ? "the snapshot's name (default: the part after the '@')"
                                : "the volume's name (default: the file's name)");
    manage->add_option("--description", a.description, "kept by the service with it");
    manage->add_option("--metadata", a.metadata, "KEY=VALUE, kept by the service; repeatable");
    ctx.with_wait(manage);

    auto* unmanage = ctx.leaf(
        app.get_subcommand("unmanage"), k.noun,
        std::string("Stop managing a ") + k.noun + "; its data stays where the answer says",
        k.unmanage_example, ctx.printing("reference", [&a, &k](auto& api) {
          return (api.*k.unmanage_call)(a.project.cluster_id, a.project.project, a.project.id);
        }));
    unmanage->add_option("id", a.project.id, std::string(k.noun) + " id")->required();
    ctx.with_output(in_project(unmanage, a.project));
  }
}

}  // namespace dmsctl
