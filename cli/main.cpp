// dmsctl: the operator's command line for libdmscore.
#include <fmt/core.h>

#include <CLI/CLI.hpp>

#include "dmscore/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "dmsctl: drive a libdmscore data management service\n\n"
      "Example:\n  dmsctl version"};
  app.set_version_flag("--version", std::string("dmsctl ") + dmscore::version());
  app.require_subcommand(0, 1);
  auto* version = app.add_subcommand("version", "Print the version\n\nExample:\n  dmsctl version");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (version->parsed()) {
    fmt::print("dmsctl {}\n", dmscore::version());
    return 0;
  }
  fmt::print("{}", app.help());
  return 0;
}
