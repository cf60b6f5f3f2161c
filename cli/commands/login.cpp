// dmsctl login and logout: the token kept in the config file's context.
#include <fmt/core.h>

#include <iostream>
#include <string>

#include "commands/commands.hpp"

namespace dmsctl {

namespace {

struct LoginArgs {
  std::string username = "admin", save_context;
  bool password_stdin = false;
};

int login(Context& ctx, const LoginArgs& a) {
  Config cfg = ctx.load_config();
  auto c = ctx.connect(false);
  std::string password;
  if (a.password_stdin) {
    password = password_from_stdin(true);
  } else {
    password = read_password();
  }
  auto answer =
      decoded(dmscore::http::LoginAnswer::parse(check(c.api->login(a.username, password))));
  const Flags& f = ctx.flags;
  std::string name = !a.save_context.empty()        ? a.save_context
                     : !f.context.empty()           ? f.context
                     : !cfg.current_context.empty() ? cfg.current_context
                                                    : "default";
  auto& saved = cfg.contexts[name];
  saved.endpoint = c.endpoint;
  if (!f.ca_cert.empty()) saved.ca_cert = f.ca_cert;
  if (f.insecure) saved.insecure = true;
  saved.username = a.username;
  saved.token = answer.id_token;
  cfg.current_context = name;
  if (dmscore::Status s = cfg.save(); !s.ok()) fail(s);
  fmt::print(stderr, "logged in to {} as {} (context {}, {})\n", c.endpoint, a.username, name,
             cfg.path);
  return kExitOk;
}

int logout(Context& ctx) {
  auto c = ctx.connect(true);
  check(c.api->logout());
  Config cfg = ctx.load_config();
  for (auto& [name, saved] : cfg.contexts)
    if (saved.endpoint == c.endpoint) saved.token.clear();
  if (dmscore::Status s = cfg.save(); !s.ok()) fail(s);
  fmt::print(stderr, "logged out of {}\n", c.endpoint);
  return kExitOk;
}

}  // namespace

void add_login_commands(CLI::App& app, Context& ctx) {
  auto& a = ctx.hold<LoginArgs>();
  auto* login_cmd =
      ctx.leaf(&app, "login", "Log in and keep the token in the config file (mode 0600)",
               "  dmsctl login --endpoint https://dms.example:8443 --username admin\n"
               "  echo \"$PW\" | dmsctl login --endpoint http://127.0.0.1:8443 --password-stdin",
               [&ctx, &a] { return login(ctx, a); });
  login_cmd->add_option("--username", a.username, "user name")->capture_default_str();
  login_cmd->add_flag("--password-stdin", a.password_stdin,
                      "read the password from standard input");
  login_cmd->add_option("--save-as", a.save_context,
                        "name of the context to save (default: current)");

  ctx.leaf(&app, "logout", "Revoke the token and forget it", "  dmsctl logout",
           [&ctx] { return logout(ctx); });
}

}  // namespace dmsctl
