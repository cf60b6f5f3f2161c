#include "dmscore/options.hpp"

#include <catch2/catch.hpp>

using namespace dmscore;

TEST_CASE("Options: the defaults are valid once a data directory is named") {
  Options o;
  CHECK(validate(o).message() == "data_dir: must not be empty");
  o.data_dir = "/tmp/x";
  CHECK(validate(o).ok());
  CHECK(o.max_running_workflows == 8);
}

TEST_CASE("Options: each out-of-range field is named in the error") {
  auto check = [](auto mutate, const std::string& field) {
    Options o;
    o.data_dir = "/tmp/x";
    mutate(o);
    Status s = validate(o);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(s.message().rfind(field + ":", 0) == 0);
  };
  check([](Options& o) { o.max_running_workflows = 0; }, "max_running_workflows");
  check([](Options& o) { o.max_running_workflows = 10001; }, "max_running_workflows");
  check([](Options& o) { o.workflow_threads = 0; }, "workflow_threads");
  check([](Options& o) { o.copy_threads = 65; }, "copy_threads");
  check([](Options& o) { o.copy_chunk_bytes = 4097; }, "copy_chunk_bytes");
  check([](Options& o) { o.copy_chunk_bytes = 4096; }, "copy_chunk_bytes");
  check([](Options& o) { o.progress_persist_interval = std::chrono::milliseconds(-1); },
        "progress_persist_interval");
  check([](Options& o) { o.copy_checkpoint_interval = std::chrono::milliseconds(-1); },
        "copy_checkpoint_interval");
  check([](Options& o) { o.copy_checkpoint_interval = std::chrono::hours(2); },
        "copy_checkpoint_interval");
  check([](Options& o) { o.max_clusters = 0; }, "max_clusters");
  check([](Options& o) { o.max_clusters = 4097; }, "max_clusters");
  check([](Options& o) { o.local_cluster_roots = {"relative/dir"}; }, "local_cluster_roots");
  check([](Options& o) { o.local_cluster_roots = {""}; }, "local_cluster_roots");
  check([](Options& o) { o.group_snapshot_fence_timeout = std::chrono::milliseconds(0); },
        "group_snapshot_fence_timeout");
  check([](Options& o) { o.group_snapshot_fence_timeout = std::chrono::hours(1); },
        "group_snapshot_fence_timeout");
  check([](Options& o) { o.group_snapshot_hook_timeout = std::chrono::milliseconds(0); },
        "group_snapshot_hook_timeout");
  check([](Options& o) { o.group_snapshot_pre_hook = "freeze.sh"; }, "group_snapshot_pre_hook");
  check([](Options& o) { o.group_snapshot_post_hook = "thaw.sh"; }, "group_snapshot_post_hook");
}
