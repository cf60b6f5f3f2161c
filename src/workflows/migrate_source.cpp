// MIGRATE_SOURCE_SERVER: a source's disks into held volumes of a cluster, filled by the agent's
// stream, made Available at cutover (migrations.hpp).
//
//   check ──► set ──────────────► replicate ──────► sync ─────────────► cutover
//   cluster    a volume per disk   pass 0; parks     (syncing) a pass   the last pass; volumes
//   attached   (volume-copy        until every       per sync(), until  Available, source
//              pipeline's held     disk is           cutover()          finished
//              targets), the       acknowledged
//              checksum files      to its end
//     ▼ undo: the volumes this workflow made, and what drivers made to reach them, go; the
//       source is `waiting` again after a cancel, `error` after a failure
//
// The waiting steps park (StepContext::park): the thread goes back to the engine and the step
// runs again when a disk's pass ends, an operator acts, or a few seconds pass.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

#include "base/codec.hpp"
#include "catalog/migration_catalog.hpp"
#include "catalog/rows.hpp"
#include "engine/engine_txn.hpp"
#include "migrations/migration_impl.hpp"
#include "service/service_impl.hpp"

namespace dmscore::detail {

namespace json = boost::json;

namespace {

constexpr std::chrono::milliseconds kPark{2000};
// The workflow var counting the checksum files recorded before they were made (disks 0..n-1).
constexpr const char* kSumsMade = "sumsMade";

Result<SourceMigration> load(ServiceImpl& im, StepContext& c) {
  auto m = rows::read<std::optional<SourceMigration>>(
      *im.store, [&](Txn& t) { return MigrationCatalog::by_id(t, c.workflow_id()); });
  if (!m.ok()) return m.status();
  if (!*m) return Status::NotFound("migration " + c.workflow_id() + " is not recorded");
  return std::move(**m);
}

std::vector<CopyItem> items_of(const SourceMigration& m) {
  std::vector<CopyItem> items;
  for (const auto& d : m.disks) {
    CopyItem it;
    it.dst_cluster = m.cluster_id;
    it.dst_project = m.project_name;
    it.dst_name = d.volume_name;
    it.dst_volume_id = d.volume_id;
    // Volumes come in whole 4 KiB sectors; the bytes past the disk's end stay zero.
    it.size = (d.size + 4095) / 4096 * 4096;
    items.push_back(std::move(it));
  }
  return items;
}

// Moves the migration to `stage` with task state `task` and the source to `source_state` (left
// alone while the migration is stopped or in error, which keep theirs).
Status enter(ServiceImpl& im, const SourceMigration& m, const std::string& stage,
             const std::string& task, const std::string& source_state,
             const std::function<void(SourceMigration&)>& more = {}) {
  return im.store->transact([&](Txn& t) -> Status {
    auto cur = MigrationCatalog::by_id(t, m.id);
    if (!cur.ok()) return cur.status();
    if (!*cur) return Status::NotFound("migration " + m.id + " is not recorded");
    SourceMigration n = **cur;
    n.stage = stage;
    const bool held = n.stopped || !n.error.empty();
    if (!held) n.state = task;
    if (more) more(n);
    if (Status s = MigrationCatalog::update(t, n); !s.ok()) return s;
    return set_source_stage(im, t, n.source_id, held ? "" : source_state, stage);
  });
}

void progress(ServiceImpl& im, StepContext& c, const SourceMigration& m, int from_pct, int to_pct,
              const char* stage) {
  const std::uint64_t total = std::max<std::uint64_t>(m.total_size, 1);
  Progress p;
  p.percent = from_pct + static_cast<int>((to_pct - from_pct) * m.replicate_size / total);
  p.stage = stage;
  p.bytes_done = m.replicate_size;
  p.bytes_total = m.total_size;
  std::uint64_t sent = 0;
  for (const auto& d : m.disks) sent += d.pass_bytes;
  const std::int64_t ms = im.now_ms() - m.pass_started;
  p.bytes_per_second = ms > 0 ? sent * 1000 / static_cast<std::uint64_t>(ms) : 0;
  c.report_progress(p);
}

bool pass_done(const SourceMigration& m) {
  for (const auto& d : m.disks)
    if (d.pass != m.pass || d.acked < d.size) return false;
  return true;
}

Status wait_more(StepContext& c) {
  if (c.should_stop()) return Status::Cancelled("stopped");
  c.park(kPark);
  return Status::Ok();
}

// Removes what drivers made to reach the volumes, as recorded.
Status release_held(ServiceImpl& im, const std::string& id) {
  auto held = rows::read<std::vector<std::string>>(
      *im.store, [&](Txn& t) { return MigrationCatalog::held(t, id); });
  if (!held.ok()) return held.status();
  for (const auto& line : *held) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    auto b = im.backend_locked(line.substr(0, tab));
    if (!b.ok()) return b.status();
    if (Status s = (*b)->release_data(line.substr(tab + 1)); !s.ok()) return s;
  }
  return im.store->transact([&](Txn& t) { return MigrationCatalog::clear_held(t, id); });
}

// Removes the checksum files this workflow recorded making, and their directory when nothing
// else is in it (rmdir never removes a directory that holds anything).
void remove_sums(ServiceImpl& im, StepContext& c, const std::string& id) {
  const std::string made = c.var(kSumsMade);
  const std::size_t n = made.empty() ? 0 : std::stoul(made);
  for (std::size_t i = 0; i < n; ++i) (void)::unlink(sums_path(im.options.data_dir, id, i).c_str());
  (void)::rmdir(sums_dir(im.options.data_dir, id).c_str());
}

Status check_step(ServiceImpl& im, StepContext& c) {
  auto m = load(im, c);
  if (!m.ok()) return m.status();
  if (auto b = im.backend_locked(m->cluster_id); !b.ok()) return b.status();
  c.report_progress({0, "checking", 0, m->total_size, 0});
  return enter(im, *m, "checking", "RUNNING", "initialize");
}

// Back to a source that can be migrated again (cancelled) or in error (failed).
Status check_undo(ServiceImpl& im, StepContext& c) {
  const bool cancelled = c.should_stop();
  return im.store->transact([&](Txn& t) -> Status {
    auto cur = MigrationCatalog::by_id(t, c.workflow_id());
    if (!cur.ok()) return cur.status();
    if (!*cur) return Status::Ok();
    SourceMigration n = **cur;
    n.state = cancelled ? "ABORT" : "MIGRATE_FAIL";
    n.stopped = false;
    n.finished = true;
    if (!cancelled && n.error.empty()) n.error = "the workflow failed: see workflow " + n.id;
    if (Status s = MigrationCatalog::update(t, n); !s.ok()) return s;
    Status s = set_source_stage(im, t, n.source_id, cancelled ? "waiting" : "error",
                                cancelled ? "checking" : "");
    return s.code() == Code::kNotFound ? Status::Ok() : s;  // the source was deleted
  });
}

Status set_step(ServiceImpl& im, StepContext& c) {
  auto m = load(im, c);
  if (!m.ok()) return m.status();
  if (Status s = enter(im, *m, "setting", "RUNNING", "initialize"); !s.ok()) return s;
  auto items = items_of(*m);
  Status made =
      im.pipeline->create_targets(c, items, [&](std::size_t i, const std::string& id) -> Status {
        return im.store->transact([&](Txn& t) -> Status {
          auto cur = MigrationCatalog::by_id(t, m->id);
          if (!cur.ok()) return cur.status();
          if (!*cur) return Status::NotFound("migration " + m->id + " is not recorded");
          MigrationDisk d = (*cur)->disks[i];
          d.volume_id = id;
          return MigrationCatalog::update_disk(t, m->id, i, d);
        });
      });
  if (!made.ok()) return made;
  // The checksum files: sparse, so every chunk reads as zeros, as the fresh volumes do.
  const std::string dir = sums_dir(im.options.data_dir, m->id);
  for (const std::string& d : {im.options.data_dir + "/migrations", dir}) {
    if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) return errno_status("mkdir " + d);
  }
  for (std::size_t i = 0; i < m->disks.size(); ++i) {
    const std::string path = sums_path(im.options.data_dir, m->id, i);
    const std::uint64_t bytes = chunk_count(m->disks[i].size, m->chunk_bytes) * kChecksumBytes;
    // Recorded before it is made, so that only what this workflow made is ever removed.
    if (c.var(kSumsMade).empty() || std::stoul(c.var(kSumsMade)) <= i) {
      c.set_var(kSumsMade, std::to_string(i + 1));
      if (Status s = c.save_checkpoint("sums:" + std::to_string(i)); !s.ok()) return s;
    }
    Status s = create_sparse_file(path, bytes, 0600, -1);
    if (s.code() == Code::kAlreadyExists) {
      // Made before a crash, perhaps not to its size yet: nothing was streamed before this
      // step ended, so zeros (fresh chunks) are true.
      Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
      if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0 ||
          ::fsync(fd.get()) != 0)
        return errno_status("checksums " + path);
      s = Status::Ok();
    }
    if (!s.ok()) return s;
  }
  if (Status s = fsync_dir(dir); !s.ok()) return s;
  return fsync_dir(im.options.data_dir + "/migrations");
}

// Removes the volumes this workflow made (never another's) and its checksum files. The
// migration is closed first, so that no agent's session opens again while this runs.
Status set_undo(ServiceImpl& im, StepContext& c) {
  Status closed = im.store->transact([&](Txn& t) -> Status {
    auto cur = MigrationCatalog::by_id(t, c.workflow_id());
    if (!cur.ok()) return cur.status();
    if (!*cur) return Status::Ok();
    SourceMigration n = **cur;
    n.finished = true;
    return MigrationCatalog::update(t, n);
  });
  if (!closed.ok()) return closed;
  im.streams->forget(c.workflow_id());
  auto m = load(im, c);
  if (!m.ok()) return m.status().code() == Code::kNotFound ? Status::Ok() : m.status();
  // What drivers made to reach the volumes goes first; the volumes go even when that fails.
  Status released = release_held(im, m->id);
  if (Status s = im.pipeline->delete_targets(c, items_of(*m)); !s.ok()) return s;
  if (!released.ok()) return released;
  remove_sums(im, c, m->id);
  return Status::Ok();
}

Status replicate_step(ServiceImpl& im, StepContext& c) {
  auto m = load(im, c);
  if (!m.ok()) return m.status();
  if (m->stage != "replicating") {
    if (Status s = enter(im, *m, "replicating", "RUNNING", "replicate",
                         [&](SourceMigration& n) { n.pass_started = im.now_ms(); });
        !s.ok())
      return s;
    m = load(im, c);
    if (!m.ok()) return m.status();
  }
  progress(im, c, *m, 5, 85, "replicating");
  if (m->pass == 0 && pass_done(*m)) return Status::Ok();
  return wait_more(c);
}

Status sync_step(ServiceImpl& im, StepContext& c) {
  auto m = load(im, c);
  if (!m.ok()) return m.status();
  if (!m->syncing) return Status::Ok();  // straight to the cutover
  if (m->stage != "syncing") {
    if (Status s = enter(im, *m, "syncing", "SYNCING", "syncing"); !s.ok()) return s;
    m = load(im, c);
    if (!m.ok()) return m.status();
  }
  progress(im, c, *m, 85, 90, "syncing");
  if (pass_done(*m)) {
    if (m->cutover_requested) return Status::Ok();
    if (m->passes_wanted > m->pass && !m->stopped && m->error.empty()) {
      Status s = im.store->transact(
          [&](Txn& t) { return MigrationCatalog::begin_pass(t, m->id, m->pass + 1, im.now_ms()); });
      if (!s.ok()) return s;
    }
  }
  return wait_more(c);
}

Status cutover_step(ServiceImpl& im, StepContext& c) {
  auto m = load(im, c);
  if (!m.ok()) return m.status();
  if (m->stage != "cutovering") {
    if (Status s = enter(im, *m, "cutovering", "SYNCING", "cutovering",
                         [](SourceMigration& n) { n.cutover_requested = true; });
        !s.ok())
      return s;
    m = load(im, c);
    if (!m.ok()) return m.status();
  }
  progress(im, c, *m, 90, 99, "cutovering");
  if (!pass_done(*m) || m->stopped || !m->error.empty()) return wait_more(c);
  if (m->cutover_pass == 0 || m->pass != m->cutover_pass) {
    // A sync under way ended: the last pass starts, in which the agent quiesces the source.
    Status s = im.store->transact([&](Txn& t) -> Status {
      if (Status b = MigrationCatalog::begin_pass(t, m->id, m->pass + 1, im.now_ms()); !b.ok())
        return b;
      auto cur = MigrationCatalog::by_id(t, m->id);
      if (!cur.ok()) return cur.status();
      SourceMigration n = **cur;
      n.cutover_pass = m->pass + 1;
      return MigrationCatalog::update(t, n);
    });
    if (!s.ok()) return s;
    return wait_more(c);
  }
  // The last pass is in: the volumes are final.
  im.streams->stop(m->id);
  if (Status s = release_held(im, m->id); !s.ok()) return s;
  auto items = items_of(*m);
  if (Status s = im.pipeline->make_available(items); !s.ok()) return s;
  json::array vols;
  for (const auto& d : m->disks)
    vols.push_back(
        json::object{{"disk", d.name}, {"volumeId", d.volume_id}, {"volumeName", d.volume_name}});
  c.set_result(json::serialize(json::object{
      {"sourceId", m->source_id}, {"clusterId", m->cluster_id}, {"volumes", std::move(vols)}}));
  Status s = enter(im, *m, "cutovered", "MIGRATE_SUCCESS", "finished", [](SourceMigration& n) {
    n.finished = true;
    n.stopped = false;  // a stop that came in the last moments: the migration is complete
    n.error.clear();
  });
  if (!s.ok()) return s;
  im.streams->forget(m->id);
  remove_sums(im, c, m->id);
  return Status::Ok();
}

}  // namespace

Status register_migrate_source(WorkflowEngine& engine, ServiceImpl& im) {
  auto step = [&im](const char* name, Status (*run)(ServiceImpl&, StepContext&),
                    Status (*undo)(ServiceImpl&, StepContext&)) {
    Step s;
    s.name = name;
    s.run = [&im, run](StepContext& c) { return run(im, c); };
    if (undo) s.undo = [&im, undo](StepContext& c) { return undo(im, c); };
    return s;
  };
  WorkflowType type{kMigrateSourceServer,
                    {step("check", check_step, check_undo), step("set", set_step, set_undo),
                     step("replicate", replicate_step, nullptr), step("sync", sync_step, nullptr),
                     step("cutover", cutover_step, nullptr)}};
  // Cancelled before it ran: the source is as it was before the migration.
  auto settle = [&im](Txn& t, const std::string& request) -> Status {
    auto v = parse_json(request);
    if (!v.ok() || !v->is_object()) return Status::Ok();
    const auto* sid = v->as_object().if_contains("sourceId");
    if (!sid || !sid->is_string()) return Status::Ok();
    const std::string source_id(sid->as_string());
    auto m = MigrationCatalog::latest_of(t, source_id);
    if (!m.ok()) return m.status();
    if (*m && (*m)->state == "READY") {
      SourceMigration n = **m;
      n.state = "ABORT";
      n.finished = true;
      if (Status s = MigrationCatalog::update(t, n); !s.ok()) return s;
    }
    Status s = set_source_stage(im, t, source_id, "waiting", "checking");
    return s.code() == Code::kNotFound ? Status::Ok() : s;
  };
  return EngineTxn::register_type(engine, std::move(type), settle);
}

}  // namespace dmscore::detail
