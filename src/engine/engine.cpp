#include "dmscore/workflow.hpp"

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "base/backoff.hpp"
#include "base/util.hpp"

namespace dmscore {

namespace json = boost::json;

std::string_view to_string(WorkflowState state) {
  switch (state) {
    case WorkflowState::kPending:
      return "PENDING";
    case WorkflowState::kRunning:
      return "RUNNING";
    case WorkflowState::kCompleted:
      return "COMPLETED";
    case WorkflowState::kFailed:
      return "FAILED";
    case WorkflowState::kCancelled:
      return "CANCELLED";
  }
  return "PENDING";
}

Result<WorkflowState> parse_workflow_state(std::string_view name) {
  for (auto s : {WorkflowState::kPending, WorkflowState::kRunning, WorkflowState::kCompleted,
                 WorkflowState::kFailed, WorkflowState::kCancelled}) {
    if (to_string(s) == name) return s;
  }
  return Status::InvalidArgument(
      "state: must be one of PENDING, RUNNING, COMPLETED, FAILED, CANCELLED");
}

bool is_terminal(WorkflowState state) {
  return state == WorkflowState::kCompleted || state == WorkflowState::kFailed ||
         state == WorkflowState::kCancelled;
}

Status validate(const EngineOptions& o) {
  if (o.max_running_workflows < 1 || o.max_running_workflows > 10000)
    return Status::InvalidArgument("max_running_workflows: must be 1..10000");
  if (o.threads < 1 || o.threads > 256) return Status::InvalidArgument("threads: must be 1..256");
  if (o.progress_persist_interval.count() < 0)
    return Status::InvalidArgument("progress_persist_interval: must not be negative");
  return Status::Ok();
}

namespace {

using detail::from_millis;
using detail::to_millis;

constexpr const char* kWorkflowColumns =
    "id, type, state, msg, created_at, started_at, ended_at, request, result, cancel_requested, "
    "progress_percent, progress_stage, bytes_done, bytes_total, bytes_per_second, seq, error_code";

Workflow workflow_from_row(const Row& r) {
  Workflow w;
  w.id = r.text(0);
  w.type = r.text(1);
  auto st = parse_workflow_state(r.text(2));
  w.state = st.ok() ? *st : WorkflowState::kFailed;
  w.msg = r.text(3);
  w.created_at = from_millis(r.int64(4));
  if (!r.is_null(5)) w.started_at = from_millis(r.int64(5));
  if (!r.is_null(6)) w.ended_at = from_millis(r.int64(6));
  w.request = r.text(7);
  w.result = r.text(8);
  w.cancel_requested = r.int64(9) != 0;
  w.progress.percent = static_cast<int>(r.int64(10));
  w.progress.stage = r.text(11);
  w.progress.bytes_done = static_cast<std::uint64_t>(r.int64(12));
  w.progress.bytes_total = static_cast<std::uint64_t>(r.int64(13));
  w.progress.bytes_per_second = static_cast<std::uint64_t>(r.int64(14));
  if (w.state == WorkflowState::kFailed || w.state == WorkflowState::kCancelled)
    w.error_code = r.text(16);
  return w;
}

std::string vars_to_json(const std::map<std::string, std::string>& vars) {
  json::object o;
  for (const auto& [k, v] : vars) o[k] = v;
  return json::serialize(o);
}

std::map<std::string, std::string> vars_from_json(const std::string& text) {
  std::map<std::string, std::string> vars;
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return vars;
  for (const auto& [k, val] : v.as_object()) {
    if (val.is_string()) vars.emplace(std::string(k), std::string(val.as_string()));
  }
  return vars;
}

constexpr std::string_view kPageTokenPrefix = "wf1.";

// "volume <id>" for "volume:<id>".
std::string describe_resource(const std::string& resource) {
  auto colon = resource.find(':');
  if (colon == std::string::npos) return resource;
  return resource.substr(0, colon) + " " + resource.substr(colon + 1);
}

}  // namespace

struct WorkflowEngine::Impl {
  Store& store;
  EngineOptions options;
  std::shared_ptr<Env> env;
  std::map<std::string, WorkflowType> types;

  // Live state of workflows a worker is running.
  struct Live {
    std::atomic<bool> cancel{false};
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
  std::vector<std::thread> workers;
  bool started = false;
  // Resources held by claims (see WorkflowEngine::claim): resource -> what is being done.
  std::mutex claims_mu;
  std::map<std::string, std::string> claims;
  std::atomic<bool> stopping{false};
  std::atomic<bool> is_ready{false};

  Impl(Store& s, EngineOptions o) : store(s), options(std::move(o)) {
    env = options.env ? options.env : Env::Default();
  }

  std::int64_t now_ms() { return to_millis(env->now()); }

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

  void worker_loop() {
    for (;;) {
      std::string id;
      {
        std::unique_lock lock(mu);
        queue_cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) return;
        id = std::move(queue.front());
        queue.pop_front();
      }
      run_workflow(id);
      {
        std::lock_guard lock(mu);
        queued.erase(id);
        live.erase(id);
      }
    }
  }

  void run_workflow(const std::string& id);

  class Context;
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
    std::string vars = vars_to_json(vars_);
    Progress p = snapshot_progress();
    Status s = engine_.persist([&](Txn& t) -> Status {
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
    (void)engine_.store.transact([&](Txn& t) { return persist_progress(t, progress, nullptr); });
  }

  bool should_stop() const override {
    return live_->cancel.load(std::memory_order_relaxed) ||
           engine_.stopping.load(std::memory_order_relaxed);
  }

  Status add_resource(const std::string& resource) override {
    return engine_.persist([&](Txn& t) -> Status {
      return t
          .exec("INSERT OR IGNORE INTO workflow_resources (resource, workflow_id) VALUES (?, ?)",
                {resource, id_})
          .status();
    });
  }

  void set_result(std::string result_json) override { result_ = std::move(result_json); }

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
};

namespace {

Status call_step(const std::function<Status(StepContext&)>& fn, StepContext& ctx) {
  try {
    return fn(ctx);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("step threw: ") + e.what());
  } catch (...) {
    return Status::Internal("step threw");
  }
}

}  // namespace

void WorkflowEngine::Impl::run_workflow(const std::string& id) {
  auto lv = std::make_shared<Live>();
  {
    std::lock_guard lock(mu);
    live[id] = lv;
  }

  // Load the workflow; claim it if PENDING. One transaction, so a concurrent cancel either
  // sees PENDING (and ends it) or RUNNING (and requests cancellation).
  std::string type, request, final_state, final_msg, final_code, result;
  std::map<std::string, std::string> vars;
  int step_index = 0;
  bool was_running = false;
  bool gone = false;
  Status s = store.transact([&](Txn& t) -> Status {
    auto row = t.query_one(
        "SELECT state, type, request, vars, step_index, cancel_requested, final_state, final_msg, "
        "result, progress_percent, progress_stage, bytes_done, bytes_total, error_code "
        "FROM workflows WHERE id = ?",
        {id});
    if (!row.ok()) return row.status();
    if (!*row) {
      gone = true;
      return Status::Ok();
    }
    const Row& r = **row;
    std::string state = r.text(0);
    if (state != "PENDING" && state != "RUNNING") {
      gone = true;
      return Status::Ok();
    }
    type = r.text(1);
    request = r.text(2);
    vars = vars_from_json(r.text(3));
    step_index = static_cast<int>(r.int64(4));
    if (r.int64(5)) lv->cancel = true;
    final_state = r.text(6);
    final_msg = r.text(7);
    result = r.text(8);
    lv->progress.percent = static_cast<int>(r.int64(9));
    lv->progress.stage = r.text(10);
    lv->progress.bytes_done = static_cast<std::uint64_t>(r.int64(11));
    lv->progress.bytes_total = static_cast<std::uint64_t>(r.int64(12));
    final_code = r.text(13);
    was_running = state == "RUNNING";
    if (!was_running) {
      return t
          .exec("UPDATE workflows SET state = 'RUNNING', started_at = ? WHERE id = ?",
                {now_ms(), id})
          .status();
    }
    return Status::Ok();
  });
  if (!s.ok() || gone) return;

  // Ends the workflow FAILED or CANCELLED.
  auto finish = [&](const std::string& state, const std::string& msg, const std::string& code) {
    Status fs = persist([&](Txn& t) -> Status {
      auto r = t.exec(
          "UPDATE workflows SET state = ?, msg = ?, error_code = ?, ended_at = ?, result = ?, "
          "vars = ? WHERE id = ? AND state = 'RUNNING'",
          {state, msg, code, now_ms(), result, vars_to_json(vars), id});
      if (!r.ok()) return r.status();
      return t.exec("DELETE FROM workflow_resources WHERE workflow_id = ?", {id}).status();
    });
    // Still no space after compensation freed what it made: the next start finishes it.
    if (!fs.ok() && options.log)
      options.log("workflow " + id + " ended " + state + " but that could not be recorded (" +
                  fs.message() + "); the next start records it");
    notify_terminal();
  };

  auto type_it = types.find(type);
  if (type_it == types.end()) {
    finish("FAILED", "workflow type " + type + " is not known to this service",
           code_name(Code::kFailedPrecondition));
    return;
  }
  const std::vector<Step>& steps = type_it->second.steps;

  // Compensation: persist the outcome first (so a crash resumes it), then undo from `from` down
  // to step 0. When the outcome cannot be persisted (a full disk), the undo runs anyway: it is
  // what frees space, and every undo is idempotent should a crash make it run again.
  auto compensate = [&](int from, const std::string& state, const std::string& msg,
                        const std::string& code) {
    Status ps = persist([&](Txn& t) -> Status {
      return t
          .exec(
              "UPDATE workflows SET final_state = ?, final_msg = ?, error_code = ?, vars = ? "
              "WHERE id = ?",
              {state, msg, code, vars_to_json(vars), id})
          .status();
    });
    if (!ps.ok() && options.log)
      options.log("workflow " + id + ": compensating without a record of it (" + ps.message() +
                  ")");
    std::string cleanup_errors;
    for (int i = std::min(from, static_cast<int>(steps.size()) - 1); i >= 0; --i) {
      const Step& step = steps[static_cast<std::size_t>(i)];
      if (!step.undo) continue;
      Context ctx(*this, id, request, vars, lv, i, "", true, result);
      Status us = call_step(step.undo, ctx);
      (void)store.transact([&](Txn& t) -> Status {
        return t
            .exec(
                "UPDATE workflow_steps SET state = 'UNDONE', error = ? WHERE workflow_id = ? AND "
                "idx = ?",
                {us.ok() ? std::string() : us.to_string(), id, std::int64_t{i}})
            .status();
      });
      if (!us.ok()) {
        cleanup_errors += cleanup_errors.empty() ? "" : "; ";
        cleanup_errors += step.name + ": " + us.message();
      }
    }
    result.clear();  // whatever it made has been undone
    std::string m = msg;
    if (!cleanup_errors.empty()) m += " (cleanup incomplete: " + cleanup_errors + ")";
    finish(state, m, code);
  };
  const std::string kCancelled = code_name(Code::kCancelled);
  // A write of the workflow's own progress that could not be made within the retry budget.
  auto store_failed = [&](int step, const Status& why) {
    compensate(step, "FAILED", "store: " + why.message(), code_name(why.code()));
  };

  if (!final_state.empty()) {  // Crashed while compensating: finish the compensation.
    compensate(step_index, final_state, final_msg, final_code);
    return;
  }

  for (int i = step_index; i < static_cast<int>(steps.size()); ++i) {
    const Step& step = steps[static_cast<std::size_t>(i)];
    if (lv->cancel) {
      // A step interrupted by a crash before the cancel may have done part of its work: its
      // undo runs too.
      bool step_began = false;
      (void)store.read([&](Txn& t) -> Status {
        auto r = t.query_one("SELECT 1 FROM workflow_steps WHERE workflow_id = ? AND idx = ?",
                             {id, std::int64_t{i}});
        step_began = r.ok() && r->has_value();
        return Status::Ok();
      });
      compensate(step_began ? i : i - 1, "CANCELLED", "cancelled by request", kCancelled);
      return;
    }
    if (stopping) return;

    // Persist the step's start before its side effects.
    std::string checkpoint;
    bool interrupted = false;
    s = persist([&](Txn& t) -> Status {
      auto row = t.query_one(
          "SELECT state, checkpoint FROM workflow_steps WHERE workflow_id = ? AND idx = ?",
          {id, std::int64_t{i}});
      if (!row.ok()) return row.status();
      if (*row) {
        interrupted = (*row)->text(0) == "STARTED";
        checkpoint = (*row)->text(1);
        return t
            .exec(
                "UPDATE workflow_steps SET state = 'STARTED', attempts = attempts + 1, "
                "started_at = ? WHERE workflow_id = ? AND idx = ?",
                {now_ms(), id, std::int64_t{i}})
            .status();
      }
      return t
          .exec(
              "INSERT INTO workflow_steps (workflow_id, idx, name, state, attempts, started_at) "
              "VALUES (?, ?, ?, 'STARTED', 1, ?)",
              {id, std::int64_t{i}, step.name, now_ms()})
          .status();
    });
    if (!s.ok()) {
      if (stopping) return;  // Shutdown: resume at next start.
      store_failed(i - 1, s);  // this step did nothing yet
      return;
    }

    if (interrupted && step.on_crash == OnCrash::kFail) {
      std::string why = "interrupted by a restart during step " + step.name;
      if (!step.crash_message.empty()) why += ": " + step.crash_message;
      compensate(i, "FAILED", why, code_name(Code::kAborted));
      return;
    }

    Context ctx(*this, id, request, vars, lv, i, checkpoint, interrupted, result);
    Status rs = call_step(step.run, ctx);

    if (!rs.ok() && stopping && !lv->cancel) return;  // Shutdown: resume at next start.
    if (!rs.ok()) {
      const bool cancelled = lv->cancel && rs.code() == Code::kCancelled;
      (void)store.transact([&](Txn& t) -> Status {
        return t
            .exec(
                "UPDATE workflow_steps SET state = 'FAILED', ended_at = ?, error = ? "
                "WHERE workflow_id = ? AND idx = ?",
                {now_ms(), rs.to_string(), id, std::int64_t{i}})
            .status();
      });
      if (cancelled) {
        compensate(i, "CANCELLED", "cancelled by request", kCancelled);
      } else {
        compensate(i, "FAILED", step.name + ": " + rs.message(), code_name(rs.code()));
      }
      return;
    }

    // Persist the outcome: step done, carried values, next step.
    std::string vars_json = vars_to_json(vars);
    s = persist([&](Txn& t) -> Status {
      auto r = t.exec(
          "UPDATE workflow_steps SET state = 'DONE', ended_at = ?, checkpoint = '' "
          "WHERE workflow_id = ? AND idx = ?",
          {now_ms(), id, std::int64_t{i}});
      if (!r.ok()) return r.status();
      return t
          .exec("UPDATE workflows SET step_index = ?, vars = ?, result = ? WHERE id = ?",
                {std::int64_t{i + 1}, vars_json, result, id})
          .status();
    });
    if (!s.ok()) {
      if (stopping) return;
      store_failed(i, s);
      return;
    }
  }
  // Complete unless a cancel was accepted meanwhile: an accepted cancel always ends CANCELLED.
  bool completed = false;
  s = persist([&](Txn& t) -> Status {
    auto r = t.exec(
        "UPDATE workflows SET state = 'COMPLETED', msg = '', ended_at = ?, result = ?, vars = ?, "
        "progress_percent = 100, progress_stage = 'done', bytes_done = bytes_total "
        "WHERE id = ? AND state = 'RUNNING' AND cancel_requested = 0",
        {now_ms(), result, vars_to_json(vars), id});
    if (!r.ok()) return r.status();
    completed = *r > 0;
    if (!completed) return Status::Ok();
    return t.exec("DELETE FROM workflow_resources WHERE workflow_id = ?", {id}).status();
  });
  if (!s.ok()) {
    if (stopping) return;
    store_failed(static_cast<int>(steps.size()) - 1, s);
    return;
  }
  if (completed) {
    notify_terminal();
    return;
  }
  compensate(static_cast<int>(steps.size()) - 1, "CANCELLED", "cancelled by request", kCancelled);
}

WorkflowEngine::WorkflowEngine(Store& store, EngineOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {}

WorkflowEngine::~WorkflowEngine() { stop(); }

const EngineOptions& WorkflowEngine::options() const { return impl_->options; }

Status WorkflowEngine::register_type(WorkflowType type) {
  if (type.name.empty()) return Status::InvalidArgument("name: must not be empty");
  if (type.steps.empty()) return Status::InvalidArgument("steps: a workflow needs at least one");
  for (const auto& st : type.steps) {
    if (st.name.empty() || !st.run)
      return Status::InvalidArgument("steps: every step needs a name and a run function");
  }
  std::lock_guard lock(impl_->mu);
  if (impl_->started) return Status::FailedPrecondition("register_type: engine already started");
  if (impl_->types.count(type.name))
    return Status::AlreadyExists("workflow type " + type.name + " is already registered");
  impl_->types.emplace(type.name, std::move(type));
  return Status::Ok();
}

Status WorkflowEngine::start() {
  Impl& im = *impl_;
  if (Status s = validate(im.options); !s.ok()) return s;
  {
    std::lock_guard lock(im.mu);
    if (im.started) return Status::FailedPrecondition("start: engine already started");
    im.started = true;
  }
  std::vector<std::string> pending;
  Status s = im.store.read([&](Txn& t) -> Status {
    auto rows =
        t.query("SELECT id FROM workflows WHERE state IN ('PENDING', 'RUNNING') ORDER BY seq ASC");
    if (!rows.ok()) return rows.status();
    for (const auto& r : *rows) pending.push_back(r.text(0));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  for (const auto& id : pending) im.enqueue(id);
  for (int i = 0; i < im.options.threads; ++i) im.workers.emplace_back([&im] { im.worker_loop(); });
  im.is_ready = true;
  return Status::Ok();
}

void WorkflowEngine::stop() {
  Impl& im = *impl_;
  {
    std::lock_guard lock(im.mu);
    im.stopping = true;
  }
  im.queue_cv.notify_all();
  for (auto& t : im.workers) {
    if (t.joinable()) t.join();
  }
  im.workers.clear();
  im.is_ready = false;
}

bool WorkflowEngine::ready() const { return impl_->is_ready; }

Result<std::string> WorkflowEngine::submit(const std::string& type, std::string request_json,
                                           std::vector<std::string> resources) {
  std::vector<Submission> batch;
  batch.push_back({type, std::move(request_json), std::move(resources)});
  auto ids = submit_all(std::move(batch));
  if (!ids.ok()) return ids.status();
  return std::move(ids->front());
}

Result<std::vector<std::string>> WorkflowEngine::submit_all(
    std::vector<Submission> batch,
    const std::function<Status(Txn&, const std::vector<std::string>&)>& record) {
  Impl& im = *impl_;
  if (!im.is_ready || im.stopping) return Status::Unavailable("the workflow engine is not running");
  if (batch.empty()) return Status::InvalidArgument("batch: no workflow to submit");
  for (const auto& b : batch) {
    if (!im.types.count(b.type))
      return Status::InvalidArgument("type: unknown workflow type " + b.type);
  }
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < batch.size(); ++i) ids.push_back(im.env->new_uuid());
  const std::int64_t limit = im.options.max_running_workflows;
  Status s = im.store.transact([&](Txn& t) -> Status {
    auto row = t.query_one("SELECT value FROM workflow_counters WHERE name = 'active'");
    if (!row.ok()) return row.status();
    if (!*row) return Status::Internal("store: workflow counters missing");
    const auto wanted = static_cast<std::int64_t>(batch.size());
    if ((*row)->int64(0) + wanted > limit) {
      return Status::ResourceExhausted(
          "maxRunningWorkflows (" + std::to_string(limit) + ") workflows are already running" +
          (wanted > 1 ? " or would be with these " + std::to_string(wanted) : std::string()) +
          "; retry later");
    }
    {
      std::lock_guard lock(im.claims_mu);
      for (const auto& b : batch) {
        for (const auto& res : b.resources) {
          if (auto it = im.claims.find(res); it != im.claims.end())
            return Status::FailedPrecondition(describe_resource(res) + " is being " + it->second);
        }
      }
    }
    const std::int64_t now = im.now_ms();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto r = t.exec(
          "INSERT INTO workflows (id, type, state, created_at, request) VALUES (?, ?, 'PENDING', "
          "?, ?)",
          {ids[i], batch[i].type, now, batch[i].request_json});
      if (!r.ok()) return r.status();
      for (const auto& res : batch[i].resources) {
        auto rr =
            t.exec("INSERT OR IGNORE INTO workflow_resources (resource, workflow_id) VALUES (?, ?)",
                   {res, ids[i]});
        if (!rr.ok()) return rr.status();
      }
    }
    return record ? record(t, ids) : Status::Ok();
  });
  if (!s.ok()) return s;
  for (const auto& id : ids) im.enqueue(id);
  return ids;
}

Result<Workflow> WorkflowEngine::get(const std::string& id) const {
  Impl& im = *impl_;
  {
    std::lock_guard lock(im.finished_mu);
    if (auto it = im.finished.find(id); it != im.finished.end()) return it->second;
  }
  std::optional<Workflow> wf;
  Status s = im.store.read([&](Txn& t) -> Status {
    auto row = t.query_one(
        std::string("SELECT ") + kWorkflowColumns + " FROM workflows WHERE id = ?", {id});
    if (!row.ok()) return row.status();
    if (*row) wf = workflow_from_row(**row);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!wf) return Status::NotFound("workflow " + id + " not found");
  std::shared_ptr<Impl::Live> lv;
  {
    std::lock_guard lock(im.mu);
    if (auto it = im.live.find(id); it != im.live.end()) lv = it->second;
  }
  if (lv && wf->state == WorkflowState::kRunning) {
    std::lock_guard lock(lv->mu);
    wf->progress = lv->progress;
  }
  if (is_terminal(wf->state)) {
    std::lock_guard lock(im.finished_mu);
    if (im.finished.size() >= Impl::kFinishedCap) im.finished.clear();
    im.finished.emplace(id, *wf);
  }
  return *wf;
}

Result<WorkflowPage> WorkflowEngine::list(const ListWorkflowsRequest& req) const {
  Impl& im = *impl_;
  if (req.page_size < 0 || req.page_size > 1000)
    return Status::InvalidArgument("pageSize: must be 0..1000");
  const int page = req.page_size == 0 ? 100 : req.page_size;
  std::int64_t before = INT64_MAX;
  if (!req.page_token.empty()) {
    auto seq = detail::parse_page_token(req.page_token, kPageTokenPrefix);
    if (!seq.ok()) return seq.status();
    before = *seq;
  }
  std::string sql = std::string("SELECT ") + kWorkflowColumns + " FROM workflows WHERE seq < ?";
  std::vector<SqlValue> params = {before};
  if (req.state) {
    sql += " AND state = ?";
    params.emplace_back(std::string(to_string(*req.state)));
  }
  if (!req.type.empty()) {
    sql += " AND type = ?";
    params.emplace_back(req.type);
  }
  sql += " ORDER BY seq DESC LIMIT ?";
  params.emplace_back(std::int64_t{page + 1});

  WorkflowPage out;
  std::int64_t last_seq = 0;
  Status s = im.store.read([&](Txn& t) -> Status {
    auto rows = t.query(sql, params);
    if (!rows.ok()) return rows.status();
    for (const auto& r : *rows) {
      if (static_cast<int>(out.workflows.size()) == page) {
        out.next_page_token = detail::make_page_token(kPageTokenPrefix, last_seq);
        break;
      }
      out.workflows.push_back(workflow_from_row(r));
      last_seq = r.int64(15);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  std::lock_guard lock(im.mu);
  for (auto& w : out.workflows) {
    if (w.state != WorkflowState::kRunning) continue;
    if (auto it = im.live.find(w.id); it != im.live.end()) {
      std::lock_guard l2(it->second->mu);
      w.progress = it->second->progress;
    }
  }
  return out;
}

Status WorkflowEngine::cancel(const std::string& id) {
  Impl& im = *impl_;
  bool ended = false;
  Status s = im.store.transact([&](Txn& t) -> Status {
    auto row = t.query_one("SELECT state, type, request FROM workflows WHERE id = ?", {id});
    if (!row.ok()) return row.status();
    if (!*row) return Status::NotFound("workflow " + id + " not found");
    std::string state = (*row)->text(0);
    if (state == "PENDING") {
      ended = true;
      auto r = t.exec(
          "UPDATE workflows SET state = 'CANCELLED', msg = 'cancelled by request', "
          "error_code = 'CANCELLED', ended_at = ?, cancel_requested = 1 WHERE id = ?",
          {im.now_ms(), id});
      if (!r.ok()) return r.status();
      r = t.exec("DELETE FROM workflow_resources WHERE workflow_id = ?", {id});
      if (!r.ok()) return r.status();
      // No step ran, so no undo will: the type settles what was recorded for it, atomically.
      auto type = im.types.find((*row)->text(1));
      if (type != im.types.end() && type->second.cancelled_before_start)
        return type->second.cancelled_before_start(t, (*row)->text(2));
      return Status::Ok();
    }
    if (state == "RUNNING")
      return t.exec("UPDATE workflows SET cancel_requested = 1 WHERE id = ?", {id}).status();
    return Status::FailedPrecondition("workflow " + id + " is already " + state);
  });
  if (!s.ok()) return s;
  std::lock_guard lock(im.mu);
  if (auto it = im.live.find(id); it != im.live.end()) it->second->cancel = true;
  if (ended) im.terminal_cv.notify_all();
  return Status::Ok();
}

Result<Workflow> WorkflowEngine::wait(const std::string& id,
                                      std::chrono::milliseconds timeout) const {
  Impl& im = *impl_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto w = get(id);
    if (!w.ok() || is_terminal(w->state)) return w;
    std::unique_lock lock(im.mu);
    if (std::chrono::steady_clock::now() >= deadline)
      return Status::DeadlineExceeded("workflow " + id + " is still " +
                                      std::string(to_string(w->state)));
    // Re-check periodically too: a terminal transition may land between get() and wait.
    im.terminal_cv.wait_until(
        lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
  }
}

Result<bool> WorkflowEngine::resource_in_use(const std::string& resource) const {
  bool used = false;
  Status s = impl_->store.read([&](Txn& t) -> Status {
    auto row =
        t.query_one("SELECT 1 FROM workflow_resources WHERE resource = ? LIMIT 1", {resource});
    if (!row.ok()) return row.status();
    used = row->has_value();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return used;
}

WorkflowEngine::Claim::Claim(Claim&& o) noexcept
    : engine_(o.engine_), resources_(std::move(o.resources_)) {
  o.engine_ = nullptr;
}

WorkflowEngine::Claim& WorkflowEngine::Claim::operator=(Claim&& o) noexcept {
  if (this != &o) {
    release();
    engine_ = o.engine_;
    resources_ = std::move(o.resources_);
    o.engine_ = nullptr;
  }
  return *this;
}

WorkflowEngine::Claim::~Claim() { release(); }

void WorkflowEngine::Claim::release() {
  if (!engine_) return;
  std::lock_guard lock(engine_->claims_mu);
  for (const auto& r : resources_) engine_->claims.erase(r);
  engine_ = nullptr;
}

Result<WorkflowEngine::Claim> WorkflowEngine::claim(std::vector<std::string> resources,
                                                    std::string doing) {
  Impl& im = *impl_;
  bool held = false;
  Status s = im.store.transact([&](Txn& t) -> Status {
    for (const auto& r : resources) {
      auto row = t.query_one("SELECT 1 FROM workflow_resources WHERE resource = ? LIMIT 1", {r});
      if (!row.ok()) return row.status();
      if (*row) return Status::FailedPrecondition(describe_resource(r) + " is used by a running workflow");
    }
    std::lock_guard lock(im.claims_mu);
    for (const auto& r : resources) {
      if (auto it = im.claims.find(r); it != im.claims.end())
        return Status::FailedPrecondition(describe_resource(r) + " is being " + it->second);
    }
    for (const auto& r : resources) im.claims.emplace(r, doing);
    held = true;
    return Status::Ok();
  });
  Claim c(&im, std::move(resources));
  if (!s.ok()) {
    if (!held) c.engine_ = nullptr;  // nothing of it to release
    return s;
  }
  return c;
}

Result<int> WorkflowEngine::active_count() const {
  int n = 0;
  Status s = impl_->store.read([&](Txn& t) -> Status {
    auto row = t.query_one("SELECT COUNT(*) FROM workflows WHERE state IN ('PENDING', 'RUNNING')");
    if (!row.ok()) return row.status();
    n = static_cast<int>((*row)->int64(0));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

}  // namespace dmscore
