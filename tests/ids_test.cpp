#include "dmscore/ids.hpp"

#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <type_traits>

#include "dmscore/service.hpp"

using namespace dmscore;

// What the strong types are for: none of these mistakes compiles.
static_assert(!std::is_convertible_v<std::string, ClusterId>, "ids are constructed explicitly");
static_assert(!std::is_convertible_v<ClusterId, std::string>, "ids are read with str()");
static_assert(!std::is_convertible_v<ClusterId, GroupId>, "a cluster id is not a group id");
static_assert(!std::is_constructible_v<GroupId, ClusterId>, "nor can it be made one");
static_assert(!std::is_convertible_v<WorkflowId, CgSnapshotId>);
static_assert(!std::is_constructible_v<CopySetRef, CopySetId, GroupId>,
              "a copy set is named group first, then set");
static_assert(!std::is_invocable_v<decltype(&Clusters::get), Clusters&, GroupId>,
              "Clusters::get takes a ClusterId");
static_assert(!std::is_invocable_v<decltype(&Workflows::get), Workflows&, std::string>,
              "Workflows::get takes a WorkflowId");
static_assert(!std::is_invocable_v<decltype(&Volumes::get), Volumes&, SnapshotRef>,
              "a snapshot is not a volume");

TEST_CASE("Ids: an id keeps its string and compares by it") {
  ClusterId a("5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e"), b("5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e");
  CHECK(a.str() == "5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e");
  CHECK(a == b);
  CHECK_FALSE(a.empty());
  CHECK(ClusterId().empty());
  CHECK(ClusterId("a") < ClusterId("b"));
  std::set<WorkflowId> ids{WorkflowId("b"), WorkflowId("a"), WorkflowId("a")};
  CHECK(ids.size() == 2);
  CHECK(ids.begin()->str() == "a");
}

TEST_CASE("Ids: an object on a cluster is named by one value") {
  VolumeRef v{ClusterId("c"), "p", "v1"};
  CHECK(v.cluster.str() == "c");
  CHECK(v.project == "p");
  CHECK(v.id == "v1");
  CopySetRef s{GroupId("g"), CopySetId("s")};
  CHECK(s.group.str() == "g");
  CHECK(s.id.str() == "s");
}
