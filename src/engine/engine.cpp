#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "dmscore/workflow.hpp"
#include "engine/engine_impl.hpp"

namespace dmscore {

using detail::sql_state;

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
  if (!o.instance_id.empty()) {
    if (o.instance_id.size() > 64)
      return Status::InvalidArgument("instance_id: must be 1..64 characters");
    for (char c : o.instance_id) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
        return Status::InvalidArgument("instance_id: only letters, digits, '.', '_' and '-'");
    }
    if (o.heartbeat_interval.count() < 10)
      return Status::InvalidArgument("heartbeat_interval: must be at least 10 ms");
    if (o.claim_interval.count() < 10)
      return Status::InvalidArgument("claim_interval: must be at least 10 ms");
    if (o.lease_ttl < 3 * o.heartbeat_interval)
      return Status::InvalidArgument("lease_ttl: must be at least 3 heartbeat intervals");
  }
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

constexpr std::string_view kPageTokenPrefix = "wf1.";

// "volume <id>" for "volume:<id>".
std::string describe_resource(const std::string& resource) {
  auto colon = resource.find(':');
  if (colon == std::string::npos) return resource;
  return resource.substr(0, colon) + " " + resource.substr(colon + 1);
}

}  // namespace

namespace detail {

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

}  // namespace detail

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
  if (im.shared()) {
    for (int i = 0; i < im.options.threads; ++i)
      im.workers.emplace_back([&im] { im.worker_loop(); });
    if (Status ls = im.start_leases(); !ls.ok()) {
      stop();
      return ls;
    }
    im.is_ready = true;
    return Status::Ok();
  }
  std::vector<std::string> pending;
  Status s = im.store.read([&](Txn& t) -> Status {
    auto rows = t.query("SELECT id FROM workflows WHERE state IN (?, ?) ORDER BY seq ASC",
                        {sql_state(WorkflowState::kPending), sql_state(WorkflowState::kRunning)});
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
  if (im.shared()) im.stop_leases();
  im.is_ready = false;
}

bool WorkflowEngine::ready() const {
  return impl_->is_ready && (!impl_->shared() || impl_->lease_fresh());
}

int WorkflowEngine::running_here() const {
  std::lock_guard lock(impl_->mu);
  return static_cast<int>(impl_->queued.size());
}

LeaseStats WorkflowEngine::lease_stats() const {
  const Impl& im = *impl_;
  LeaseStats st;
  st.heartbeats = im.n_heartbeats;
  st.heartbeat_failures = im.n_heartbeat_failures;
  st.claimed = im.n_claimed;
  st.taken_over = im.n_taken_over;
  st.fenced = im.n_fenced;
  return st;
}

Result<std::vector<InstanceInfo>> WorkflowEngine::instances() const {
  Impl& im = *impl_;
  std::vector<InstanceInfo> out;
  if (!im.shared()) return out;
  Status s = im.store.read([&](Txn& t) -> Status {
    auto now = im.db_now(t);
    if (!now.ok()) return now.status();
    auto rows = t.query(
        "SELECT id, address, started_at, heartbeat_at, lease_until, running FROM instances "
        "ORDER BY id");
    if (!rows.ok()) return rows.status();
    for (const auto& r : *rows) {
      InstanceInfo i;
      i.id = r.text(0);
      i.address = r.text(1);
      i.started_at = from_millis(r.int64(2));
      i.heartbeat_at = from_millis(r.int64(3));
      i.lease_until = from_millis(r.int64(4));
      i.running = static_cast<int>(r.int64(5));
      i.alive = r.int64(4) >= *now;
      out.push_back(std::move(i));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::string> WorkflowEngine::submit(const std::string& type, std::string request_json,
                                           std::vector<std::string> resources) {
  std::vector<Submission> batch;
  batch.push_back({type, std::move(request_json), std::move(resources)});
  auto ids = submit_all(std::move(batch));
  if (!ids.ok()) return ids.status();
  return std::move(ids->front());
}

Result<std::vector<std::string>> WorkflowEngine::submit_all(std::vector<Submission> batch) {
  return detail::EngineTxn::submit_all(*this, std::move(batch), {});
}

Status detail::EngineTxn::register_type(WorkflowEngine& engine, WorkflowType type, Settle settle) {
  const std::string name = type.name;
  if (Status s = engine.register_type(std::move(type)); !s.ok()) return s;
  if (settle) engine.impl_->settle_cancelled[name] = std::move(settle);
  return Status::Ok();
}

Result<std::vector<std::string>> detail::EngineTxn::submit_all(
    WorkflowEngine& engine, std::vector<WorkflowEngine::Submission> batch, const Record& record) {
  WorkflowEngine::Impl& im = *engine.impl_;
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
    if (im.shared()) {
      for (const auto& b : batch) {
        for (const auto& res : b.resources) {
          auto h = im.live_hold(t, res);
          if (!h.ok()) return h.status();
          if (!h->empty())
            return Status::FailedPrecondition(describe_resource(res) + " is being " + *h);
        }
      }
    } else {
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
          "INSERT INTO workflows (id, type, state, created_at, request) VALUES (?, ?, ?, ?, ?)",
          {ids[i], batch[i].type, sql_state(WorkflowState::kPending), now, batch[i].request_json});
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
  if (im.shared())
    im.nudge_claims();
  else
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
    ended = false;
    auto row = t.query_one("SELECT state, type, request FROM workflows WHERE id = ?", {id});
    if (!row.ok()) return row.status();
    if (!*row) return Status::NotFound("workflow " + id + " not found");
    std::string state = (*row)->text(0);
    if (state == to_string(WorkflowState::kPending)) {
      ended = true;
      auto r = t.exec(
          "UPDATE workflows SET state = ?, msg = 'cancelled by request', error_code = ?, "
          "ended_at = ?, cancel_requested = 1 WHERE id = ?",
          {sql_state(WorkflowState::kCancelled), code_name(Code::kCancelled), im.now_ms(), id});
      if (!r.ok()) return r.status();
      r = t.exec("DELETE FROM workflow_resources WHERE workflow_id = ?", {id});
      if (!r.ok()) return r.status();
      // No step ran, so no undo will: the type settles what was recorded for it, atomically.
      auto settle = im.settle_cancelled.find((*row)->text(1));
      if (settle != im.settle_cancelled.end()) return settle->second(t, (*row)->text(2));
      return Status::Ok();
    }
    if (state == to_string(WorkflowState::kRunning))
      return t.exec("UPDATE workflows SET cancel_requested = 1 WHERE id = ?", {id}).status();
    return Status::FailedPrecondition("workflow " + id + " is already " + state);
  });
  if (!s.ok()) return s;
  std::lock_guard lock(im.mu);
  if (auto it = im.live.find(id); it != im.live.end()) it->second->cancel = true;
  im.unpark_locked(id);  // a parked step sees the cancel when it runs again
  if (ended) im.terminal_cv.notify_all();
  return Status::Ok();
}

void WorkflowEngine::wake(const std::string& id) { impl_->wake(id); }

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
  if (engine_->shared()) {
    Impl* e = engine_;
    (void)e->persist([&](Txn& t) -> Status {
      for (const auto& r : resources_) {
        auto x = t.exec("DELETE FROM resource_holds WHERE resource = ? AND instance_id = ?",
                        {r, e->options.instance_id});
        if (!x.ok()) return x.status();
      }
      return Status::Ok();
    });
    engine_ = nullptr;
    return;
  }
  std::lock_guard lock(engine_->claims_mu);
  for (const auto& r : resources_) engine_->claims.erase(r);
  engine_ = nullptr;
}

Result<WorkflowEngine::Claim> WorkflowEngine::claim(std::vector<std::string> resources,
                                                    std::string doing) {
  Impl& im = *impl_;
  bool held = false;
  Status s = im.store.transact([&](Txn& t) -> Status {
    if (held && !im.shared()) {  // run again after a conflict: undo the last try's holds
      std::lock_guard lock(im.claims_mu);
      for (const auto& r : resources) im.claims.erase(r);
    }
    held = false;
    for (const auto& r : resources) {
      auto row = t.query_one("SELECT 1 FROM workflow_resources WHERE resource = ? LIMIT 1", {r});
      if (!row.ok()) return row.status();
      if (*row)
        return Status::FailedPrecondition(describe_resource(r) + " is used by a running workflow");
    }
    if (im.shared()) {
      // Held in the store, so that no instance's submission or claim takes the resource.
      for (const auto& r : resources) {
        auto h = im.live_hold(t, r);
        if (!h.ok()) return h.status();
        if (!h->empty())
          return Status::FailedPrecondition(describe_resource(r) + " is being " + *h);
        auto x = t.exec("DELETE FROM resource_holds WHERE resource = ?", {r});  // a void hold
        if (!x.ok()) return x.status();
        x = t.exec("INSERT INTO resource_holds (resource, instance_id, doing) VALUES (?, ?, ?)",
                   {r, im.options.instance_id, doing});
        if (!x.ok()) return x.status();
      }
      held = true;
      return Status::Ok();
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
    auto row =
        t.query_one("SELECT COUNT(*) FROM workflows WHERE state IN (?, ?)",
                    {sql_state(WorkflowState::kPending), sql_state(WorkflowState::kRunning)});
    if (!row.ok()) return row.status();
    n = static_cast<int>((*row)->int64(0));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

}  // namespace dmscore
