#pragma once
// Strong id types for the public API. A cluster's id cannot be passed where a group's is
// expected, and an object on a cluster is named by one value (cluster, project, id) instead of
// a run of strings that a caller could pass in the wrong order.
//
// Each id is the string the REST contract shows (a UUID for the service's own objects; a
// cluster's volume and snapshot ids are the cluster's). Construction is explicit; `str()` gives
// the string back.

#include <compare>
#include <string>
#include <utility>

namespace dmscore {

template <class Tag>
class Id {
 public:
  Id() = default;
  explicit Id(std::string value) : value_(std::move(value)) {}
  const std::string& str() const { return value_; }
  bool empty() const { return value_.empty(); }
  friend bool operator==(const Id&, const Id&) = default;
  friend auto operator<=>(const Id&, const Id&) = default;

 private:
  std::string value_;
};

using ClusterId = Id<struct ClusterIdTag>;
using WorkflowId = Id<struct WorkflowIdTag>;
using GroupId = Id<struct GroupIdTag>;
using CgSnapshotId = Id<struct CgSnapshotIdTag>;
using CopySetId = Id<struct CopySetIdTag>;

// A project on a cluster.
struct ProjectRef {
  ClusterId cluster;
  std::string project;
};

// A volume on a cluster.
struct VolumeRef {
  ClusterId cluster;
  std::string project;
  std::string id;
};

// A snapshot on a cluster.
struct SnapshotRef {
  ClusterId cluster;
  std::string project;
  std::string id;
};

// A copy set of a consistency group.
struct CopySetRef {
  GroupId group;
  CopySetId id;
};

}  // namespace dmscore
