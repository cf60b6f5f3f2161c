// The users of the service's API: created, listed, deleted and given new passwords by admins.
// Every change is audited with the admin who made it.
#include "http/route_table.hpp"

namespace dmscore::http::routing {

namespace {

json::object to_json(const User& u) {
  return json::object{{"username", u.name},
                      {"role", std::string(to_string(u.role))},
                      {"createdAt", http::detail::rfc3339(u.created_at)},
                      {"passwordChangedAt", http::detail::rfc3339(u.password_changed_at)}};
}

}  // namespace

void add_user_routes(RouteTable& add, Service& svc) {
  add("POST", "/api/v1/users", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    std::string name, password, role_name;
    ObjectReader o(*body, "");
    o.string("username", name, true);
    o.string("password", password, true);
    o.string("role", role_name, true);
    if (Status s = o.finish(); !s.ok()) return s;
    auto role = parse_role(role_name);
    if (!role.ok()) return role.status();
    auto u = svc.auth().create_user(name, password, *role);
    if (!u.ok()) return u.status();
    svc.auth().audit(
        "admin_action",
        {{"action", "create_user"}, {"user", name}, {"role", role_name}, {"by", c.principal.user}});
    return json::value(json::object{{"user", to_json(*u)}});
  });
  add("GET", "/api/v1/users", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto users = svc.auth().list_users();
    if (!users.ok()) return users.status();
    json::array a;
    for (const auto& u : *users) a.push_back(to_json(u));
    return json::value(json::object{{"users", std::move(a)}});
  });
  // Who may do what is an admin's concern: a viewer sees only the service's objects.
  add.last().admin_only = true;
  add("DELETE", "/api/v1/users/{username}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    const std::string name = c.params.path["username"];
    if (Status s = svc.auth().delete_user(name); !s.ok()) return s;
    svc.auth().audit("admin_action",
                     {{"action", "delete_user"}, {"user", name}, {"by", c.principal.user}});
    return json::value(ok_body());
  });
  add("PUT", "/api/v1/users/{username}/password", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    std::string password;
    ObjectReader o(*body, "");
    o.string("password", password, true);
    if (Status s = o.finish(); !s.ok()) return s;
    const std::string name = c.params.path["username"];
    if (Status s = svc.auth().change_password(name, password); !s.ok()) return s;
    svc.auth().audit("admin_action",
                     {{"action", "set_password"}, {"user", name}, {"by", c.principal.user}});
    return json::value(ok_body());
  });
}

}  // namespace dmscore::http::routing
