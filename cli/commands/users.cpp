// dmsctl commands on the service's users (admin only): create user, list users, delete user,
// set password. A password is read from standard input only, never taken as an argument.
#include <fmt/core.h>

#include <boost/json.hpp>
#include <string>

#include "commands/commands.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct UserArgs {
  std::string name, role;
  bool password_stdin = false;
};

// --password-stdin, required: there is no other way to give a password.
CLI::Option* with_password_stdin(CLI::App* c, UserArgs& a) {
  return c
      ->add_flag("--password-stdin", a.password_stdin,
                 "read the password from the first line of standard input (required)")
      ->required();
}

}  // namespace

void add_user_commands(CLI::App& app, Context& ctx) {
  using dmscore::http::url_encode;
  auto& a = ctx.hold<UserArgs>();
  auto* create =
      ctx.leaf(app.get_subcommand("create"), "user", "Create a user of the service (admin)",
               "  echo \"$PW\" | dmsctl create user ops --role viewer --password-stdin\n"
               "  dmsctl create user agent01 --role agent --password-stdin < agent01.pw",
               [&ctx, &a] {
                 std::string password = password_from_stdin(false);
                 json::object b{{"username", a.name}, {"password", password}, {"role", a.role}};
                 auto c = ctx.connect(true);
                 ctx.print(check(c.api->call("POST", "/api/v1/users", json::serialize(b))), "user");
                 return kExitOk;
               });
  create->add_option("name", a.name, "user name")->required();
  create->add_option("--role", a.role, "admin, viewer or agent")
      ->required()
      ->check(CLI::IsMember({"admin", "viewer", "agent"}));
  with_password_stdin(create, a);
  ctx.with_output(create);

  ctx.with_output(
      ctx.leaf(app.get_subcommand("list"), "users", "List the users of the service (admin)",
               "  dmsctl list users -o wide",
               ctx.printing("user", [](auto& api) { return api.call("GET", "/api/v1/users"); })));

  auto* del = ctx.leaf(
      app.get_subcommand("delete"), "user", "Delete a user (admin); the last admin stays",
      "  dmsctl delete user ops",
      ctx.reporting(
          [&a](auto& api) { return api.call("DELETE", "/api/v1/users/" + url_encode(a.name)); },
          [&a] { return "deleted user " + a.name; }));
  del->add_option("name", a.name, "user name")->required();

  auto* set_password =
      ctx.leaf(app.get_subcommand("set"), "password",
               "Give a user a new password (admin); the user's tokens stop working",
               "  echo \"$NEW_PW\" | dmsctl set password ops --password-stdin", [&ctx, &a] {
                 std::string password = password_from_stdin(false);
                 json::object b{{"password", password}};
                 auto c = ctx.connect(true);
                 check(c.api->call("PUT", "/api/v1/users/" + url_encode(a.name) + "/password",
                                   json::serialize(b)));
                 fmt::print(stderr, "changed the password of user {}\n", a.name);
                 return kExitOk;
               });
  set_password->add_option("name", a.name, "user name")->required();
  with_password_stdin(set_password, a);
}

}  // namespace dmsctl
