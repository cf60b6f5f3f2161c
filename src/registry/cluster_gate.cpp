#include "registry/cluster_gate.hpp"

#include "base/call_scope.hpp"

namespace dmscore::detail {

namespace {

std::int64_t ceil_seconds(std::chrono::nanoseconds d) {
  auto s = std::chrono::ceil<std::chrono::seconds>(d).count();
  return s < 1 ? 1 : s;
}

}  // namespace

ClusterGate::ClusterGate(std::string cluster_id, GateOptions options, std::shared_ptr<Env> env)
    : cluster_id_(std::move(cluster_id)),
      options_(std::move(options)),
      env_(env ? std::move(env) : Env::Default()) {}

ClusterGate::Permit::~Permit() {
  if (!gate_) return;
  std::lock_guard lock(gate_->mu_);
  --gate_->in_flight_;
}

Result<ClusterGate::Permit> ClusterGate::enter() {
  std::lock_guard lock(mu_);
  const auto now = env_->steady_now();
  bool probe = false;
  if (open_until_) {
    if (now < *open_until_) {
      ++counters_.refused_open;
      return Status::Unavailable("cluster " + cluster_id_ + " did not answer in time; calls to " +
                                 "it are refused for a while, retry in " +
                                 std::to_string(ceil_seconds(*open_until_ - now)) + " s");
    }
    // Cooled down: one call may try whether the cluster answers again.
    if (probing_) {
      ++counters_.refused_open;
      return Status::Unavailable("cluster " + cluster_id_ +
                                 " is being tried again after a timeout; retry in 1 s");
    }
    probing_ = probe = true;
  }
  if (in_flight_ >= options_.max_calls) {
    if (probe) probing_ = false;
    ++counters_.refused_busy;
    return Status::Unavailable("cluster " + cluster_id_ + " already has " +
                               std::to_string(in_flight_) + " calls in flight; retry in 1 s");
  }
  ++in_flight_;
  return Permit(this, probe);
}

void ClusterGate::record(const Status& s, bool probe) {
  std::lock_guard lock(mu_);
  if (probe) probing_ = false;
  if (s.code() == Code::kDeadlineExceeded) {
    ++counters_.timeouts;
    const bool was_open = open_until_.has_value();
    open_until_ = env_->steady_now() + options_.cooldown;
    if (!was_open && options_.log)
      options_.log("cluster " + cluster_id_ + " did not answer in time (" + s.message() +
                   "); its callers are refused for " + std::to_string(options_.cooldown.count()) +
                   " ms");
    return;
  }
  // An answer (even an error one) shows the cluster is there; a connection failure says
  // nothing new about hanging.
  if (s.code() != Code::kUnavailable && open_until_) {
    open_until_.reset();
    if (options_.log) options_.log("cluster " + cluster_id_ + " answers again");
  }
}

Status ClusterGate::call(const std::function<Status()>& fn) {
  if (on_io_thread()) {
    {
      std::lock_guard lock(mu_);
      ++counters_.io_thread_calls;
    }
    if (!warned_io_.exchange(true) && options_.log)
      options_.log("BUG: a call to cluster " + cluster_id_ + " ran on an HTTP I/O thread");
  }
  if (!CallScope::deadline()) {
    Status s = fn();
    record(s, false);
    return s;
  }
  auto permit = enter();
  if (!permit.ok()) return permit.status();
  Status s = fn();
  record(s, permit->probe());
  return s;
}

GateStats ClusterGate::stats() const {
  std::lock_guard lock(mu_);
  GateStats out = counters_;
  out.in_flight = in_flight_;
  out.open = open_until_ && env_->steady_now() < *open_until_;
  return out;
}

Result<ClusterInfo> GatedBackend::info() {
  return through<ClusterInfo>([&] { return inner_->info(); });
}
Result<VolumePage> GatedBackend::list_volumes(const std::string& project, const PageRequest& page) {
  return through<VolumePage>([&] { return inner_->list_volumes(project, page); });
}
Result<Volume> GatedBackend::get_volume(const std::string& project, const std::string& id) {
  return through<Volume>([&] { return inner_->get_volume(project, id); });
}
Result<Volume> GatedBackend::find_volume(const std::string& project, const std::string& name) {
  return through<Volume>([&] { return inner_->find_volume(project, name); });
}
Result<Volume> GatedBackend::create_volume(const CreateVolumeRequest& request) {
  return through<Volume>([&] { return inner_->create_volume(request); });
}
Status GatedBackend::mark_volume_available(const std::string& project, const std::string& id) {
  return gate_->call([&] { return inner_->mark_volume_available(project, id); });
}
Status GatedBackend::delete_volume(const std::string& project, const std::string& id) {
  return gate_->call([&] { return inner_->delete_volume(project, id); });
}
Result<SnapshotPage> GatedBackend::list_snapshots(const std::string& project,
                                                  const PageRequest& page) {
  return through<SnapshotPage>([&] { return inner_->list_snapshots(project, page); });
}
Result<Snapshot> GatedBackend::get_snapshot(const std::string& project, const std::string& id) {
  return through<Snapshot>([&] { return inner_->get_snapshot(project, id); });
}
Result<Snapshot> GatedBackend::find_snapshot(const std::string& project, const std::string& name) {
  return through<Snapshot>([&] { return inner_->find_snapshot(project, name); });
}
Result<Snapshot> GatedBackend::create_snapshot(const CreateSnapshotRequest& request) {
  return through<Snapshot>([&] { return inner_->create_snapshot(request); });
}
Status GatedBackend::delete_snapshot(const std::string& project, const std::string& id) {
  return gate_->call([&] { return inner_->delete_snapshot(project, id); });
}
Result<std::vector<ManageableObject>> GatedBackend::list_manageable_volumes() {
  return through<std::vector<ManageableObject>>([&] { return inner_->list_manageable_volumes(); });
}
Result<Volume> GatedBackend::manage_volume(const ManageVolumeRequest& request) {
  return through<Volume>([&] { return inner_->manage_volume(request); });
}
Result<std::string> GatedBackend::unmanage_volume(const std::string& project,
                                                  const std::string& id) {
  return through<std::string>([&] { return inner_->unmanage_volume(project, id); });
}
Result<std::vector<ManageableObject>> GatedBackend::list_manageable_snapshots() {
  return through<std::vector<ManageableObject>>(
      [&] { return inner_->list_manageable_snapshots(); });
}
Result<Snapshot> GatedBackend::manage_snapshot(const ManageSnapshotRequest& request) {
  return through<Snapshot>([&] { return inner_->manage_snapshot(request); });
}
Result<std::string> GatedBackend::unmanage_snapshot(const std::string& project,
                                                    const std::string& id) {
  return through<std::string>([&] { return inner_->unmanage_snapshot(project, id); });
}
Result<std::unique_ptr<BlockSource>> GatedBackend::open_snapshot_data(const std::string& project,
                                                                      const std::string& id,
                                                                      const DataAccess& access) {
  return through<std::unique_ptr<BlockSource>>(
      [&] { return inner_->open_snapshot_data(project, id, access); });
}
Result<std::unique_ptr<BlockSource>> GatedBackend::open_volume_data(const std::string& project,
                                                                    const std::string& id,
                                                                    const DataAccess& access) {
  return through<std::unique_ptr<BlockSource>>(
      [&] { return inner_->open_volume_data(project, id, access); });
}
Result<std::unique_ptr<BlockSink>> GatedBackend::open_volume_sink(const std::string& project,
                                                                  const std::string& id, bool fresh,
                                                                  const DataAccess& access) {
  return through<std::unique_ptr<BlockSink>>(
      [&] { return inner_->open_volume_sink(project, id, fresh, access); });
}
Status GatedBackend::release_data(const std::string& resource) {
  return gate_->call([&] { return inner_->release_data(resource); });
}

}  // namespace dmscore::detail
