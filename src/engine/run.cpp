// One workflow's run on a worker: claim it, run its steps from where it stands, persist each
// step's start before its side effects and its outcome after, compensate on failure or cancel.

#include "engine/engine_impl.hpp"

namespace dmscore {

using detail::sql_state;
using detail::StepState;

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

// The state of one run and its phases.
class WorkflowEngine::Impl::Run {
 public:
  Run(Impl& e, std::string id) : e_(e), id_(std::move(id)), lv_(std::make_shared<Live>()) {}

  // Returns how long the workflow parks (0 when it ended or stopped).
  std::chrono::milliseconds go() {
    {
      std::lock_guard lock(e_.mu);
      e_.live[id_] = lv_;
    }
    const bool woken = e_.take_woken(id_);
    if (e_.shared()) {
      std::lock_guard lock(e_.mu);
      auto it = e_.epochs.find(id_);
      if (it == e_.epochs.end()) return {};  // not claimed by this instance
      lv_->epoch = it->second;
    }
    if (!load()) return {};
    auto type_it = e_.types.find(type_);
    if (type_it == e_.types.end()) {
      finish(WorkflowState::kFailed, "workflow type " + type_ + " is not known to this service",
             code_name(Code::kFailedPrecondition));
      return {};
    }
    steps_ = &type_it->second.steps;
    if (!final_state_.empty()) {  // Crashed while compensating: finish the compensation.
      auto state = parse_workflow_state(final_state_);
      compensate(step_index_, state.ok() ? *state : WorkflowState::kFailed, final_msg_,
                 final_code_);
      return {};
    }
    for (int i = step_index_; i < static_cast<int>(steps_->size()); ++i) {
      if (!run_step(i, woken && i == step_index_)) return park_;
    }
    complete();
    return {};
  }

 private:
  int last_step() const { return static_cast<int>(steps_->size()) - 1; }

  // Loads the workflow and claims it if PENDING, in one transaction, so a concurrent cancel
  // either sees PENDING (and ends it) or RUNNING (and requests cancellation). false when there
  // is nothing to run.
  bool load() {
    bool gone = false;
    Status s = e_.write_run(
        *lv_, id_,
        [&](Txn& t) -> Status {
          gone = false;
          auto row = t.query_one(
              "SELECT state, type, request, vars, step_index, cancel_requested, final_state, "
              "final_msg, result, progress_percent, progress_stage, bytes_done, bytes_total, "
              "error_code FROM workflows WHERE id = ?",
              {id_});
          if (!row.ok()) return row.status();
          const std::string state = *row ? (**row).text(0) : "";
          if (state != to_string(WorkflowState::kPending) &&
              state != to_string(WorkflowState::kRunning)) {
            gone = true;
            return Status::Ok();
          }
          const Row& r = **row;
          type_ = r.text(1);
          request_ = r.text(2);
          vars_ = detail::vars_from_json(r.text(3));
          step_index_ = static_cast<int>(r.int64(4));
          if (r.int64(5)) lv_->cancel = true;
          final_state_ = r.text(6);
          final_msg_ = r.text(7);
          result_ = r.text(8);
          lv_->progress.percent = static_cast<int>(r.int64(9));
          lv_->progress.stage = r.text(10);
          lv_->progress.bytes_done = static_cast<std::uint64_t>(r.int64(11));
          lv_->progress.bytes_total = static_cast<std::uint64_t>(r.int64(12));
          final_code_ = r.text(13);
          if (state == to_string(WorkflowState::kRunning)) return Status::Ok();
          return t
              .exec("UPDATE workflows SET state = ?, started_at = ? WHERE id = ?",
                    {sql_state(WorkflowState::kRunning), e_.now_ms(), id_})
              .status();
        },
        false);
    return s.ok() && !gone;
  }

  // Runs step `i`; false when the run ended (failed, cancelled, stopped) before its end, or the
  // step parked (park_ set). `woken`: the step parked and runs again, not interrupted.
  bool run_step(int i, bool woken) {
    const Step& step = (*steps_)[static_cast<std::size_t>(i)];
    if (lv_->cancel) {
      compensate(began(i) ? i : i - 1, WorkflowState::kCancelled, "cancelled by request",
                 kCancelled);
      return false;
    }
    if (e_.stopping) return false;
    std::string checkpoint;
    bool interrupted = false;
    if (Status s = woken ? checkpoint_of(i, checkpoint) : begin(i, step, checkpoint, interrupted);
        !s.ok()) {
      if (!e_.stopping) store_failed(i - 1, s);  // this step did nothing yet
      return false;                              // (shutdown: resume at next start)
    }
    if (interrupted && step.on_crash == OnCrash::kFail) {
      std::string why = "interrupted by a restart during step " + step.name;
      if (!step.crash_message.empty()) why += ": " + step.crash_message;
      compensate(i, WorkflowState::kFailed, why, code_name(Code::kAborted));
      return false;
    }
    Context ctx(e_, id_, request_, vars_, lv_, i, checkpoint, interrupted, result_);
    Status rs = call_step(step.run, ctx);
    if (!rs.ok()) {
      if (e_.stopping && !lv_->cancel) return false;  // Shutdown: resume at next start.
      failed(i, step, rs);
      return false;
    }
    if (ctx.parked_for().count() > 0) {
      const std::string vars_json = detail::vars_to_json(vars_);
      Status ps = e_.write_run(*lv_, id_, [&](Txn& t) -> Status {
        return t.exec("UPDATE workflows SET vars = ? WHERE id = ?", {vars_json, id_}).status();
      });
      if (!ps.ok()) {
        if (!e_.stopping) store_failed(i, ps);
        return false;
      }
      park_ = ctx.parked_for();
      return false;
    }
    if (Status s = done(i); !s.ok()) {
      if (!e_.stopping) store_failed(i, s);
      return false;
    }
    return true;
  }

  // Whether step `i` began before (a step interrupted by a crash before a cancel may have done
  // part of its work: its undo runs too).
  bool began(int i) {
    if (lv_->lost) return false;
    bool step_began = false;
    (void)e_.store.read([&](Txn& t) -> Status {
      auto r = t.query_one("SELECT 1 FROM workflow_steps WHERE workflow_id = ? AND idx = ?",
                           {id_, std::int64_t{i}});
      step_began = r.ok() && r->has_value();
      return Status::Ok();
    });
    return step_began;
  }

  // Persists the step's start before its side effects; reads its checkpoint and whether a
  // crash interrupted it.
  Status begin(int i, const Step& step, std::string& checkpoint, bool& interrupted) {
    return e_.write_run(*lv_, id_, [&](Txn& t) -> Status {
      interrupted = false;
      checkpoint.clear();
      auto row = t.query_one(
          "SELECT state, checkpoint FROM workflow_steps WHERE workflow_id = ? AND idx = ?",
          {id_, std::int64_t{i}});
      if (!row.ok()) return row.status();
      if (*row) {
        interrupted = (*row)->text(0) == to_string(StepState::kStarted);
        checkpoint = (*row)->text(1);
        return t
            .exec(
                "UPDATE workflow_steps SET state = ?, attempts = attempts + 1, "
                "started_at = ? WHERE workflow_id = ? AND idx = ?",
                {sql_state(StepState::kStarted), e_.now_ms(), id_, std::int64_t{i}})
            .status();
      }
      return t
          .exec(
              "INSERT INTO workflow_steps (workflow_id, idx, name, state, attempts, started_at) "
              "VALUES (?, ?, ?, ?, 1, ?)",
              {id_, std::int64_t{i}, step.name, sql_state(StepState::kStarted), e_.now_ms()})
          .status();
    });
  }

  // The saved checkpoint of step `i`, which parked.
  Status checkpoint_of(int i, std::string& checkpoint) {
    return e_.store.read([&](Txn& t) -> Status {
      auto row =
          t.query_one("SELECT checkpoint FROM workflow_steps WHERE workflow_id = ? AND idx = ?",
                      {id_, std::int64_t{i}});
      if (!row.ok()) return row.status();
      if (*row) checkpoint = (*row)->text(0);
      return Status::Ok();
    });
  }

  void failed(int i, const Step& step, const Status& rs) {
    if (lv_->lost) return;  // another instance runs it now
    const bool cancelled = lv_->cancel && rs.code() == Code::kCancelled;
    (void)e_.write_run(
        *lv_, id_,
        [&](Txn& t) -> Status {
          return t
              .exec(
                  "UPDATE workflow_steps SET state = ?, ended_at = ?, error = ? "
                  "WHERE workflow_id = ? AND idx = ?",
                  {sql_state(StepState::kFailed), e_.now_ms(), rs.to_string(), id_,
                   std::int64_t{i}})
              .status();
        },
        false);
    if (cancelled)
      compensate(i, WorkflowState::kCancelled, "cancelled by request", kCancelled);
    else
      compensate(i, WorkflowState::kFailed, step.name + ": " + rs.message(), code_name(rs.code()));
  }

  // Persists the outcome: step done, carried values, next step.
  Status done(int i) {
    const std::string vars_json = detail::vars_to_json(vars_);
    return e_.write_run(*lv_, id_, [&](Txn& t) -> Status {
      auto r = t.exec(
          "UPDATE workflow_steps SET state = ?, ended_at = ?, checkpoint = '' "
          "WHERE workflow_id = ? AND idx = ?",
          {sql_state(StepState::kDone), e_.now_ms(), id_, std::int64_t{i}});
      if (!r.ok()) return r.status();
      return t
          .exec("UPDATE workflows SET step_index = ?, vars = ?, result = ? WHERE id = ?",
                {std::int64_t{i + 1}, vars_json, result_, id_})
          .status();
    });
  }

  // Completes unless a cancel was accepted meanwhile: an accepted cancel always ends CANCELLED.
  void complete() {
    bool completed = false;
    Status s = e_.write_run(*lv_, id_, [&](Txn& t) -> Status {
      auto r = t.exec(
          "UPDATE workflows SET state = ?, msg = '', ended_at = ?, result = ?, vars = ?, "
          "progress_percent = 100, progress_stage = 'done', bytes_done = bytes_total "
          "WHERE id = ? AND state = ? AND cancel_requested = 0",
          {sql_state(WorkflowState::kCompleted), e_.now_ms(), result_, detail::vars_to_json(vars_),
           id_, sql_state(WorkflowState::kRunning)});
      if (!r.ok()) return r.status();
      completed = *r > 0;
      if (!completed) return Status::Ok();
      return t.exec("DELETE FROM workflow_resources WHERE workflow_id = ?", {id_}).status();
    });
    if (!s.ok()) {
      if (!e_.stopping) store_failed(last_step(), s);
      return;
    }
    if (completed) {
      e_.notify_terminal();
      return;
    }
    compensate(last_step(), WorkflowState::kCancelled, "cancelled by request", kCancelled);
  }

  // Ends the workflow FAILED or CANCELLED.
  void finish(WorkflowState state, const std::string& msg, const std::string& code) {
    if (lv_->lost) return;
    Status fs = e_.write_run(*lv_, id_, [&](Txn& t) -> Status {
      auto r = t.exec(
          "UPDATE workflows SET state = ?, msg = ?, error_code = ?, ended_at = ?, result = ?, "
          "vars = ? WHERE id = ? AND state = ?",
          {sql_state(state), msg, code, e_.now_ms(), result_, detail::vars_to_json(vars_), id_,
           sql_state(WorkflowState::kRunning)});
      if (!r.ok()) return r.status();
      return t.exec("DELETE FROM workflow_resources WHERE workflow_id = ?", {id_}).status();
    });
    // Still no space after compensation freed what it made: the next start finishes it.
    if (!fs.ok() && e_.options.log)
      e_.options.log("workflow " + id_ + " ended " + sql_state(state) +
                     " but that could not be recorded (" + fs.message() +
                     "); the next start records it");
    e_.notify_terminal();
  }

  // Compensation: persist the outcome first (so a crash resumes it), then undo from `from` down
  // to step 0. When the outcome cannot be persisted (a full disk), the undo runs anyway: it is
  // what frees space, and every undo is idempotent should a crash make it run again.
  void compensate(int from, WorkflowState state, const std::string& msg, const std::string& code) {
    // Another instance owns the workflow now: what it made is that instance's to finish or undo.
    if (lv_->lost) return;
    Status ps = e_.write_run(*lv_, id_, [&](Txn& t) -> Status {
      return t
          .exec(
              "UPDATE workflows SET final_state = ?, final_msg = ?, error_code = ?, vars = ? "
              "WHERE id = ?",
              {sql_state(state), msg, code, detail::vars_to_json(vars_), id_})
          .status();
    });
    if (lv_->lost) return;
    // Scale-out: undo only what this instance is sure it still owns (the outcome's fenced write
    // committed); a store it cannot reach may have given the workflow to another instance.
    if (!ps.ok() && e_.shared()) return;
    if (!ps.ok() && e_.options.log)
      e_.options.log("workflow " + id_ + ": compensating without a record of it (" + ps.message() +
                     ")");
    std::string cleanup_errors;
    for (int i = std::min(from, last_step()); i >= 0; --i) {
      const Step& step = (*steps_)[static_cast<std::size_t>(i)];
      if (!step.undo) continue;
      if (!e_.still_owned(*lv_, id_)) return;
      Context ctx(e_, id_, request_, vars_, lv_, i, "", true, result_);
      Status us = call_step(step.undo, ctx);
      (void)e_.write_run(
          *lv_, id_,
          [&](Txn& t) -> Status {
            return t
                .exec(
                    "UPDATE workflow_steps SET state = ?, error = ? WHERE workflow_id = ? AND idx "
                    "= ?",
                    {sql_state(StepState::kUndone), us.ok() ? std::string() : us.to_string(), id_,
                     std::int64_t{i}})
                .status();
          },
          false);
      if (!us.ok()) {
        cleanup_errors += cleanup_errors.empty() ? "" : "; ";
        cleanup_errors += step.name + ": " + us.message();
      }
    }
    result_.clear();  // whatever it made has been undone
    std::string m = msg;
    if (!cleanup_errors.empty()) m += " (cleanup incomplete: " + cleanup_errors + ")";
    finish(state, m, code);
  }

  // A write of the workflow's own progress that could not be made within the retry budget.
  void store_failed(int step, const Status& why) {
    compensate(step, WorkflowState::kFailed, "store: " + why.message(), code_name(why.code()));
  }

  const std::string kCancelled = code_name(Code::kCancelled);
  Impl& e_;
  const std::string id_;
  std::shared_ptr<Live> lv_;
  const std::vector<Step>* steps_ = nullptr;
  std::string type_, request_, final_state_, final_msg_, final_code_, result_;
  std::map<std::string, std::string> vars_;
  int step_index_ = 0;
  std::chrono::milliseconds park_{0};
};

std::chrono::milliseconds WorkflowEngine::Impl::run_workflow(const std::string& id) {
  return Run(*this, id).go();
}

}  // namespace dmscore
