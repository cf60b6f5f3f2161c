#pragma once
// CopySets: a consistency group's full copies (full_copy.hpp), handed out by
// Service::copy_sets(). Safe for concurrent use.

#include "dmscore/full_copy.hpp"
#include "dmscore/ids.hpp"
#include "dmscore/result.hpp"
#include "dmscore/service_part.hpp"

namespace dmscore {

class CopySets : public detail::ServicePart {
 public:
  using ServicePart::ServicePart;

  // INVALID_ARGUMENT naming the field; NOT_FOUND for an unknown group or cluster;
  // FAILED_PRECONDITION unless the group and its members are available; ALREADY_EXISTS for a
  // taken set name or copy volume name; RESOURCE_EXHAUSTED (nothing recorded) when the `count`
  // workflows do not all fit under maxRunningWorkflows. Answers the copy set and one workflow
  // per copy (CREATE_FULL_COPY).
  Result<CopySetWork> create(const CreateFullCopiesRequest& request);
  // NOT_FOUND for an unknown group.
  Result<CopySetPage> list(const GroupId& group, const PageRequest& page) const;
  // NOT_FOUND for an unknown group or copy set.
  Result<CopySet> get(const CopySetRef& set) const;
  // activate, resynchronize (one workflow per copy, sharing one new group snapshot), restore
  // (one workflow; FAILED_PRECONDITION while any workflow uses the group or its volumes) and
  // detach (at once, no workflow). FAILED_PRECONDITION naming the copy in the wrong state.
  Result<CopySetWork> act(const CopySetRef& set, const CopySetActionRequest& request);
};

}  // namespace dmscore
