#pragma once
// The service's group full copies (copy sets) and thick clones of group snapshots into new
// groups (see full_copy.hpp). The Service owns one; it reaches groups through Groups and the
// rest of the service through Deps.

#include <atomic>
#include <memory>
#include <string>

#include "dmscore/backend.hpp"
#include "dmscore/full_copy.hpp"
#include "dmscore/group.hpp"
#include "dmscore/options.hpp"
#include "dmscore/store.hpp"
#include "dmscore/workflow.hpp"
#include "service/groups.hpp"

namespace dmscore::detail {

class FullCopies {
 public:
  // The groups' dependencies (auth and links unused) and the groups themselves.
  struct Deps : Groups::Deps {
    Groups* groups = nullptr;
    // The service's counters: data bytes written into destinations, bytes compared.
    std::atomic<std::uint64_t>* copy_bytes = nullptr;
    std::atomic<std::uint64_t>* verify_bytes = nullptr;
  };

  explicit FullCopies(Deps deps);
  ~FullCopies();

  // Before the engine starts: the copy workflows, RESTORE_FULL_COPY and
  // THICK_CLONE_CONSISTENCY_GROUP. Fails when the engine refuses a type.
  Status register_workflows();
  // After the engine started: group snapshots taken for copies that no copy refers to go
  // (see workflow_cancelled).
  Status recover();
  // After a workflow was cancelled: its copy's rows were settled with the cancel
  // (WorkflowType::cancelled_before_start); a group snapshot only it would have used goes.
  Status workflow_cancelled();

  Result<CopySetWork> create(const CreateFullCopiesRequest& request);
  Result<CopySetPage> list(const std::string& group_id, const PageRequest& page) const;
  Result<CopySet> get(const std::string& group_id, const std::string& id) const;
  Result<CopySetWork> act(const std::string& group_id, const std::string& id,
                          const CopySetActionRequest& request);
  Result<ConsistencyGroup> thick_clone_group(const ThickCloneGroupRequest& request);

  // The state this module's files share (service/full_copies_impl.hpp).
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmscore::detail
