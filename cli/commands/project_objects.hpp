#pragma once
// What the commands on a project's volumes and snapshots share: --cluster and --project,
// paging, and list/get/delete, which differ only in the kind of object.

#include <CLI/CLI.hpp>
#include <string>

#include "context.hpp"

namespace dmsctl {

struct ProjectArgs {
  std::string cluster_id, project = "default", id, page_token;
  int page_size = 0;
};

// --cluster (required) and --project.
CLI::App* in_project(CLI::App* c, ProjectArgs& a);

// list <kind>s, get <kind> and delete <kind>, with the examples of their --help.
struct ProjectObject {
  std::string kind;  // "volume", "snapshot"
  std::string list_example, get_example, delete_example;
  dmscore::Result<std::string> (dmscore::http::ApiClient::*list)(
      const std::string& cluster_id, const std::string& project,
      const dmscore::http::PageRequest& page);
  dmscore::Result<std::string> (dmscore::http::ApiClient::*get)(const std::string& cluster_id,
                                                                const std::string& project,
                                                                const std::string& id);
  dmscore::Result<std::string> (dmscore::http::ApiClient::*del)(const std::string& cluster_id,
                                                                const std::string& project,
                                                                const std::string& id);
};
void add_list_get_delete(CLI::App& app, Context& ctx, ProjectArgs& a, const ProjectObject& o);

}  // namespace dmsctl
