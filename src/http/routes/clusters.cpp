// The cluster registry: attach, list, get, refresh, repair, detach.
#include "http/route_table.hpp"

namespace dmscore::http::routing {

void add_cluster_routes(RouteTable& add, Service& svc) {
  add("GET", "/api/v1/clusters", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto list = svc.clusters().list();
    if (!list.ok()) return list.status();
    json::array a;
    for (auto& cl : *list) a.push_back(http::detail::to_json(cl));
    return json::value(json::object{{"clusters", std::move(a)}});
  });
  add("POST", "/api/v1/clusters", [&svc](Call& c) -> R {
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    auto req = dmscore::detail::attach_cluster_request_from_json(*body);
    if (!req.ok()) return req.status();
    auto id = svc.clusters().attach(*req);
    if (!id.ok()) return id.status();
    return workflow_id_body(*id);
  });
  add("POST", "/api/v1/clusters/refresh", [&svc](Call& c) -> R {
    auto body = parse_body(c.req, true);
    if (!body.ok()) return body.status();
    std::string cid;
    ObjectReader o(*body, "");
    o.string("clusterId", cid);
    if (Status s = o.finish(); !s.ok()) return s;
    if (!cid.empty() && !dmscore::detail::is_uuid(cid))
      return Status::InvalidArgument("clusterId: must be a UUID");
    auto id = svc.clusters().refresh(cid.empty() ? std::nullopt
                                                 : std::optional<ClusterId>(ClusterId(cid)));
    if (!id.ok()) return id.status();
    return workflow_id_body(*id);
  });
  add("GET", "/api/v1/clusters/{clusterId}", [&svc](Call& c) -> R {
    auto cl = svc.clusters().get(ClusterId(c.params.path["clusterId"]));
    if (!cl.ok()) return cl.status();
    return json::value(json::object{{"cluster", http::detail::to_json(*cl)}});
  });
  add("POST", "/api/v1/clusters/{clusterId}/repair", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, true);
    if (!body.ok()) return body.status();
    ObjectReader o(*body, "");
    if (Status s = o.finish(); !s.ok()) return s;
    auto id = svc.clusters().repair(ClusterId(c.params.path["clusterId"]));
    if (!id.ok()) return id.status();
    return workflow_id_body(*id);
  });
  add("DELETE", "/api/v1/clusters/{clusterId}", [&svc](Call& c) -> R {
    if (Status s = svc.clusters().detach(ClusterId(c.params.path["clusterId"])); !s.ok()) return s;
    return json::value(ok_body());
  });
}

}  // namespace dmscore::http::routing
