#pragma once
// What the service's own modules do inside the engine's transactions. The public engine
// (dmscore/workflow.hpp) has no Txn; these are for the library's modules whose rows must commit
// with the engine's: a copy set recorded with the workflows that make it, a copy's status
// settled by the cancel of a workflow that never started.

#include <functional>
#include <string>
#include <vector>

#include "dmscore/store.hpp"
#include "dmscore/workflow.hpp"

namespace dmscore::detail {

struct EngineTxn {
  using Record = std::function<Status(Txn&, const std::vector<std::string>& ids)>;
  using Settle = std::function<Status(Txn&, const std::string& request)>;

  // WorkflowEngine::submit_all, with `record` run inside the same transaction with the new ids
  // (in batch order), so the caller's rows that name the workflows commit with them; its error
  // records nothing.
  static Result<std::vector<std::string>> submit_all(WorkflowEngine& engine,
                                                     std::vector<WorkflowEngine::Submission> batch,
                                                     const Record& record);

  // WorkflowEngine::register_type, with `settle` run instead of any undo when a workflow of the
  // type is cancelled while PENDING: inside the cancel's transaction, with the workflow's
  // request, to settle the rows its submitter recorded for it (an error aborts the cancel).
  static Status register_type(WorkflowEngine& engine, WorkflowType type, Settle settle);
};

}  // namespace dmscore::detail
