// Workflows: list, get, cancel.
#include "http/route_table.hpp"

namespace dmscore::http::routing {

void add_workflow_routes(RouteTable& add, Service& svc) {
  add("GET", "/api/v1/workflows", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken", "state", "type"}); !s.ok())
      return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    ListWorkflowsRequest lr;
    lr.page_size = *n;
    lr.page_token = query(c.params, "nextPageToken");
    if (auto st = query(c.params, "state"); !st.empty()) {
      auto parsed = parse_workflow_state(st);
      if (!parsed.ok()) return parsed.status();
      lr.state = *parsed;
    }
    lr.type = query(c.params, "type");
    if (lr.type.size() > 64) return Status::InvalidArgument("type: unknown workflow type");
    auto page = svc.workflows().list(lr);
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& w : page->workflows) a.push_back(http::detail::to_json(w));
    return json::value(
        json::object{{"workflows", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  // ?waitMs=N (0..10000): answer as soon as the workflow has ended, or after N ms with it as it
  // is then (a long poll, so a client waiting for the end learns it at once).
  add("GET", "/api/v1/workflows/{workflowId}", [&svc](Call& c) -> R {
    const std::string& id = c.params.path["workflowId"];
    Result<Workflow> w = Status::Internal("no answer");
    if (auto it = c.params.query.find("waitMs"); it != c.params.query.end()) {
      int ms = -1;
      const auto& v = it->second;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
      if (ec != std::errc() || p != v.data() + v.size() || ms < 0 || ms > 10000)
        return Status::InvalidArgument("waitMs: must be an integer 0..10000");
      w = svc.workflows().wait(WorkflowId(id), std::chrono::milliseconds(ms));
      if (w.status().code() == Code::kDeadlineExceeded) w = svc.workflows().get(WorkflowId(id));
    } else {
      w = svc.workflows().get(WorkflowId(id));
    }
    if (!w.ok()) return w.status();
    return json::value(json::object{{"workflow", http::detail::to_json(*w)}});
  });
  add.last().wait_parameter = "waitMs";
  add("POST", "/api/v1/workflows/{workflowId}/cancel", [&svc](Call& c) -> R {
    auto body = parse_body(c.req, true);
    if (!body.ok()) return body.status();
    ObjectReader o(*body, "");
    if (Status s = o.finish(); !s.ok()) return s;
    if (Status s = svc.workflows().cancel(WorkflowId(c.params.path["workflowId"])); !s.ok())
      return s;
    return json::value(ok_body());
  });
  add.calls_clusters();
}

}  // namespace dmscore::http::routing
