#pragma once
// The engine's state, shared by engine.cpp (the API: submit, cancel, get, claims, start/stop)
// and run.cpp (one workflow's run: steps, checkpoints, compensation).

#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/backoff.hpp"
#include "base/util.hpp"
#include "dmscore/workflow.hpp"
#include "engine/engine_txn.hpp"

namespace dmscore {

namespace detail {
// A workflow's carried variables as stored (a JSON object of strings).
std::string vars_to_json(const std::map<std::string, std::string>& vars);
std::map<std::string, std::string> vars_from_json(const std::string& text);

// The states of a workflow's step, as workflow_steps.state stores them.
enum class StepState { kStarted, kDone, kFailed, kUndone };
inline std::string_view to_string(StepState s) {
  switch (s) {
    case StepState::kStarted:
      return "STARTED";
    case StepState::kDone:
      return "DONE";
    case StepState::kFailed:
      return "FAILED";
    case StepState::kUndone:
      return "UNDONE";
  }
  return "FAILED";
}

// A state as a value bound into the engine's SQL: states are written only from the enums.
inline std::string sql_state(WorkflowState s) { return std::string(dmscore::to_string(s)); }
inline std::string sql_state(StepState s) { return std::string(to_string(s)); }
}  // namespace detail

struct WorkflowEngine::Impl {
  Store& store;
  EngineOptions options;
  std::shared_ptr<Env> env;
  std::map<std::string, WorkflowType> types;
  // Per type, what settles a workflow cancelled while PENDING (EngineTxn::register_type).
  std::map<std::string, detail::EngineTxn::Settle> settle_cancelled;

  // Live state of workflows a worker is running.
  struct Live {
    std::atomic<bool> cancel{false};
    // Scale-out: another instance owns the workflow now (fencing); the run stops, undoing
    // nothing, and writes nothing more.
    std::atomic<bool> lost{false};
    // Scale-out: the epoch of this instance's claim, which every write checks.
    std::int64_t epoch = 0;
    std::mutex mu;
    Progress progress;
  };

  mutable std::mutex mu;
  // Workflows get() read in a terminal state: such a row never changes again (no write touches
  // a terminal workflow), so they are answered from memory. Bounded: emptied when full.
  static constexpr std::size_t kFinishedCap = 4096;
  mutable std::mutex finished_mu;
  mutable std::unordered_map<std::string, Workflow> finished;
  mutable std::condition_variable terminal_cv;  // any workflow became terminal
  std::condition_variable queue_cv;
  std::deque<std::string> queue;
  std::set<std::string> queued;
  std::unordered_map<std::string, std::shared_ptr<Live>> live;
  // Parked workflows (StepContext::park), still in `queued`: when each is due to run again.
  std::map<std::string, std::chrono::steady_clock::time_point> parked;
  // Woken from parking and not yet run again: their step continues, it was not interrupted.
  std::set<std::string> woken;
  // Woken while running: they do not park next time, they run again at once.
  std::set<std::string> wake_pending;
  std::vector<std::thread> workers;
  bool started = false;
  // Resources held by claims (see WorkflowEngine::claim): resource -> what is being done.
  std::mutex claims_mu;
  std::map<std::string, std::string> claims;
  std::atomic<bool> stopping{false};
  std::atomic<bool> is_ready{false};

  // Scale-out (options.instance_id set): the lease machinery's thread (lease.cpp), the epochs
  // of the workflows this instance claimed, and what it did.
  bool shared() const { return !options.instance_id.empty(); }
  std::thread lease_thread;
  std::mutex lease_mu;
  std::condition_variable lease_cv;
  bool claim_soon = false;
  std::unordered_map<std::string, std::int64_t> epochs;  // guarded by mu
  std::set<std::string> reclaimed;                       // guarded by mu
  // What the last heartbeat wrote to instance_reach and placed_resources (lease thread only).
  std::vector<std::string> announced_placed, announced_reached;
  // Steady time (ms) until which the lease is surely held: the start of the last renewal that
  // committed, plus lease_ttl.
  std::atomic<std::int64_t> lease_held_until{0};
  std::atomic<std::uint64_t> n_heartbeats{0}, n_heartbeat_failures{0}, n_claimed{0},
      n_taken_over{0}, n_fenced{0};

  // Starts the lease machinery: registers the instance, reclaims what it owned before a
  // restart, and starts the thread. (lease.cpp)
  Status start_leases();
  // Stops the thread and gives the lease up, so that other instances take over at once.
  void stop_leases();
  void lease_loop();
  Status heartbeat();
  Status claim_some();
  bool lease_fresh() const;
  // Queues a workflow this instance claimed at `epoch`.
  void enqueue_claimed(const std::string& id, std::int64_t epoch) {
    {
      std::lock_guard lock(mu);
      epochs[id] = epoch;
      if (!queued.insert(id).second) {
        // Still here: parked, or winding down after it was lost. Either way it runs again as
        // after a restart (begin() reads where it stands), not as a woken park.
        if (parked.erase(id)) {
          woken.erase(id);
          queue.push_back(id);
          queue_cv.notify_one();
        } else {
          reclaimed.insert(id);
        }
        return;
      }
      queue.push_back(id);
    }
    queue_cv.notify_one();
  }
  // Asks the lease thread to look for work now (a workflow was submitted here).
  void nudge_claims() {
    {
      std::lock_guard lock(lease_mu);
      claim_soon = true;
    }
    lease_cv.notify_all();
  }
  // What a live hold on `resource` (resource_holds) is doing; "" when none or its instance's
  // lease ran out. (lease.cpp)
  Result<std::string> live_hold(Txn& t, const std::string& resource);
  // The database's clock in ms (PostgreSQL's; env's on SQLite).
  Result<std::int64_t> db_now(Txn& t);

  // A write of running workflow `id`: with scale-out, first checks in the same transaction
  // that this instance still owns it at lv.epoch; when not, marks it lost and answers
  // FAILED_PRECONDITION without running `fn`. `retry`: through persist().
  Status write_run(Live& lv, const std::string& id, const std::function<Status(Txn&)>& fn,
                   bool retry = true) {
    if (!shared()) return retry ? persist(fn) : store.transact(fn);
    if (lv.lost) return lost_status(id);
    bool lost_now = false;
    auto fenced = [&](Txn& t) -> Status {
      lost_now = false;
      auto r = t.query_one("SELECT 1 FROM workflows WHERE id = ? AND owner = ? AND lease_epoch = ?",
                           {id, options.instance_id, lv.epoch});
      if (!r.ok()) return r.status();
      if (!*r) {
        lost_now = true;
        return lost_status(id);
      }
      return fn(t);
    };
    Status s = retry ? persist(fenced) : store.transact(fenced);
    if (lost_now) mark_lost(lv, id);
    return s;
  }
  // Before work outside the store that only the owner may do (an undo): true without
  // scale-out; with it, while the lease is fresh and a fenced check commits.
  bool still_owned(Live& lv, const std::string& id) {
    if (!shared()) return true;
    if (lv.lost) return false;
    if (!lease_fresh()) {
      mark_lost(lv, id);
      return false;
    }
    return write_run(
               lv, id, [](Txn&) { return Status::Ok(); }, false)
        .ok();
  }
  Status lost_status(const std::string& id) const {
    return Status::FailedPrecondition("workflow " + id + ": instance " + options.instance_id +
                                      " no longer holds it (another instance took it over)");
  }
  void mark_lost(Live& lv, const std::string& id) {
    if (lv.lost.exchange(true)) return;
    ++n_fenced;
    if (options.log)
      options.log("workflow " + id + ": taken over by another instance; stopped here");
  }

  Impl(Store& s, EngineOptions o) : store(s), options(std::move(o)) {
    env = options.env ? options.env : Env::Default();
  }

  std::int64_t now_ms() { return detail::to_millis(env->now()); }

  // A write of a running workflow: retried while the store reports a full disk, an I/O error or
  // contention, with backoff through env, for store_retry_budget.
  Status persist(const std::function<Status(Txn&)>& fn) {
    detail::Backoff backoff(*env, std::chrono::milliseconds(20), std::chrono::milliseconds(2000),
                            env->steady_now() + options.store_retry_budget);
    for (;;) {
      Status s = store.transact(fn);
      const bool transient = s.code() == Code::kResourceExhausted ||
                             s.code() == Code::kUnavailable || s.code() == Code::kAborted;
      if (s.ok() || !transient || stopping || !backoff.wait()) return s;
    }
  }

  void enqueue(const std::string& id) {
    {
      std::lock_guard lock(mu);
      if (!queued.insert(id).second) return;
      queue.push_back(id);
    }
    queue_cv.notify_one();
  }

  void notify_terminal() {
    std::lock_guard lock(mu);
    terminal_cv.notify_all();
  }

  // Moves a parked workflow to the queue. REQUIRES: mu held.
  void unpark_locked(const std::string& id) {
    if (parked.erase(id) == 0) return;
    woken.insert(id);
    queue.push_back(id);
    queue_cv.notify_one();
  }

  void wake(const std::string& id) {
    std::lock_guard lock(mu);
    if (parked.count(id))
      unpark_locked(id);
    else if (queued.count(id))
      wake_pending.insert(id);  // running now: what it waits for may have come already
  }

  // True (once) when `id` runs again after parking.
  bool take_woken(const std::string& id) {
    std::lock_guard lock(mu);
    return woken.erase(id) > 0;
  }

  void worker_loop() {
    for (;;) {
      std::string id;
      {
        std::unique_lock lock(mu);
        for (;;) {
          if (stopping) return;
          const auto now = std::chrono::steady_clock::now();
          auto next = std::chrono::steady_clock::time_point::max();
          for (auto it = parked.begin(); it != parked.end();) {
            auto cur = it++;
            if (cur->second <= now)
              unpark_locked(std::string(cur->first));  // (a copy: the node goes)
            else
              next = std::min(next, cur->second);
          }
          if (!queue.empty()) break;
          if (next == std::chrono::steady_clock::time_point::max())
            queue_cv.wait(lock);
          else
            queue_cv.wait_until(lock, next);
        }
        id = std::move(queue.front());
        queue.pop_front();
      }
      const std::chrono::milliseconds park_for = run_workflow(id);
      {
        std::lock_guard lock(mu);
        live.erase(id);
        if (park_for.count() > 0 && !stopping && !reclaimed.count(id)) {
          parked[id] = std::chrono::steady_clock::now() + park_for;
          if (wake_pending.erase(id)) unpark_locked(id);
          queue_cv.notify_one();  // a waiting worker recomputes its deadline
        } else if (reclaimed.erase(id)) {
          queue.push_back(id);  // claimed again while its lost run wound down
          queue_cv.notify_one();
        } else {
          queued.erase(id);
          wake_pending.erase(id);
          epochs.erase(id);
        }
      }
    }
  }

  // Runs workflow `id` from where it stands (run.cpp). Returns how long it parks (0: it ended,
  // or stopped).
  std::chrono::milliseconds run_workflow(const std::string& id);

  class Context;
  class Run;
};

// The StepContext of one step run.
class WorkflowEngine::Impl::Context final : public StepContext {
 public:
  Context(WorkflowEngine::Impl& engine, std::string id, const std::string& request,
          std::map<std::string, std::string>& vars,
          std::shared_ptr<WorkflowEngine::Impl::Live> live, int step_index, std::string checkpoint,
          bool resumed, std::string& result)
      : engine_(engine),
        id_(std::move(id)),
        request_(request),
        vars_(vars),
        live_(std::move(live)),
        step_index_(step_index),
        checkpoint_(std::move(checkpoint)),
        resumed_(resumed),
        result_(result) {}

  const std::string& workflow_id() const override { return id_; }
  const std::string& request() const override { return request_; }
  std::string var(const std::string& key) const override {
    auto it = vars_.find(key);
    return it == vars_.end() ? std::string() : it->second;
  }
  void set_var(const std::string& key, std::string value) override {
    vars_[key] = std::move(value);
  }
  const std::string& checkpoint() const override { return checkpoint_; }
  bool resumed() const override { return resumed_; }

  Status save_checkpoint(std::string checkpoint) override {
    std::string vars = detail::vars_to_json(vars_);
    Progress p = snapshot_progress();
    Status s = engine_.write_run(*live_, id_, [&](Txn& t) -> Status {
      auto r = t.exec("UPDATE workflow_steps SET checkpoint = ? WHERE workflow_id = ? AND idx = ?",
                      {checkpoint, id_, std::int64_t{step_index_}});
      if (!r.ok()) return r.status();
      return persist_progress(t, p, &vars);
    });
    if (s.ok()) {
      checkpoint_ = std::move(checkpoint);
      last_persist_ = engine_.env->steady_now();
    }
    return s;
  }

  void report_progress(const Progress& progress) override {
    {
      std::lock_guard lock(live_->mu);
      live_->progress = progress;
    }
    auto now = engine_.env->steady_now();
    if (now - last_persist_ < engine_.options.progress_persist_interval) return;
    last_persist_ = now;
    // Progress is advisory: a failed write is retried with the next report.
    (void)engine_.write_run(
        *live_, id_, [&](Txn& t) { return persist_progress(t, progress, nullptr); }, false);
  }

  bool should_stop() const override {
    return live_->cancel.load(std::memory_order_relaxed) ||
           live_->lost.load(std::memory_order_relaxed) ||
           engine_.stopping.load(std::memory_order_relaxed) ||
           (engine_.shared() && !engine_.lease_fresh());  // it may be another's by now
  }

  Status add_resource(const std::string& resource) override {
    return engine_.write_run(*live_, id_, [&](Txn& t) -> Status {
      return t
          .exec("INSERT OR IGNORE INTO workflow_resources (resource, workflow_id) VALUES (?, ?)",
                {resource, id_})
          .status();
    });
  }

  void set_result(std::string result_json) override { result_ = std::move(result_json); }

  void park(std::chrono::milliseconds at_most) override {
    park_ = std::max(at_most, std::chrono::milliseconds(1));
  }
  std::chrono::milliseconds parked_for() const { return park_; }

 private:
  Progress snapshot_progress() {
    std::lock_guard lock(live_->mu);
    return live_->progress;
  }

  Status persist_progress(Txn& t, const Progress& p, const std::string* vars) {
    std::string sql =
        "UPDATE workflows SET progress_percent = ?, progress_stage = ?, bytes_done = ?, "
        "bytes_total = ?, bytes_per_second = ?";
    std::vector<SqlValue> params = {
        std::int64_t{p.percent}, p.stage, static_cast<std::int64_t>(p.bytes_done),
        static_cast<std::int64_t>(p.bytes_total), static_cast<std::int64_t>(p.bytes_per_second)};
    if (vars) {
      sql += ", vars = ?";
      params.emplace_back(*vars);
    }
    sql += " WHERE id = ?";
    params.emplace_back(id_);
    return t.exec(sql, params).status();
  }

  WorkflowEngine::Impl& engine_;
  std::string id_;
  const std::string& request_;
  std::map<std::string, std::string>& vars_;
  std::shared_ptr<WorkflowEngine::Impl::Live> live_;
  int step_index_;
  std::string checkpoint_;
  bool resumed_;
  std::string& result_;
  Env::SteadyTime last_persist_{};
  std::chrono::milliseconds park_{0};
};

}  // namespace dmscore
