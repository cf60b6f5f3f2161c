#include "workflows/attach_cluster.hpp"

#include "base/codec.hpp"
#include "catalog/cluster_catalog.hpp"
#include "catalog/rows.hpp"
#include "service/service_impl.hpp"

namespace dmscore::detail {

namespace json = boost::json;

namespace {

// The cluster attached under `id` or at `endpoint`; "" when none.
Result<std::string> attached_as(Service::Impl& s, const std::string& id,
                                const std::string& endpoint) {
  return rows::read<std::string>(
      *s.store, [&](Txn& t) { return ClusterCatalog::attached_as(t, id, endpoint); });
}

// OK with the result of an earlier run when the cluster found is the one this workflow
// attached before a restart; ALREADY_EXISTS (`why`) otherwise.
Status attached_already(StepContext& ctx, const std::string& found, const std::string& why) {
  if (ctx.resumed() && ctx.var("clusterId") == found) {
    ctx.set_result(json::serialize(json::object{{"clusterId", found}}));
    return Status::Ok();
  }
  return Status::AlreadyExists(why);
}

Status attach_lightbits(Service::Impl& s, StepContext& ctx, const std::string& given,
                        const std::string& name) {
  auto endpoint = lightbits_endpoint(given);
  if (!endpoint.ok()) return endpoint.status();
  auto b = s.make_lightbits({*endpoint}, *endpoint);
  if (!b.ok()) return b.status();
  auto info = (*b)->info();
  if (!info.ok()) {
    if (info.status().code() == Code::kUnauthenticated ||
        info.status().code() == Code::kPermissionDenied) {
      auto c = s.identity->credentials();
      return Status::FailedPrecondition(
          "the cluster at " + *endpoint +
          " refused the service's token: import the service's public key there, then attach "
          "again. Write the key with `dmsctl get service-credentials --pem-out dms.pem` and "
          "run on the cluster: lbcli create credential --project-name=system "
          "--type=rsa256pubkey --id=" +
          c.pub_key_id + " dms.pem (" + info.status().message() + ")");
    }
    return info.status();
  }
  if (!name.empty()) info->name = name;
  std::unique_lock lock(s.registry_mu);
  auto found = attached_as(s, info->id, *endpoint);
  if (!found.ok()) return found.status();
  if (!found->empty())
    return attached_already(ctx, *found, "cluster " + info->id + " is already attached");
  if (Status room = s.check_cluster_room(); !room.ok()) return room;
  ctx.set_var("clusterId", info->id);
  Status r = s.record_cluster(*info, ClusterKind::kLightbits, *endpoint, ctx.resumed());
  if (!r.ok()) return r;
  auto reopened =
      s.make_lightbits(s.endpoints_of(*endpoint, info->api_endpoints), info->id, info->id);
  s.backends[info->id] = s.gated(info->id, reopened.ok() ? *reopened : *b);
  ctx.set_result(json::serialize(json::object{{"clusterId", info->id}}));
  return Status::Ok();
}

Status attach_step(Service::Impl& s, StepContext& ctx) {
  auto v = parse_json(ctx.request());
  if (!v.ok()) return v.status();
  auto req = attach_cluster_request_from_json(*v);
  if (!req.ok()) return req.status();
  auto dir = local_cluster_dir(req->api_endpoint);
  if (!dir.ok()) return dir.status();
  if (!*dir) return attach_lightbits(s, ctx, req->api_endpoint, req->name);
  const std::string endpoint = "file://" + **dir;
  std::unique_lock lock(s.registry_mu);
  // Already attached (possibly by this very workflow before a crash)?
  auto found = attached_as(s, "", endpoint);
  if (!found.ok()) return found.status();
  if (!found->empty())
    return attached_already(ctx, *found,
                            "the cluster at " + endpoint + " is already attached as " + *found);
  if (Status room = s.check_cluster_room(); !room.ok()) return room;
  if (Status o = s.check_no_overlap(**dir); !o.ok()) return o;
  auto b = LocalBackend::open(**dir, req->name, s.local_options());
  if (!b.ok()) return b.status();
  auto info = (*b)->info();
  if (!info.ok()) return info.status();
  if (s.backends.count(info->id))
    return Status::AlreadyExists("cluster " + info->id + " is already attached");
  ctx.set_var("clusterId", info->id);
  if (Status r = s.record_cluster(*info, ClusterKind::kLocal, endpoint, ctx.resumed()); !r.ok())
    return r;
  if (Status r = (*b)->repair_needed(); !r.ok()) {
    if (Status w = s.set_status(info->id, ConnectionStatus::kNeedsRepair, r.message()); !w.ok())
      return w;
  }
  s.backends[info->id] = s.gated(info->id, std::shared_ptr<Backend>(std::move(b).value()));
  ctx.set_result(json::serialize(json::object{{"clusterId", info->id}}));
  return Status::Ok();
}

}  // namespace

Status register_attach_cluster(WorkflowEngine& engine, Service::Impl& s) {
  return engine.register_type(
      {kAttachCluster, {{"attach", [&s](StepContext& c) { return attach_step(s, c); }}}});
}

}  // namespace dmscore::detail
