// dmsctl commands on the service's users (admin only): create user, list users, delete user,
// set password. A password is read from standard input only, never taken as an argument.
#include <fmt/core.h>

#include <boost/json.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "commands/commands.hpp"
#include "output.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

struct UserArgs {
  std::string name, role;
  bool password_stdin = false;
};

// The first line of standard input without its newline, as login --password-stdin reads it;
// a usage error when there is none or it is empty.
std::string password_from_stdin() {
  std::string password;
  if (!std::getline(std::cin, password) || password.empty())
    fail(kExitUsage,
         "--password-stdin: the first line of standard input is empty; put the "
         "password on it");
  return password;
}

// Prints users ({"user": {...}} or {"users": [...]}) in the -o format.
void show_users(const Context& ctx, const std::string& answer) {
  const Format f = ctx.output_format();
  if (f == Format::kJson || f == Format::kYaml) {
    ctx.print(answer, "user");
    return;
  }
  const json::value v = parse_answer(answer);
  const std::vector<json::object> users = objects_in(v, "user");
  if (f == Format::kName) {
    for (const auto& u : users) fmt::print("user/{}\n", cell(u, "username"));
    return;
  }
  const bool wide = f == Format::kWide;
  std::vector<std::vector<std::string>> rows{{"USERNAME", "ROLE", "CREATED"}};
  if (wide) rows[0].push_back("PASSWORD-CHANGED");
  for (const auto& u : users) {
    rows.push_back({cell(u, "username"), cell(u, "role"), cell(u, "createdAt")});
    if (wide) rows.back().push_back(cell(u, "passwordChangedAt"));
  }
  std::fputs(aligned(rows).c_str(), stdout);
}

// The verb `set`, which only users have: add_verbs() makes the verbs the other nouns share.
CLI::App* set_verb(CLI::App& app) {
  auto found = app.get_subcommands([](CLI::App* c) { return c->get_name() == "set"; });
  if (!found.empty()) return found.front();
  auto* set = app.add_subcommand("set", "Set a user's password");
  set->fallthrough();
  set->require_subcommand(0, 1);
  return set;
}

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
                 std::string password = password_from_stdin();
                 json::object b{{"username", a.name}, {"password", password}, {"role", a.role}};
                 auto c = ctx.connect(true);
                 show_users(ctx, check(c.api->call("POST", "/api/v1/users", json::serialize(b))));
                 return kExitOk;
               });
  create->add_option("name", a.name, "user name")->required();
  create->add_option("--role", a.role, "admin, viewer or agent")
      ->required()
      ->check(CLI::IsMember({"admin", "viewer", "agent"}));
  with_password_stdin(create, a);
  ctx.with_output(create);

  ctx.with_output(ctx.leaf(app.get_subcommand("list"), "users",
                           "List the users of the service (admin)", "  dmsctl list users -o wide",
                           [&ctx] {
                             auto c = ctx.connect(true);
                             show_users(ctx, check(c.api->call("GET", "/api/v1/users")));
                             return kExitOk;
                           }));

  auto* del = ctx.leaf(
      app.get_subcommand("delete"), "user", "Delete a user (admin); the last admin stays",
      "  dmsctl delete user ops",
      ctx.reporting(
          [&a](auto& api) { return api.call("DELETE", "/api/v1/users/" + url_encode(a.name)); },
          [&a] { return "deleted user " + a.name; }));
  del->add_option("name", a.name, "user name")->required();

  auto* set_password =
      ctx.leaf(set_verb(app), "password",
               "Give a user a new password (admin); the user's tokens stop working",
               "  echo \"$NEW_PW\" | dmsctl set password ops --password-stdin", [&ctx, &a] {
                 std::string password = password_from_stdin();
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
