#pragma once
// WorkflowEngine: durable workflows made of named, idempotent steps, with admission control,
// cancellation, compensation and crash recovery.
//
// A workflow is an instance of a registered WorkflowType: an ordered list of Steps. The engine
// persists each step's start before running it and its outcome after, so that after a crash it
// knows exactly which step was interrupted. A step may save a checkpoint (a copy saves the
// offset reached) and is then re-run from it; a step that cannot be resumed declares
// OnCrash::kFail and the workflow ends FAILED with a message that says why.
//
//                 submit (admission: one write transaction)
//                    │
//                 PENDING ──cancel──────────────────────────────► CANCELLED
//                    │ a worker picks it up                          ▲
//                 RUNNING ─ step 0 ─ step 1 ─ ... ─ step n-1 ─► COMPLETED
//                    │ step error            │ cancel requested      │
//                    ▼                       ▼                       │
//                 compensating: undo of the current and earlier steps, newest first
//                    │ (final state and message persisted first, so a crash here resumes it)
//                    ▼
//                 FAILED ◄── error          CANCELLED ◄── cancel ────┘
//
// Terminal states (COMPLETED, FAILED, CANCELLED) never change. Steps run on the engine's own
// bounded pool of threads, never on the caller's.
//
// Safe for concurrent use.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/env.hpp"
#include "dmscore/result.hpp"
#include "dmscore/status.hpp"

namespace dmscore {

class Store;
namespace detail {
struct EngineTxn;
}

enum class WorkflowState { kPending, kRunning, kCompleted, kFailed, kCancelled };

// "PENDING", "RUNNING", ...
std::string_view to_string(WorkflowState state);
// Parses the names above (exact, upper case); INVALID_ARGUMENT otherwise.
Result<WorkflowState> parse_workflow_state(std::string_view name);
bool is_terminal(WorkflowState state);

struct Progress {
  int percent = 0;  // 0..100
  std::string stage;
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  std::uint64_t bytes_per_second = 0;
};

struct Workflow {
  std::string id;
  std::string type;
  WorkflowState state = WorkflowState::kPending;
  // Why it failed or was cancelled; empty otherwise.
  std::string msg;
  // The canonical code of that reason ("RESOURCE_EXHAUSTED", "CANCELLED", ...); empty otherwise.
  std::string error_code;
  Env::SystemTime created_at;
  std::optional<Env::SystemTime> started_at;
  std::optional<Env::SystemTime> ended_at;
  Progress progress;
  bool cancel_requested = false;
  // The request that started it, as submitted (JSON text).
  std::string request;
  // What it made (JSON object text, e.g. {"volumeId":"..."}); empty until it sets one.
  std::string result;
};

// What a running step sees of its workflow. Valid only during the step's call; used from the
// step's thread only.
class StepContext {
 public:
  virtual ~StepContext() = default;

  virtual const std::string& workflow_id() const = 0;
  virtual const std::string& request() const = 0;

  // Small named values carried from step to step (a created volume's id, ...). Set values are
  // persisted with the step's outcome, or earlier with save_checkpoint().
  virtual std::string var(const std::string& key) const = 0;
  virtual void set_var(const std::string& key, std::string value) = 0;

  // The checkpoint this step saved before an interruption; empty on a first run.
  virtual const std::string& checkpoint() const = 0;
  // True when this step was interrupted by a crash or shutdown and now runs again.
  virtual bool resumed() const = 0;
  // Persists `checkpoint` (and the vars) durably before returning.
  virtual Status save_checkpoint(std::string checkpoint) = 0;

  // Updates the progress that get() and list() show; persisted at most once per
  // progress_persist_interval.
  virtual void report_progress(const Progress& progress) = 0;

  // True once the workflow should stop: cancellation was requested or the engine is stopping.
  // A step checks it between units of work and then returns Status::Cancelled.
  virtual bool should_stop() const = 0;

  // Records that this workflow uses `resource` until it ends ("volume:<id>"); persisted at
  // once. See WorkflowEngine::resource_in_use.
  virtual Status add_resource(const std::string& resource) = 0;

  // Sets the workflow's result (a JSON object), recorded when it completes.
  virtual void set_result(std::string result_json) = 0;

  // For a step that waits for something outside the service (a migration agent's stream): when
  // run() then returns OK, the engine does not move on but gives the thread back and runs the
  // same step again, with its saved checkpoint and vars, once WorkflowEngine::wake() names the
  // workflow, a cancel is requested, or `at_most` passes. Meanwhile the workflow stays RUNNING
  // (and counts against max_running_workflows). A restart runs it again as after a crash.
  virtual void park(std::chrono::milliseconds at_most) = 0;
};

enum class OnCrash {
  // Run the step again, with its checkpoint; the step must be idempotent.
  kResume,
  // End the workflow FAILED (after compensation) with the step's crash_message.
  kFail,
};

struct Step {
  std::string name;
  // The step's work. OK moves on to the next step; CANCELLED after should_stop() stops;
  // anything else fails the workflow with that status's message.
  std::function<Status(StepContext&)> run;
  // Compensation: undoes what run() may have done, even partly. Must be idempotent; may be
  // empty. Runs for the failing step and every earlier one, newest first.
  std::function<Status(StepContext&)> undo;
  OnCrash on_crash = OnCrash::kResume;
  // With kFail: why the step cannot be resumed, for the workflow's msg.
  std::string crash_message;
};

// A workflow cancelled while PENDING ends at once without running any step, so no undo runs for
// it. (The service's own types settle, in the cancel's transaction, what their submitter
// recorded for them; that hook is internal to the library.)
struct WorkflowType {
  std::string name;
  std::vector<Step> steps;
};

struct EngineOptions {
  // Default: 8. REQUIRES: 1..10000.
  int max_running_workflows = 8;
  // Default: 4. REQUIRES: 1..256.
  int threads = 4;
  // Default: 500 ms.
  std::chrono::milliseconds progress_persist_interval{500};
  // Default: Env::Default().
  std::shared_ptr<Env> env;
  // How long a running workflow retries a store write that fails for lack of space or an I/O
  // error (pauses through `env`, with jitter) before it gives up: it then compensates (which
  // frees what it made) and ends FAILED with the store's code (RESOURCE_EXHAUSTED for a full
  // disk). Default: 30 s.
  std::chrono::milliseconds store_retry_budget{30000};
  // Receives a line when the store keeps refusing a workflow's writes. Default: none.
  std::function<void(std::string_view)> log;

  // Scale-out: several instances' engines on one shared store (PostgreSQL). Empty (the
  // default): this engine runs every workflow in the store, as the only instance.
  //
  // With an id, the instance holds a lease in the store's `instances` table that it renews
  // every heartbeat_interval (lease_ttl long, by the database's clock), and it claims runnable
  // workflows (`SELECT ... FOR UPDATE SKIP LOCKED`): those not owned, or owned by an instance
  // whose lease has run out. A claim bumps the workflow's lease epoch; every write the engine
  // makes for a running workflow first checks, in the same transaction, that this instance
  // still owns it at that epoch (fencing), so an instance that lost a workflow (it stalled and
  // another took it over) commits nothing more for it and stops it without compensation. A
  // taken-over workflow resumes from its checkpoints, as after a crash. REQUIRES: 1..64
  // characters [A-Za-z0-9._-].
  std::string instance_id;
  // Shown by instances() (the instance's API address). Default: empty.
  std::string instance_address;
  // Default: 10 s. REQUIRES: >= 3 x heartbeat_interval.
  std::chrono::milliseconds lease_ttl{10000};
  // Default: 2 s. REQUIRES: >= 10 ms.
  std::chrono::milliseconds heartbeat_interval{2000};
  // How often it looks for workflows to claim (and for cancels asked elsewhere) besides when
  // one is submitted here. Default: 500 ms. REQUIRES: >= 10 ms.
  std::chrono::milliseconds claim_interval{500};
  // Placement, asked at start and every heartbeat: `placed` receives the resources a workflow
  // can run only where they are reached ("cluster:<id>" of a local cluster, a folder), and
  // `reached` those of them this instance reaches. A workflow using a placed resource is
  // claimed only by an instance that announced it reaches it. Default: none (nothing placed).
  std::function<void(std::vector<std::string>& placed, std::vector<std::string>& reached)> reach;
};

// An instance of the service sharing the store (EngineOptions::instance_id).
struct InstanceInfo {
  std::string id;
  std::string address;
  Env::SystemTime started_at;
  Env::SystemTime heartbeat_at;
  Env::SystemTime lease_until;
  // Workflows it ran or had parked at its last heartbeat.
  int running = 0;
  // Its lease has not run out (by the database's clock).
  bool alive = false;
};

// What this engine's lease machinery has done since start (all 0 without an instance_id).
struct LeaseStats {
  std::uint64_t heartbeats = 0;          // leases renewed
  std::uint64_t heartbeat_failures = 0;  // renewals that failed
  std::uint64_t claimed = 0;             // workflows claimed
  std::uint64_t taken_over = 0;          // of them, from an instance whose lease ran out
  std::uint64_t fenced = 0;              // runs stopped because another instance owns them now
};

struct ListWorkflowsRequest {
  // 0 means 100. REQUIRES: 0..1000.
  int page_size = 0;
  // From a previous page's next_page_token; empty for the first page.
  std::string page_token;
  std::optional<WorkflowState> state;
  // Empty means every type.
  std::string type;
};

struct WorkflowPage {
  // Newest first.
  std::vector<Workflow> workflows;
  // Empty on the last page.
  std::string next_page_token;
};

class WorkflowEngine {
  struct Impl;

 public:
  // The engine keeps a reference to `store`, which must outlive it.
  WorkflowEngine(Store& store, EngineOptions options);
  // Stops the engine (see stop()).
  ~WorkflowEngine();
  WorkflowEngine(const WorkflowEngine&) = delete;
  WorkflowEngine& operator=(const WorkflowEngine&) = delete;

  // Registers a workflow type. REQUIRES: before start().
  // INVALID_ARGUMENT for an empty name, no steps or a step without run; ALREADY_EXISTS for a
  // name registered before; FAILED_PRECONDITION after start().
  Status register_type(WorkflowType type);

  // Recovers and starts running workflows: every non-terminal workflow is queued again, in
  // submission order; a RUNNING one resumes at its interrupted step (see OnCrash).
  // INVALID_ARGUMENT for bad options; FAILED_PRECONDITION when already started or when a stored
  // workflow has a type that is not registered (it is failed, with a msg saying so, not
  // skipped).
  Status start();

  // Stops taking workflows and asks running steps to stop (should_stop() turns true); waits for
  // them. Interrupted workflows stay RUNNING in the store and resume at the next start().
  // Idempotent.
  void stop();

  // True once start() has finished recovery; with an instance_id, once the lease is held and
  // claims run, and while the last renewal is younger than lease_ttl.
  bool ready() const;

  // The instances sharing the store, by id; empty without an instance_id.
  Result<std::vector<InstanceInfo>> instances() const;
  LeaseStats lease_stats() const;
  // Workflows this engine runs, has queued or has parked now.
  int running_here() const;

  // Durably records a new PENDING workflow of `type` and returns its id. `resources` are
  // recorded as used by it (see resource_in_use). Admission and insertion are one transaction.
  // Returns RESOURCE_EXHAUSTED (and records nothing) when max_running_workflows non-terminal
  // workflows exist; INVALID_ARGUMENT for an unregistered type; UNAVAILABLE before start().
  Result<std::string> submit(const std::string& type, std::string request_json,
                             std::vector<std::string> resources = {});

  struct Submission {
    std::string type;
    std::string request_json;
    std::vector<std::string> resources;
  };
  // Records every workflow of `batch` or none: admission counts them all against
  // max_running_workflows (RESOURCE_EXHAUSTED, nothing recorded, when they do not all fit).
  // Returns the ids in batch order. An empty batch is INVALID_ARGUMENT.
  Result<std::vector<std::string>> submit_all(std::vector<Submission> batch);

  // NOT_FOUND for an unknown id.
  Result<Workflow> get(const std::string& id) const;

  // INVALID_ARGUMENT naming `pageSize` or `nextPageToken` when out of range or malformed.
  Result<WorkflowPage> list(const ListWorkflowsRequest& request) const;

  // PENDING: ends CANCELLED at once. RUNNING: sets cancel_requested; the running step stops at
  // its next check, compensation runs and the workflow ends CANCELLED. NOT_FOUND for an
  // unknown id; FAILED_PRECONDITION when already terminal.
  Status cancel(const std::string& id);

  // Blocks until the workflow is terminal or `timeout` passes (DEADLINE_EXCEEDED).
  Result<Workflow> wait(const std::string& id, std::chrono::milliseconds timeout) const;

  // True while a non-terminal workflow uses `resource`.
  Result<bool> resource_in_use(const std::string& resource) const;

  // A short, exclusive hold on resources for work that is not a workflow (deleting a volume,
  // detaching a cluster), so that the work need not hold a lock while it calls a cluster.
  // Released when destroyed. Move-only.
  class Claim {
   public:
    Claim() = default;
    Claim(Claim&& o) noexcept;
    Claim& operator=(Claim&& o) noexcept;
    ~Claim();

   private:
    friend class WorkflowEngine;
    Claim(Impl* engine, std::vector<std::string> resources)
        : engine_(engine), resources_(std::move(resources)) {}
    void release();
    Impl* engine_ = nullptr;
    std::vector<std::string> resources_;
  };
  // Granted only when no non-terminal workflow uses any of `resources` and no other claim holds
  // one; while it is held, submissions naming one are refused with FAILED_PRECONDITION ("<kind>
  // <id> is being <doing>"). Both are decided inside store write transactions, so a claim and a
  // submission never both succeed. Claims live in memory: a restart drops them with their
  // holders. FAILED_PRECONDITION "<kind> <id> is used by a running workflow" or "... is being
  // <doing>" otherwise.
  Result<Claim> claim(std::vector<std::string> resources, std::string doing);

  // Runs a parked workflow's step again now (see StepContext::park); nothing when it is not
  // parked.
  void wake(const std::string& id);

  // Non-terminal workflows right now.
  Result<int> active_count() const;

  const EngineOptions& options() const;

 private:
  friend struct detail::EngineTxn;
  std::unique_ptr<Impl> impl_;
};

// Checks options against their REQUIRES clauses; INVALID_ARGUMENT names the field.
Status validate(const EngineOptions& options);

}  // namespace dmscore
