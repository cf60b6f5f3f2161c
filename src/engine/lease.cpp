// Scale-out: an instance's lease on the shared store, its heartbeat, and the claiming of
// runnable workflows (EngineOptions::instance_id).
//
// An instance is alive while its `instances.lease_until` lies ahead by the database's clock; its
// heartbeat renews it. A workflow belongs to the instance in `workflows.owner`; another may
// claim it only when it has no owner or its owner's lease ran out, with SELECT ... FOR UPDATE
// SKIP LOCKED, and a claim bumps `lease_epoch`. Every write of a run checks owner and epoch in
// its own transaction (Impl::write_run), so a stalled instance whose workflows were taken over
// commits nothing more for them.

#include <algorithm>

#include "engine/engine_impl.hpp"

namespace dmscore {

using detail::sql_state;

namespace {

std::int64_t steady_ms(Env& env) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(env.steady_now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::int64_t> WorkflowEngine::Impl::db_now(Txn& t) {
  if (t.dialect() != SqlDialect::kPostgres) return now_ms();
  auto r =
      t.query_one("SELECT CAST(floor(extract(epoch from clock_timestamp()) * 1000) AS BIGINT)");
  if (!r.ok()) return r.status();
  return (*r)->int64(0);
}

Result<std::string> WorkflowEngine::Impl::live_hold(Txn& t, const std::string& resource) {
  auto now = db_now(t);
  if (!now.ok()) return now.status();
  auto row = t.query_one(
      "SELECT h.doing FROM resource_holds h JOIN instances i ON i.id = h.instance_id "
      "WHERE h.resource = ? AND i.lease_until >= ?",
      {resource, *now});
  if (!row.ok()) return row.status();
  return *row ? (*row)->text(0) : std::string();
}

bool WorkflowEngine::Impl::lease_fresh() const { return steady_ms(*env) < lease_held_until.load(); }

Status WorkflowEngine::Impl::start_leases() {
  const std::string& me = options.instance_id;
  const std::int64_t began = steady_ms(*env);
  std::vector<std::pair<std::string, std::int64_t>> mine;
  Status s = persist([&](Txn& t) -> Status {
    mine.clear();
    auto now = db_now(t);
    if (!now.ok()) return now.status();
    const std::int64_t until = *now + options.lease_ttl.count();
    auto r = t.exec(
        "INSERT OR IGNORE INTO instances (id, address, started_at, heartbeat_at, lease_until) "
        "VALUES (?, ?, ?, ?, ?)",
        {me, options.instance_address, *now, *now, until});
    if (!r.ok()) return r.status();
    r = t.exec(
        "UPDATE instances SET address = ?, started_at = ?, heartbeat_at = ?, lease_until = ?, "
        "running = 0 WHERE id = ?",
        {options.instance_address, *now, *now, until, me});
    if (!r.ok()) return r.status();
    // What this instance owned before it restarted is its own again, at a new epoch.
    auto rows = t.query(
        "SELECT id, lease_epoch + 1 FROM workflows WHERE owner = ? AND state IN (?, ?) "
        "ORDER BY seq",
        {me, sql_state(WorkflowState::kPending), sql_state(WorkflowState::kRunning)});
    if (!rows.ok()) return rows.status();
    for (const auto& row : *rows) mine.emplace_back(row.text(0), row.int64(1));
    return t
        .exec(
            "UPDATE workflows SET lease_epoch = lease_epoch + 1 WHERE owner = ? AND state IN "
            "(?, ?)",
            {me, sql_state(WorkflowState::kPending), sql_state(WorkflowState::kRunning)})
        .status();
  });
  if (!s.ok()) return s.with_prefix("instance " + me + ": cannot take its lease");
  lease_held_until = began + options.lease_ttl.count();
  for (const auto& [id, epoch] : mine) enqueue_claimed(id, epoch);
  if (Status h = heartbeat(); !h.ok()) return h.with_prefix("instance " + me);
  lease_thread = std::thread([this] { lease_loop(); });
  return Status::Ok();
}

void WorkflowEngine::Impl::stop_leases() {
  nudge_claims();
  if (lease_thread.joinable()) lease_thread.join();
  if (!shared() || !started) return;
  // The runs have stopped: give the lease up so that other instances take over at once.
  (void)store.transact([&](Txn& t) -> Status {
    auto r = t.exec("DELETE FROM instance_reach WHERE instance_id = ?", {options.instance_id});
    if (!r.ok()) return r.status();
    return t
        .exec("UPDATE instances SET lease_until = 0, running = 0 WHERE id = ?",
              {options.instance_id})
        .status();
  });
  lease_held_until = 0;
}

Status WorkflowEngine::Impl::heartbeat() {
  const std::string& me = options.instance_id;
  std::vector<std::pair<std::string, std::int64_t>> running;
  int running_count = 0;
  {
    std::lock_guard lock(mu);
    running_count = static_cast<int>(queued.size());
    for (const auto& [id, epoch] : epochs) running.emplace_back(id, epoch);
  }
  // The renewal first, in a transaction of its own: nothing slow may delay it.
  const std::int64_t began = steady_ms(*env);
  std::vector<std::string> lost, cancels;
  Status s = store.transact([&](Txn& t) -> Status {
    lost.clear();
    cancels.clear();
    auto now = db_now(t);
    if (!now.ok()) return now.status();
    auto r =
        t.exec("UPDATE instances SET heartbeat_at = ?, lease_until = ?, running = ? WHERE id = ?",
               {*now, *now + options.lease_ttl.count(), std::int64_t{running_count}, me});
    if (!r.ok()) return r.status();
    if (*r == 0) return Status::FailedPrecondition("its instance row is gone");
    // Runs another instance took over while this one stalled, and cancels asked elsewhere.
    for (const auto& [id, epoch] : running) {
      auto row = t.query_one(
          "SELECT owner, lease_epoch, cancel_requested FROM workflows WHERE id = ?", {id});
      if (!row.ok()) return row.status();
      if (!*row) continue;
      if ((*row)->text(0) != me || (*row)->int64(1) != epoch)
        lost.push_back(id);
      else if ((*row)->int64(2) != 0)
        cancels.push_back(id);
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    ++n_heartbeat_failures;
    if (!lease_fresh()) {
      // The lease may have run out: others may be taking the workflows over; stop them here.
      std::lock_guard lock(mu);
      for (auto& [id, lv] : live) mark_lost(*lv, id);
    }
    return s;
  }
  ++n_heartbeats;
  lease_held_until = began + options.lease_ttl.count();
  {
    std::lock_guard lock(mu);
    for (const auto& id : lost) {
      if (auto it = live.find(id); it != live.end()) mark_lost(*it->second, id);
    }
    for (const auto& id : cancels) {
      if (auto it = live.find(id); it != live.end()) it->second->cancel = true;
      unpark_locked(id);
    }
  }
  // Then placement: what this instance reaches now (opening a cluster may take a while).
  if (!options.reach) return Status::Ok();
  std::vector<std::string> placed, reached;
  options.reach(placed, reached);
  std::sort(placed.begin(), placed.end());
  std::sort(reached.begin(), reached.end());
  if (placed == announced_placed && reached == announced_reached) return Status::Ok();
  Status w = store.transact([&](Txn& t) -> Status {
    auto r = t.exec("DELETE FROM instance_reach WHERE instance_id = ?", {me});
    if (!r.ok()) return r.status();
    for (const auto& res : reached) {
      r = t.exec("INSERT OR IGNORE INTO instance_reach (instance_id, resource) VALUES (?, ?)",
                 {me, res});
      if (!r.ok()) return r.status();
    }
    for (const auto& res : placed) {
      r = t.exec("INSERT OR IGNORE INTO placed_resources (resource) VALUES (?)", {res});
      if (!r.ok()) return r.status();
    }
    return Status::Ok();
  });
  if (w.ok()) {
    announced_placed = std::move(placed);
    announced_reached = std::move(reached);
  }
  return w;
}

Status WorkflowEngine::Impl::claim_some() {
  const std::string& me = options.instance_id;
  int free = 0;
  std::set<std::string> here;
  {
    std::lock_guard lock(mu);
    free = options.threads - static_cast<int>(queued.size() - parked.size());
    here = queued;
  }
  if (free <= 0 || !lease_fresh()) return Status::Ok();
  std::vector<std::pair<std::string, std::int64_t>> got;
  int taken = 0;
  Status s = store.transact([&](Txn& t) -> Status {
    got.clear();
    taken = 0;
    auto now = db_now(t);
    if (!now.ok()) return now.status();
    // Its own that no run here holds (stopped after a failed write or a lapsed lease): again.
    auto own =
        t.query("SELECT id FROM workflows WHERE owner = ? AND state IN (?, ?) ORDER BY seq",
                {me, sql_state(WorkflowState::kPending), sql_state(WorkflowState::kRunning)});
    if (!own.ok()) return own.status();
    for (const auto& row : *own) {
      const std::string id = row.text(0);
      if (here.count(id) || static_cast<int>(got.size()) >= free) continue;
      auto e = t.query(
          "UPDATE workflows SET lease_epoch = lease_epoch + 1 WHERE id = ? AND owner = ? "
          "RETURNING lease_epoch",
          {id, me});
      if (!e.ok()) return e.status();
      if (!e->empty()) got.emplace_back(id, e->front().int64(0));
    }
    if (static_cast<int>(got.size()) >= free) return Status::Ok();
    std::string sql =
        "SELECT w.id, w.owner FROM workflows w WHERE w.state IN (?, ?) AND w.owner <> ? AND "
        "(w.owner = '' OR NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = w.owner AND "
        "i.lease_until >= ?)) AND NOT EXISTS (SELECT 1 FROM workflow_resources r JOIN "
        "placed_resources p ON p.resource = r.resource WHERE r.workflow_id = w.id AND NOT EXISTS "
        "(SELECT 1 FROM instance_reach x WHERE x.instance_id = ? AND x.resource = r.resource)) "
        "ORDER BY w.seq LIMIT ?";
    if (t.dialect() == SqlDialect::kPostgres) sql += " FOR UPDATE OF w SKIP LOCKED";
    auto rows =
        t.query(sql, {sql_state(WorkflowState::kPending), sql_state(WorkflowState::kRunning), me,
                      *now, me, std::int64_t{free - static_cast<int>(got.size())}});
    if (!rows.ok()) return rows.status();
    for (const auto& row : *rows) {
      const std::string id = row.text(0);
      auto e = t.query(
          "UPDATE workflows SET owner = ?, lease_epoch = lease_epoch + 1 WHERE id = ? "
          "RETURNING lease_epoch",
          {me, id});
      if (!e.ok()) return e.status();
      if (e->empty()) continue;
      got.emplace_back(id, e->front().int64(0));
      if (!row.text(1).empty()) ++taken;
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  n_claimed += got.size();
  n_taken_over += static_cast<std::uint64_t>(taken);
  if (taken > 0 && options.log)
    options.log("instance " + me + ": took over " + std::to_string(taken) +
                " workflow(s) from an instance whose lease ran out");
  for (const auto& [id, epoch] : got) enqueue_claimed(id, epoch);
  return Status::Ok();
}

void WorkflowEngine::Impl::lease_loop() {
  auto next_beat = env->steady_now() + options.heartbeat_interval;
  auto next_claim = env->steady_now();
  for (;;) {
    if (stopping) return;
    const auto now = env->steady_now();
    if (now >= next_beat) {
      (void)heartbeat();
      next_beat = now + options.heartbeat_interval;
    }
    if (now >= next_claim) {
      if (!claim_some().ok()) {
        // A conflict or an unreachable store: the next interval tries again.
      }
      next_claim = now + options.claim_interval;
    }
    std::unique_lock lock(lease_mu);
    lease_cv.wait_for(lock, std::min(next_beat, next_claim) - env->steady_now(),
                      [&] { return claim_soon || stopping.load(); });
    if (claim_soon) {
      claim_soon = false;
      next_claim = env->steady_now();
    }
  }
}

}  // namespace dmscore
