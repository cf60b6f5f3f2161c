#pragma once
// dmsctl's commands, one file per noun. Each function registers its commands on `app` (top-level
// ones) or under the verbs add_verbs() made, with their option values held by `ctx`. Below them,
// what the commands that print their own tables share.
//
// main() calls them in a fixed order: it is the order --help and completion list them in.

#include <CLI/CLI.hpp>

#include "context.hpp"

namespace dmsctl {

void add_serve_commands(CLI::App& app, Context& ctx);        // serve
void add_completion_commands(CLI::App& app, Context& ctx);   // completion
void add_login_commands(CLI::App& app, Context& ctx);        // login, logout
void add_credentials_commands(CLI::App& app, Context& ctx);  // get service-credentials
void add_cluster_commands(CLI::App& app, Context& ctx);  // attach/list/get/refresh/repair/detach
void add_volume_commands(CLI::App& app, Context& ctx);   // create/list/get/delete volume
void add_manageable_commands(CLI::App& app,
                             Context& ctx);  // list manageable-volumes, manage, unmanage
void add_snapshot_commands(CLI::App& app, Context& ctx);     // create/list/get/delete snapshot
void add_clone_commands(CLI::App& app, Context& ctx);        // clone volume, clone snapshot
void add_group_commands(CLI::App& app, Context& ctx);        // consistency groups
void add_cg_snapshot_commands(CLI::App& app, Context& ctx);  // group snapshots, clone cg-snapshot
void add_copy_set_commands(CLI::App& app, Context& ctx);     // full copies of groups
void add_workflow_commands(CLI::App& app, Context& ctx);     // list/get/cancel workflow
void add_user_commands(CLI::App& app, Context& ctx);  // create/list/delete user, set password
void add_source_server_commands(CLI::App& app, Context& ctx);  // list/get/delete source-server
void add_agent_commands(CLI::App& app,
                        Context& ctx);  // agent, migrate/sync/cutover/stop/start source-server

// Refuses a negative count (CLI11 would wrap it into an unsigned option).
inline CLI::Validator non_negative() {
  return CLI::Validator(
      [](std::string& v) {
        return v.find_first_not_of("0123456789") == std::string::npos && !v.empty()
                   ? std::string()
                   : std::string("must be a whole number, 0 or more");
      },
      "NUMBER");
}

}  // namespace dmsctl
