// Login, logout and the service's credentials.
#include "base/base64.hpp"
#include "http/route_table.hpp"

namespace dmscore::http::routing {

void add_identity_routes(RouteTable& add, Service& svc) {
  add(
      "POST", "/api/v1/login",
      [&svc](Call& c) -> R {
        if (Status s = check_query(c.params, {}); !s.ok()) return s;
        std::string user, password;
        std::string_view auth = c.req.header("Authorization");
        if (auth.size() > 6 && iequals(auth.substr(0, 6), "Basic ")) {
          std::string b64(auth.substr(6));
          while (b64.size() % 4 != 0) b64 += '=';  // clients that leave the padding out
          auto decoded = dmscore::detail::base64_decode(b64);
          auto colon = decoded ? decoded->find(':') : std::string::npos;
          if (!decoded || colon == std::string::npos)
            return Status::Unauthenticated("malformed Basic credentials");
          user = decoded->substr(0, colon);
          password = decoded->substr(colon + 1);
        } else {
          auto body = parse_body(c.req, true);
          if (!body.ok()) return body.status();
          ObjectReader o(*body, "");
          o.string("username", user, true);
          o.string("password", password, true);
          if (Status s = o.finish(); !s.ok()) return s;
        }
        auto r = svc.auth().login(user, password, c.req.remote);
        if (!r.ok()) return r.status();
        return json::value(http::detail::to_json(*r));
      },
      false);
  add.last().lane = Lane::kLogin;
  add("POST", "/api/v1/logout", [&svc](Call& c) -> R {
    std::string_view h = c.req.header("Authorization");
    if (Status s = svc.auth().logout(std::string(h.substr(7))); !s.ok()) return s;
    return json::value(ok_body());
  });
  add.last().viewer_may_call = true;  // ending one's own session is not an admin's write

  add("GET", "/api/v1/service-credentials",
      [&svc](Call&) -> R { return json::value(http::detail::to_json(svc.service_credentials())); });
}

}  // namespace dmscore::http::routing
