// Operations: health, readiness, metrics and the OpenAPI document; none needs a token.
#include "http/api_json.hpp"
#include "http/openapi.hpp"
#include "http/route_table.hpp"

namespace dmscore::http::routing {

void add_operations_routes(RouteTable& add, Service& svc,
                           std::function<std::string()> render_metrics) {
  add(
      "GET", "/healthz",
      [](Call&) -> R {
        return json::value(json::object{{"status", "ok"}});
      },
      false);
  add(
      "GET", "/readyz",
      [&svc](Call&) -> R {
        if (!svc.ready()) return Status::Unavailable("recovering");
        return json::value(json::object{{"status", "ready"}});
      },
      false);

  // Prometheus text; any query is ignored (scrapers may add their own parameters).
  add(
      "GET", "/metrics",
      [render_metrics](Call& c) -> R {
        c.raw_body = render_metrics();
        c.raw_content_type = "text/plain; version=0.0.4; charset=utf-8";
        return json::value();
      },
      false);
  // Scale-out: the instances sharing the store and their leases (empty on the embedded store).
  add("GET", "/api/v1/instances", [&svc](Call& c) -> R {
    if (Status st = check_query(c.params, {}); !st.ok()) return st;
    auto list = svc.instances();
    if (!list.ok()) return list.status();
    json::array a;
    for (const auto& i : *list)
      a.push_back(json::object{{"id", i.id},
                               {"address", i.address},
                               {"startedAt", http::detail::rfc3339(i.started_at)},
                               {"heartbeatAt", http::detail::rfc3339(i.heartbeat_at)},
                               {"leaseUntil", http::detail::rfc3339(i.lease_until)},
                               {"runningWorkflows", i.running},
                               {"alive", i.alive}});
    return json::value(json::object{{"instances", std::move(a)}, {"self", svc.instance_id()}});
  });
  add(
      "GET", "/api/v1/openapi.json",
      [&svc](Call& c) -> R {
        if (Status st = check_query(c.params, {}); !st.ok()) return st;
        c.raw_body = std::string(http::detail::openapi_document());
        return json::value();
      },
      false);
}

}  // namespace dmscore::http::routing
