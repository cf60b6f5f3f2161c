// Volumes and snapshots of a cluster, and thick clones of a snapshot.
#include "http/route_table.hpp"

namespace dmscore::http::routing {

void add_volume_routes(RouteTable& add, Service& svc) {
  const std::string vols = "/api/v1/clusters/{clusterId}/projects/{projectName}/volumes";
  const std::string snaps = "/api/v1/clusters/{clusterId}/projects/{projectName}/snapshots";
  add("GET", vols, [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken"}); !s.ok()) return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page =
        svc.volumes().list({ClusterId(c.params.path["clusterId"]), c.params.path["projectName"]},
                           {*n, query(c.params, "nextPageToken")});
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& v : page->volumes) a.push_back(http::detail::to_json(v));
    return json::value(
        json::object{{"volumes", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  add.calls_clusters();
  add("POST", vols, [&svc](Call& c) -> R {
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateVolumeRequest r;
    r.project_name = c.params.path["projectName"];
    std::optional<std::uint64_t> size;
    std::optional<int> replica, sector;
    ObjectReader o(*body, "");
    o.string("name", r.name, true);
    o.size("size", size, true);
    o.integer("replicaCount", replica);
    o.integer("sectorSize", sector);
    o.boolean("compression", r.compression);
    o.string("sourceSnapshotId", r.source_snapshot_id);
    if (Status s = o.finish(); !s.ok()) return s;
    r.size = *size;
    if (replica) r.replica_count = *replica;
    if (sector) r.sector_size = *sector;
    auto v = svc.volumes().create(ClusterId(c.params.path["clusterId"]), r);
    if (!v.ok()) return v.status();
    return json::value(json::object{{"volume", http::detail::to_json(*v)}});
  });
  add.calls_clusters();
  add("GET", vols + "/{volumeId}", [&svc](Call& c) -> R {
    auto v = svc.volumes().get({ClusterId(c.params.path["clusterId"]), c.params.path["projectName"],
                                c.params.path["volumeId"]});
    if (!v.ok()) return v.status();
    return json::value(json::object{{"volume", http::detail::to_json(*v)}});
  });
  add.calls_clusters();
  add("DELETE", vols + "/{volumeId}", [&svc](Call& c) -> R {
    if (Status s = svc.volumes().remove({ClusterId(c.params.path["clusterId"]),
                                         c.params.path["projectName"], c.params.path["volumeId"]});
        !s.ok())
      return s;
    return json::value(ok_body());
  });
  add.calls_clusters();
  add("GET", snaps, [&svc](Call& c) -> R {
    if (Status s = check_query(c.params, {"pageSize", "nextPageToken"}); !s.ok()) return s;
    auto n = page_size(c.params);
    if (!n.ok()) return n.status();
    auto page = svc.volumes().list_snapshots(
        {ClusterId(c.params.path["clusterId"]), c.params.path["projectName"]},
        {*n, query(c.params, "nextPageToken")});
    if (!page.ok()) return page.status();
    json::array a;
    for (auto& s : page->snapshots) a.push_back(http::detail::to_json(s));
    return json::value(
        json::object{{"snapshots", std::move(a)}, {"nextPageToken", page->next_page_token}});
  });
  add.calls_clusters();
  add("POST", snaps, [&svc](Call& c) -> R {
    auto body = parse_body(c.req, false);
    if (!body.ok()) return body.status();
    CreateSnapshotRequest r;
    r.project_name = c.params.path["projectName"];
    ObjectReader o(*body, "");
    o.string("name", r.name, true);
    o.string("sourceVolumeId", r.source_volume_id, true);
    o.string("description", r.description);
    if (Status s = o.finish(); !s.ok()) return s;
    auto s = svc.volumes().create_snapshot(ClusterId(c.params.path["clusterId"]), r);
    if (!s.ok()) return s.status();
    return json::value(json::object{{"snapshot", http::detail::to_json(*s)}});
  });
  add.calls_clusters();
  add("GET", snaps + "/{snapshotId}", [&svc](Call& c) -> R {
    auto s =
        svc.volumes().get_snapshot({ClusterId(c.params.path["clusterId"]),
                                    c.params.path["projectName"], c.params.path["snapshotId"]});
    if (!s.ok()) return s.status();
    return json::value(json::object{{"snapshot", http::detail::to_json(*s)}});
  });
  add.calls_clusters();
  add("DELETE", snaps + "/{snapshotId}", [&svc](Call& c) -> R {
    if (Status s = svc.volumes().remove_snapshot({ClusterId(c.params.path["clusterId"]),
                                                  c.params.path["projectName"],
                                                  c.params.path["snapshotId"]});
        !s.ok())
      return s;
    return json::value(ok_body());
  });
  add.calls_clusters();

  for (bool snapshot : {false, true}) {
    add("POST", snapshot ? "/api/v1/snapshots/thickclone" : "/api/v1/volumes/thickclone",
        [&svc, snapshot](Call& c) -> R {
          auto body = parse_body(c.req, false);
          if (!body.ok()) return body.status();
          auto req = dmscore::detail::thick_clone_request_from_json(*body);
          if (!req.ok()) return req.status();
          auto id = snapshot ? svc.clones().snapshot(*req) : svc.clones().volume(*req);
          if (!id.ok()) return id.status();
          return workflow_id_body(*id);
        });
    add.calls_clusters();
  }
}

}  // namespace dmscore::http::routing
