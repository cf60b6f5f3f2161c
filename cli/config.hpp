#pragma once
// dmsctl's configuration file: named contexts (endpoint, TLS settings, cached login token).
//
// Path: $DMSCTL_CONFIG, else $XDG_CONFIG_HOME/dmsctl/config.json, else
// ~/.config/dmsctl/config.json. It holds tokens, so it must be mode 0600 (a looser file is
// refused with the chmod to run) and is written atomically with that mode.

#include <map>
#include <string>

#include "dmscore/result.hpp"

namespace dmsctl {

// One named context, as login saved it. (Not dmsctl::Context, the command line's state.)
struct SavedContext {
  std::string endpoint;
  std::string ca_cert;
  bool insecure = false;
  std::string username;
  std::string token;
};

struct Config {
  std::string path;
  std::string current_context;
  std::map<std::string, SavedContext> contexts;

  // Reads the file; an absent file is an empty configuration.
  static dmscore::Result<Config> load();
  dmscore::Status save() const;
};

std::string config_path();

}  // namespace dmsctl
