#include "dmscore/service.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>

#include "backends/nvme_host.hpp"
#include "base/codec.hpp"
#include "copy/file_io.hpp"
#include "service/service_impl.hpp"

namespace dmscore {

namespace fs = std::filesystem;
using detail::Fd;

namespace detail {

// This instance's id on a shared store: made once ("<host>-<8 hex>") and kept in
// <data_dir>/instance-id, so that a restarted instance takes back what it ran.
Result<std::string> instance_id(const std::string& data_dir, Env& env) {
  const std::string path = data_dir + "/instance-id";
  std::error_code ec;
  if (fs::exists(path, ec)) {
    auto text = read_small_file(path, 256);
    if (!text.ok()) return text.status();
    std::string id = *text;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    bool good = !id.empty() && id.size() <= 64;
    for (char c : id)
      good =
          good && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
    if (!good)
      return Status::FailedPrecondition(path +
                                        " does not hold an instance id (1..64 of "
                                        "[A-Za-z0-9._-]); fix or remove it");
    return id;
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string id;
  for (const char* p = host; *p && id.size() < 40; ++p)
    if (std::isalnum(static_cast<unsigned char>(*p)) || *p == '-') id += *p;
  if (id.empty()) id = "dms";
  id += "-" + random_hex(env, 4);
  if (Status s = write_file_atomic(path, id + "\n", 0600); !s.ok()) return s;
  return id;
}

}  // namespace detail

Service::Service(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)),
      clusters_(*impl_),
      volumes_(*impl_),
      clones_(*impl_),
      groups_(*impl_),
      copy_sets_(*impl_),
      workflows_(*impl_),
      sources_(*impl_),
      migrations_(*impl_) {}

Service::~Service() {
  if (impl_->health.joinable()) {
    {
      std::lock_guard lock(impl_->health_mu);
      impl_->health_stop = true;
    }
    impl_->health_cv.notify_all();
    impl_->health.join();
  }
  // Migration streams first: their flushers call the store, the engine and the drivers.
  impl_->streams->stop_all();
  if (impl_->engine) impl_->engine->stop();
  impl_->engine.reset();
  impl_->full_copies.reset();
  impl_->groups.reset();
  impl_->backends.clear();
}

Result<std::unique_ptr<Service>> Service::open(Options options) {
  if (Status s = validate(options); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->env = options.env ? options.env : Env::Default();
  if (!options.log) {
    options.log = [](std::string_view line) {
      std::fprintf(stderr, "dmscore: %.*s\n", static_cast<int>(line.size()), line.data());
    };
  }
  std::error_code ec;
  if (!fs::exists(options.data_dir, ec)) {
    fs::create_directories(options.data_dir, ec);
    if (ec)
      return Status::Unavailable("cannot create data_dir " + options.data_dir + ": " +
                                 ec.message());
    ::chmod(options.data_dir.c_str(), 0700);
  } else if (!fs::is_directory(options.data_dir, ec)) {
    return Status::InvalidArgument("data_dir: " + options.data_dir + " is not a directory");
  }
  if (Status s = detail::keep_private(options.data_dir, options.log); !s.ok()) return s;
  if (!options.local_cluster_file_group.empty()) {
    auto gid = detail::group_id(options.local_cluster_file_group);
    if (!gid.ok()) return gid.status();
    impl->file_gid = *gid;
  }
  impl->dir_lock =
      Fd(::open((options.data_dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!impl->dir_lock.valid()) return detail::errno_status("open " + options.data_dir + "/.lock");
  if (::flock(impl->dir_lock.get(), LOCK_EX | LOCK_NB) != 0)
    return Status::Unavailable("data_dir " + options.data_dir +
                               " is in use by another process; stop it first");
  StoreOptions so;
  so.busy_timeout_ms = static_cast<int>(options.store_busy_timeout.count());
  so.env = impl->env;
  const bool shared = !options.store.empty();
  auto store = Store::open(shared ? options.store : options.data_dir + "/dms.db", so);
  if (!store.ok()) return store.status();
  impl->store = std::move(store).value();
  if (shared) {
    auto id = detail::instance_id(options.data_dir, *impl->env);
    if (!id.ok()) return id.status();
    impl->instance_id = *id;
    impl->clusters_cache.share(impl->store.get(), "clusters");
  }
  // The service's id: made once, kept for ever.
  if (Status s = impl->store->transact([&](Txn& t) -> Status {
        auto r =
            t.exec("INSERT OR IGNORE INTO service_facts (name, value) VALUES ('service-id', ?)",
                   {impl->env->new_uuid()});
        if (!r.ok()) return r.status();
        auto row = t.query_one("SELECT value FROM service_facts WHERE name = 'service-id'");
        if (!row.ok()) return row.status();
        impl->service_id = *row ? (**row).text(0) : "";
        return Status::Ok();
      });
      !s.ok())
    return s;
  impl->options = options;

  IdentityOptions io;
  io.rsa_bits = options.rsa_bits;
  io.env = impl->env;
  auto identity = shared ? Identity::open_in_store(*impl->store, options.store_key_file, io)
                         : Identity::open(options.data_dir + "/identity", io);
  if (!identity.ok()) return identity.status();
  impl->identity = std::move(identity).value();
  impl->cluster_tokens =
      std::make_unique<ClusterTokenSigner>(*impl->identity, ClusterTokenOptions{}, impl->env);
  AuthOptions ao;
  ao.token_ttl = options.token_ttl;
  ao.scrypt_log2_n = options.scrypt_log2_n;
  ao.max_failures = options.login_failures_per_user;
  ao.max_failures_per_source = options.login_failures_per_source;
  ao.hash_concurrency = options.password_hash_concurrency;
  ao.hash_queue = options.password_hash_queue;
  ao.audit_log_path = options.data_dir + "/audit.log";
  ao.log = options.log;
  ao.env = impl->env;
  impl->auth = std::make_unique<Auth>(*impl->store, *impl->identity, ao);
  auto boot =
      impl->auth->bootstrap_admin(options.admin_password, options.data_dir + "/admin-password");
  if (!boot.ok()) return boot.status().with_prefix("bootstrap admin");
  if (Status s = impl->load_clusters(); !s.ok()) return s;

  EngineOptions eo;
  eo.max_running_workflows = options.max_running_workflows;
  eo.threads = options.workflow_threads;
  eo.progress_persist_interval = options.progress_persist_interval;
  eo.store_retry_budget = options.store_retry_budget;
  eo.log = options.log;
  eo.env = impl->env;
  if (shared) {
    eo.instance_id = impl->instance_id;
    eo.instance_address = options.instance_address;
    eo.lease_ttl = options.instance_lease;
    eo.heartbeat_interval = options.instance_heartbeat;
    eo.claim_interval = std::min(std::chrono::milliseconds(500), options.instance_heartbeat);
    Impl* raw = impl.get();
    eo.reach = [raw](std::vector<std::string>& placed, std::vector<std::string>& reached) {
      raw->sync_clusters(placed, reached);
    };
  }
  impl->engine = std::make_unique<WorkflowEngine>(*impl->store, eo);
  for (auto reg : {detail::register_attach_cluster, detail::register_refresh_clusters,
                   detail::register_repair_cluster, detail::register_thick_clones,
                   detail::register_manage_volume}) {
    if (Status s = reg(*impl->engine, *impl); !s.ok()) return s;
  }
  {
    detail::VolumeCopy::Deps d;
    d.options = &impl->options;
    d.env = impl->env;
    d.backend = [raw = impl.get()](const std::string& cid) { return raw->backend_locked(cid); };
    d.copy_bytes = &impl->copy_bytes;
    d.verify_bytes = &impl->verify_bytes;
    impl->pipeline = std::make_unique<detail::VolumeCopy>(std::move(d));
  }
  if (Status s = detail::register_migrate_source(*impl->engine, *impl); !s.ok()) return s;
  detail::Groups::Deps gd;
  gd.store = impl->store.get();
  gd.engine = impl->engine.get();
  gd.auth = impl->auth.get();
  gd.env = impl->env;
  gd.options = &impl->options;
  gd.registry_mu = &impl->registry_mu;
  {
    Impl* raw = impl.get();
    gd.backend = [raw](const std::string& cid, const std::string& field) {
      return raw->backend(cid, field);
    };
  }
  gd.links = &impl->copy_set_links;
  impl->groups = std::make_unique<detail::Groups>(gd);
  if (Status s = impl->groups->register_workflows(); !s.ok()) return s;
  detail::FullCopies::Deps fd;
  static_cast<detail::Groups::Deps&>(fd) = gd;
  fd.groups = impl->groups.get();
  fd.copy_bytes = &impl->copy_bytes;
  fd.verify_bytes = &impl->verify_bytes;
  impl->full_copies = std::make_unique<detail::FullCopies>(std::move(fd));
  if (Status s = impl->full_copies->register_workflows(); !s.ok()) return s;
  // The groups' and copy sets' recovery settles rows left in flight by a crash, assuming no one
  // else has any in flight: on a shared store only an instance that starts alone runs it.
  bool alone = true;
  if (shared) {
    Status a = impl->store->read([&](Txn& t) -> Status {
      auto r = t.query_one(
          "SELECT COUNT(*) FROM instances WHERE id <> ? AND lease_until >= "
          "CAST(floor(extract(epoch from clock_timestamp()) * 1000) AS BIGINT)",
          {impl->instance_id});
      if (!r.ok()) return r.status();
      alone = (*r)->int64(0) == 0;
      return Status::Ok();
    });
    if (!a.ok()) return a;
    if (!alone)
      options.log(
          "other instances are alive: this one leaves the recovery of groups and copy "
          "sets to the next instance that starts alone");
  }
  if (alone) {
    if (Status s = impl->groups->recover(); !s.ok()) return s;
  }
  if (Status s = impl->engine->start(); !s.ok()) return s;
  if (alone) {
    if (Status s = impl->full_copies->recover(); !s.ok()) return s;
  }
  if (impl->options.health_check_interval.count() > 0) {
    Impl* raw = impl.get();
    impl->health = std::thread([raw] { raw->health_loop(); });
  }
  return std::unique_ptr<Service>(new Service(std::move(impl)));
}

const Options& Service::options() const { return impl_->options; }
ServiceCredentials Service::service_credentials() const {
  ServiceCredentials c = impl_->identity->credentials();
  auto nqn = detail::resolve_host_nqn(impl_->options.host_nqn, impl_->options.host_nqn_file);
  if (nqn.ok()) c.host_nqn = *nqn;
  return c;
}
Identity& Service::identity() { return *impl_->identity; }
Auth& Service::auth() { return *impl_->auth; }
ClusterTokenSigner& Service::cluster_tokens() { return *impl_->cluster_tokens; }
bool Service::ready() const { return impl_->engine && impl_->engine->ready(); }

Result<ServiceStats> Service::stats() const {
  ServiceStats out;
  Status s = impl_->store->read([&](Txn& t) -> Status {
    auto rows = t.query("SELECT type, state, COUNT(*) FROM workflows GROUP BY type, state");
    if (!rows.ok()) return rows.status();
    for (auto& r : *rows) {
      auto st = parse_workflow_state(r.text(1));
      if (st.ok()) out.workflows.push_back({r.text(0), *st, r.int64(2)});
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  out.copy_bytes_total = impl_->copy_bytes.load();
  out.verify_bytes_total = impl_->verify_bytes.load();
  std::shared_lock lock(impl_->registry_mu);
  for (const auto& [id, b] : impl_->backends)
    if (auto* local = dynamic_cast<LocalBackend*>(detail::ungated(b.get())))
      out.set_aside_files.emplace_back(id, local->set_aside_count());
  for (const auto& [id, gate] : impl_->gates) {
    auto g = gate->stats();
    out.cluster_calls.push_back(
        {id, g.refused_busy, g.refused_open, g.timeouts, g.io_thread_calls, g.in_flight, g.open});
  }
  out.instance_id = impl_->instance_id;
  out.lease = impl_->engine->lease_stats();
  out.running_here = impl_->engine->running_here();
  return out;
}

const std::string& Service::instance_id() const { return impl_->instance_id; }
Result<std::vector<InstanceInfo>> Service::instances() const { return impl_->engine->instances(); }

// ---- workflows ----

Result<Workflow> Workflows::get(const WorkflowId& id) const { return impl_->engine->get(id.str()); }
Result<WorkflowPage> Workflows::list(const ListWorkflowsRequest& r) const {
  return impl_->engine->list(r);
}
Status Workflows::cancel(const WorkflowId& id) {
  auto scope = impl_->caller();
  if (Status s = impl_->engine->cancel(id.str()); !s.ok()) return s;
  return impl_->full_copies->workflow_cancelled();
}
Result<Workflow> Workflows::wait(const WorkflowId& id, std::chrono::milliseconds timeout) const {
  return impl_->engine->wait(id.str(), timeout);
}

// ---- consistency groups (groups.cpp) ----

Result<ConsistencyGroup> ConsistencyGroups::create(const CreateGroupRequest& request) {
  auto scope = impl_->caller();
  return impl_->groups->create(request);
}

Result<GroupPage> ConsistencyGroups::list(const PageRequest& page) const {
  return impl_->groups->list(page);
}

Result<ConsistencyGroup> ConsistencyGroups::get(const GroupId& id) const {
  return impl_->groups->get(id.str());
}

Result<ConsistencyGroup> ConsistencyGroups::update(const GroupId& id,
                                                   const UpdateGroupRequest& request) {
  auto scope = impl_->caller();
  return impl_->groups->update(id.str(), request);
}

Status ConsistencyGroups::remove(const GroupId& id) {
  auto scope = impl_->caller();
  return impl_->groups->remove(id.str());
}

Status ConsistencyGroups::reset_status(const GroupId& id, GroupStatus status,
                                       const std::string& actor) {
  return impl_->groups->reset_status(id.str(), status, actor);
}

Status ConsistencyGroups::force_remove(const GroupId& id, const std::string& actor) {
  auto scope = impl_->caller();
  return impl_->groups->force_delete(id.str(), actor);
}

Result<CgSnapshot> ConsistencyGroups::create_snapshot(const CreateCgSnapshotRequest& request) {
  auto scope = impl_->caller();
  return impl_->groups->create_cg_snapshot(request);
}

Result<CgSnapshotPage> ConsistencyGroups::list_snapshots(const PageRequest& page,
                                                         const GroupId& group) const {
  return impl_->groups->list_cg_snapshots(page, group.str());
}

Result<CgSnapshot> ConsistencyGroups::get_snapshot(const CgSnapshotId& id) const {
  return impl_->groups->get_cg_snapshot(id.str());
}

Status ConsistencyGroups::remove_snapshot(const CgSnapshotId& id) {
  auto scope = impl_->caller();
  return impl_->groups->delete_cg_snapshot(id.str());
}

// ---- group full copies (full_copies.cpp) ----

Result<CopySetWork> CopySets::create(const CreateFullCopiesRequest& request) {
  auto scope = impl_->caller();
  return impl_->full_copies->create(request);
}

Result<CopySetPage> CopySets::list(const GroupId& group, const PageRequest& page) const {
  return impl_->full_copies->list(group.str(), page);
}

Result<CopySet> CopySets::get(const CopySetRef& set) const {
  return impl_->full_copies->get(set.group.str(), set.id.str());
}

Result<CopySetWork> CopySets::act(const CopySetRef& set, const CopySetActionRequest& request) {
  auto scope = impl_->caller();
  return impl_->full_copies->act(set.group.str(), set.id.str(), request);
}

Result<ConsistencyGroup> Clones::group(const ThickCloneGroupRequest& request) {
  auto scope = impl_->caller();
  return impl_->full_copies->thick_clone_group(request);
}

}  // namespace dmscore
