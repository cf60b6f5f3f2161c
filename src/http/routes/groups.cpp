// Consistency groups, their group snapshots and group thick clones.
#include "http/route_table.hpp"

namespace dmscore::http::routing {

void add_group_routes(RouteTable& add, Service& svc) {
  const std::string groups = "/api/v1/consistency-groups";
  add("GET", groups, [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken"}); !s.ok()) return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page = svc.groups().list({*n, query(c.params, "nextPageToken")});
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& g : page->groups) a.push_back(http::detail::to_json(g));
    return json::value(json::object{{"consistencyGroups", std::move(a)},
                                    {"nextPageToken", page->next_page_token}});
  });
  add("POST", groups, [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateGroupRequest r;
    ObjectReader o(*body, "");
    o.string("name", r.name, true);
    o.string("description", r.description);
    o.string("clusterId", r.cluster_id);
    o.string("projectName", r.project_name);
    o.strings("volumeIds", r.volume_ids, 64);
    o.string("sourceCgSnapshotId", r.source_cg_snapshot_id);
    if (Status s = o.finish(); !s.ok()) return s;
    auto g = svc.groups().create(r);
    if (!g.ok()) return g.status();
    return json::value(json::object{{"consistencyGroup", http::detail::to_json(*g)}});
  });
  add.calls_clusters();
  add("GET", groups + "/{consistencyGroupId}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto g = svc.groups().get(GroupId(c.params.path["consistencyGroupId"]));
    if (!g.ok()) return g.status();
    return json::value(json::object{{"consistencyGroup", http::detail::to_json(*g)}});
  });
  add("PUT", groups + "/{consistencyGroupId}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    UpdateGroupRequest r;
    ObjectReader o(*body, "");
    o.string("name", r.name);
    o.string("description", r.description);
    o.strings("addVolumeIds", r.add_volume_ids, 64);
    o.strings("removeVolumeIds", r.remove_volume_ids, 64);
    if (Status s = o.finish(); !s.ok()) return s;
    auto g = svc.groups().update(GroupId(c.params.path["consistencyGroupId"]), r);
    if (!g.ok()) return g.status();
    return json::value(json::object{{"consistencyGroup", http::detail::to_json(*g)}});
  });
  add.calls_clusters();
  add("DELETE", groups + "/{consistencyGroupId}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    if (Status s = svc.groups().remove(GroupId(c.params.path["consistencyGroupId"])); !s.ok())
      return s;
    return json::value(ok_body());
  });
  add.calls_clusters();
  add("POST", groups + "/{consistencyGroupId}/action", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = action_body(c.req, "resetStatus or forceDelete");
    if (!body.ok()) return body.status();
    ObjectReader o(*body, "");
    const json::value* reset = o.object("resetStatus");
    const json::value* force = o.object("forceDelete");
    if (Status s = o.finish(); !s.ok()) return s;
    if (!reset && !force)
      return Status::InvalidArgument("body: the action must be an object, not null");
    const std::string& id = c.params.path["consistencyGroupId"];
    if (reset) {
      std::string status;
      ObjectReader ro(*reset, "resetStatus");
      ro.string("status", status, true);
      if (Status s = ro.finish(); !s.ok()) return s;
      auto st = parse_group_status(status, "resetStatus.status");
      if (!st.ok()) return st.status();
      if (Status s = svc.groups().reset_status(GroupId(id), *st, c.principal.user); !s.ok())
        return s;
    } else {
      ObjectReader fo(*force, "forceDelete");
      if (Status s = fo.finish(); !s.ok()) return s;
      if (Status s = svc.groups().force_remove(GroupId(id), c.principal.user); !s.ok()) return s;
    }
    return json::value(ok_body());
  });
  add.calls_clusters();

  // A literal segment: it wins over "{consistencyGroupId}" (see handle).
  add("POST", groups + "/thickclone", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    ThickCloneGroupRequest r;
    ObjectReader o(*body, "");
    const json::value* src = o.object("src", true);
    const json::value* dst = o.object("dst", true);
    o.boolean("verifyClone", r.verify_clone);
    if (Status s = o.finish(); !s.ok()) return s;
    ObjectReader so(*src, "src");
    so.string("cgSnapshotId", r.src_cg_snapshot_id, true);
    if (Status s = so.finish(); !s.ok()) return s;
    ObjectReader dso(*dst, "dst");
    dso.string("name", r.dst_name, true);
    dso.string("clusterId", r.dst_cluster_id);
    dso.string("projectName", r.dst_project_name);
    if (Status s = dso.finish(); !s.ok()) return s;
    auto g = svc.clones().group(r);
    if (!g.ok()) return g.status();
    return json::value(json::object{{"consistencyGroup", http::detail::to_json(*g)},
                                    {"workflowId", g->workflow_id}});
  });
  add.calls_clusters();
}

void add_cg_snapshot_routes(RouteTable& add, Service& svc) {
  const std::string cgsnaps = "/api/v1/cg-snapshots";
  add("GET", cgsnaps, [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken", "consistencyGroupId"});
        !s.ok())
      return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page = svc.groups().list_snapshots({*n, query(c.params, "nextPageToken")},
                                            GroupId(query(c.params, "consistencyGroupId")));
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& cs : page->cg_snapshots) a.push_back(http::detail::to_json(cs));
    return json::value(
        json::object{{"cgSnapshots", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  add("POST", cgsnaps, [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateCgSnapshotRequest r;
    ObjectReader o(*body, "");
    o.string("consistencyGroupId", r.consistency_group_id, true);
    o.string("name", r.name);
    o.string("description", r.description);
    if (Status s = o.finish(); !s.ok()) return s;
    auto cs = svc.groups().create_snapshot(r);
    if (!cs.ok()) return cs.status();
    return json::value(
        json::object{{"cgSnapshot", http::detail::to_json(*cs)}, {"workflowId", cs->workflow_id}});
  });
  add.calls_clusters();
  add("GET", cgsnaps + "/{cgSnapshotId}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto cs = svc.groups().get_snapshot(CgSnapshotId(c.params.path["cgSnapshotId"]));
    if (!cs.ok()) return cs.status();
    return json::value(json::object{{"cgSnapshot", http::detail::to_json(*cs)}});
  });
  add("GET", cgsnaps + "/{cgSnapshotId}/members", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    auto cs = svc.groups().get_snapshot(CgSnapshotId(c.params.path["cgSnapshotId"]));
    if (!cs.ok()) return cs.status();
    json::array a;
    for (auto& m : cs->members) a.push_back(http::detail::to_json(m));
    return json::value(json::object{{"members", std::move(a)}});
  });
  add("DELETE", cgsnaps + "/{cgSnapshotId}", [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {}); !s.ok()) return s;
    if (Status s = svc.groups().remove_snapshot(CgSnapshotId(c.params.path["cgSnapshotId"]));
        !s.ok())
      return s;
    return json::value(ok_body());
  });
  add.calls_clusters();
}

}  // namespace dmscore::http::routing
