// Full copies of a consistency group (copy sets) and their actions.
#include "http/route_table.hpp"

namespace dmscore::http::routing {

void add_copy_set_routes(RouteTable& add, Service& svc) {
  const std::string copies = "/api/v1/consistency-groups/{consistencyGroupId}/full-copies";
  add("POST", copies, [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateFullCopiesRequest r;
    r.consistency_group_id = c.params.path["consistencyGroupId"];
    std::optional<int> count;
    ObjectReader o(*body, "");
    o.string("name", r.name, true);
    o.integer("count", count);
    o.boolean("partial", r.partial);
    o.strings("volumeIds", r.volume_ids, 64);
    o.boolean("createInactive", r.create_inactive);
    o.string("clusterId", r.cluster_id);
    o.string("projectName", r.project_name);
    if (Status s = o.finish(); !s.ok()) return s;
    if (count) r.count = *count;
    auto w = svc.copy_sets().create(r);
    if (!w.ok()) return w.status();
    return json::value(http::detail::to_json(*w));
  });
  add.calls_clusters();
  add("GET", copies, [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken"}); !s.ok()) return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page = svc.copy_sets().list(GroupId(c.params.path["consistencyGroupId"]),
                                     {*n, query(c.params, "nextPageToken")});
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& cs : page->copy_sets) a.push_back(http::detail::to_json(cs));
    return json::value(
        json::object{{"copySets", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  add("GET", copies + "/{copySetId}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto cs = svc.copy_sets().get(
        {GroupId(c.params.path["consistencyGroupId"]), CopySetId(c.params.path["copySetId"])});
    if (!cs.ok()) return cs.status();
    return json::value(json::object{{"copySet", http::detail::to_json(*cs)}});
  });
  add("POST", copies + "/{copySetId}/action", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = action_body(c.req, "activate, detach, resynchronize or restore");
    if (!body.ok()) return body.status();
    CopySetActionRequest r;
    ObjectReader o(*body, "");
    const json::value* found = nullptr;
    for (auto a : {CopyAction::kActivate, CopyAction::kDetach, CopyAction::kResynchronize,
                   CopyAction::kRestore}) {
      const std::string key(to_string(a));
      if (const json::value* v = o.object(key.c_str())) {
        found = v;
        r.action = a;
      }
    }
    if (Status s = o.finish(); !s.ok()) return s;
    if (!found) return Status::InvalidArgument("body: the action must be an object, not null");
    const std::string key(to_string(r.action));
    ObjectReader ao(*found, key);
    ao.integers("copies", r.copies, 8);
    if (r.action == CopyAction::kRestore) ao.boolean("confirm", r.confirm);
    if (Status s = ao.finish(); !s.ok()) return s;
    auto w = svc.copy_sets().act(
        {GroupId(c.params.path["consistencyGroupId"]), CopySetId(c.params.path["copySetId"])}, r);
    if (!w.ok()) return w.status();
    return json::value(http::detail::to_json(*w));
  });
  add.calls_clusters();
}

}  // namespace dmscore::http::routing
