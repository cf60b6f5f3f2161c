// dmsctl: the operator's command line for libdmscore.
//
// Verb-noun commands over the REST contract (docs/api-v1.md) through dmscore::http::ApiClient,
// and `serve`, which runs the service itself. The command line and its presentation only; every
// rule of the service lives in the library. Each noun's commands are in cli/commands/; their
// shared state and helpers in context.hpp and common.hpp.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <string>

#include "commands/commands.hpp"
#include "context.hpp"
#include "dmscore/version.hpp"

int main(int argc, char** argv) {
  using namespace dmsctl;
  CLI::App app{std::string("dmsctl: drive a libdmscore data management service\n\n") + kExitCodes +
               "\n\nConnection: --endpoint, else $DMS_ENDPOINT, else the context saved by login "
               "(~/.config/dmsctl/config.json, mode 0600); the token: $DMS_TOKEN, else the "
               "context's.\n\nExample:\n  dmsctl login --endpoint https://dms.example:8443\n"
               "  dmsctl list clusters -o wide"};
  app.set_version_flag("--version", std::string("dmsctl ") + dmscore::version());
  app.require_subcommand(0, 1);
  app.fallthrough();
  Context ctx;
  app.add_option("--endpoint", ctx.flags.endpoint,
                 "service URL: https://host:port (http:// on loopback)");
  app.add_option("--ca-cert", ctx.flags.ca_cert,
                 "PEM file of the CAs that signed the service's certificate");
  app.add_flag("--insecure", ctx.flags.insecure, "do not verify the service's TLS certificate");
  app.add_option("--context", ctx.flags.context, "named context of the config file to use");

  // The order here is the order --help and completion list the commands in.
  ctx.leaf(&app, "version", "Print the version", "  dmsctl version", [] {
    fmt::print("dmsctl {}\n", dmscore::version());
    return kExitOk;
  });
  add_serve_commands(app, ctx);
  add_completion_commands(app, ctx);
  add_login_commands(app, ctx);
  add_verbs(app);
  add_credentials_commands(app, ctx);
  add_cluster_commands(app, ctx);
  add_volume_commands(app, ctx);
  add_manageable_commands(app, ctx);
  add_snapshot_commands(app, ctx);
  add_clone_commands(app, ctx);
  add_group_commands(app, ctx);
  add_cg_snapshot_commands(app, ctx);
  add_copy_set_commands(app, ctx);
  add_workflow_commands(app, ctx);
  add_user_commands(app, ctx);
  add_source_server_commands(app, ctx);
  add_agent_commands(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  return ctx.run(app);
}
