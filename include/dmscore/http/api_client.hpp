#pragma once
// ApiClient: the service's REST contract (docs/api-v1.md) from the calling side, over Client.
//
// Each call answers the JSON body of a 2xx answer as text, exactly as the service sent it, so
// callers that print it (dmsctl -o json) keep the contract's keys. A non-2xx answer becomes the
// Status in its error body (code and message); `retry_after` then holds Retry-After, if any.
// Path parameters are percent-encoded here. Callers that need a field of an answer rather than
// its text read it through the typed answers below, which keep the body too.
//
// Not thread-safe (one Client underneath).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/http/client.hpp"
#include "dmscore/result.hpp"

namespace dmscore::http {

struct WorkflowFilter {
  int page_size = 0;  // 0: the service's default
  std::string page_token;
  std::string state;  // PENDING, RUNNING, ...
  std::string type;   // THICK_CLONE_VOLUME, ...
};

struct PageRequest {
  int page_size = 0;
  std::string page_token;
};

// Typed answers. Each `parse` takes the body of a 2xx answer, keeps it as sent in `body` (to
// print it with the contract's keys) and reads the fields callers act on; a body that is not
// JSON, or lacks a field, is INTERNAL naming what is missing.

// Any answer that started a workflow: {"workflowId", ...} (attach, refresh and repair clusters,
// thick clones, group snapshots, group thick clones).
struct StartedWorkflow {
  std::string body;
  std::string workflow_id;
  static Result<StartedWorkflow> parse(std::string body);
};

// The answer of login(): {"idToken", "tokenType", "expiresIn"}.
struct LoginAnswer {
  std::string body;
  std::string id_token;
  static Result<LoginAnswer> parse(std::string body);
};

// The answer of service_credentials(): {"pubKeyId", "pubKey"}.
struct ServiceCredentialsAnswer {
  std::string body;
  std::string pub_key_id;
  std::string pub_key;  // base64 of the PEM public key, as sent
  // The PEM public key (`pub_key` decoded); nullopt when `pub_key` is not base64.
  std::optional<std::string> pem() const;
  static Result<ServiceCredentialsAnswer> parse(std::string body);
};

// The answer of create_consistency_group(): {"consistencyGroup": {"id", "workflowId", ...}}.
// `workflow_id` is the workflow making the group's volumes (from a group snapshot), else empty.
struct ConsistencyGroupAnswer {
  std::string body;
  std::string group_id;
  std::string workflow_id;
  static Result<ConsistencyGroupAnswer> parse(std::string body);
};

// The answer of create_full_copies() and copy_set_action():
// {"copySet": {"id", ...}, "workflows": [{"copy", "workflowId"}, ...]}.
struct CopySetWorkAnswer {
  struct Copy {
    std::int64_t index = 0;  // 1-8
    std::string workflow_id;
  };
  std::string body;
  std::string copy_set_id;
  std::vector<Copy> workflows;  // one per copy the call started work for; may be empty
  static Result<CopySetWorkAnswer> parse(std::string body);
};

class ApiClient {
 public:
  // `token` is sent as a Bearer token when not empty.
  static Result<std::unique_ptr<ApiClient>> create(ClientOptions options, std::string token = {});
  ~ApiClient();

  void set_token(std::string token);

  // Any route: answers the body of a 2xx.
  Result<std::string> call(std::string_view method, std::string_view target,
                           std::string_view body = {});
  // Seconds from the Retry-After of the last error answer; nullopt when it had none.
  std::optional<int> retry_after() const;

  Result<std::string> login(const std::string& username, const std::string& password);
  Result<std::string> logout();
  Result<std::string> service_credentials();

  Result<std::string> list_clusters();
  Result<std::string> get_cluster(const std::string& cluster_id);
  Result<std::string> attach_cluster(const std::string& api_endpoint, const std::string& name);
  // All clusters when `cluster_id` is empty.
  Result<std::string> refresh_clusters(const std::string& cluster_id);
  Result<std::string> repair_cluster(const std::string& cluster_id);
  Result<std::string> detach_cluster(const std::string& cluster_id);

  Result<std::string> list_volumes(const std::string& cluster_id, const std::string& project,
                                   const PageRequest& page);
  Result<std::string> get_volume(const std::string& cluster_id, const std::string& project,
                                 const std::string& volume_id);
  // `body_json`: {"name", "size", ...} as the contract says.
  Result<std::string> create_volume(const std::string& cluster_id, const std::string& project,
                                    const std::string& body_json);
  Result<std::string> delete_volume(const std::string& cluster_id, const std::string& project,
                                    const std::string& volume_id);

  Result<std::string> list_snapshots(const std::string& cluster_id, const std::string& project,
                                     const PageRequest& page);
  Result<std::string> get_snapshot(const std::string& cluster_id, const std::string& project,
                                   const std::string& snapshot_id);
  Result<std::string> create_snapshot(const std::string& cluster_id, const std::string& project,
                                      const std::string& body_json);
  Result<std::string> delete_snapshot(const std::string& cluster_id, const std::string& project,
                                      const std::string& snapshot_id);

  // `body_json`: the thick clone request {"src": ..., "dst": ..., "verifyClone"}.
  // Manageable volumes (GET .../manageable-volumes[/detail] with Cinder's query parameters, as
  // given: sort, sort_key, sort_dir, marker, limit, offset); manage (the body
  // {"ref", "projectName", "name"}) and unmanage.
  Result<std::string> list_manageable_volumes(
      const std::string& cluster_id, bool detail,
      const std::vector<std::pair<std::string, std::string>>& query);
  Result<std::string> manage_volume(const std::string& cluster_id, const std::string& body_json);
  Result<std::string> unmanage_volume(const std::string& cluster_id, const std::string& project,
                                      const std::string& id);
  // The same for snapshots (the manage body also has "volumeId").
  Result<std::string> list_manageable_snapshots(
      const std::string& cluster_id, bool detail,
      const std::vector<std::pair<std::string, std::string>>& query);
  Result<std::string> manage_snapshot(const std::string& cluster_id, const std::string& body_json);
  Result<std::string> unmanage_snapshot(const std::string& cluster_id, const std::string& project,
                                        const std::string& id);

  Result<std::string> thick_clone_volume(const std::string& body_json);
  Result<std::string> thick_clone_snapshot(const std::string& body_json);

  // Consistency groups and group snapshots. `body_json` as the contract says.
  Result<std::string> list_consistency_groups(const PageRequest& page);
  Result<std::string> get_consistency_group(const std::string& group_id);
  Result<std::string> create_consistency_group(const std::string& body_json);
  Result<std::string> update_consistency_group(const std::string& group_id,
                                               const std::string& body_json);
  Result<std::string> delete_consistency_group(const std::string& group_id);
  // {"resetStatus": {"status"}} or {"forceDelete": {}}.
  Result<std::string> consistency_group_action(const std::string& group_id,
                                               const std::string& body_json);
  // Every group's when `group_id` is empty.
  Result<std::string> list_cg_snapshots(const PageRequest& page, const std::string& group_id);
  Result<std::string> get_cg_snapshot(const std::string& cg_snapshot_id);
  Result<std::string> list_cg_snapshot_members(const std::string& cg_snapshot_id);
  Result<std::string> create_cg_snapshot(const std::string& body_json);
  Result<std::string> delete_cg_snapshot(const std::string& cg_snapshot_id);

  // Full copies of a group (copy sets) and group thick clones.
  Result<std::string> create_full_copies(const std::string& group_id, const std::string& body_json);
  Result<std::string> list_copy_sets(const std::string& group_id, const PageRequest& page);
  Result<std::string> get_copy_set(const std::string& group_id, const std::string& copy_set_id);
  // {"activate"|"detach"|"resynchronize": {"copies"}} or {"restore": {"confirm", "copies"}}.
  Result<std::string> copy_set_action(const std::string& group_id, const std::string& copy_set_id,
                                      const std::string& body_json);
  // {"src": {"cgSnapshotId"}, "dst": {"name", "clusterId", "projectName"}, "verifyClone"}.
  Result<std::string> thick_clone_consistency_group(const std::string& body_json);

  Result<std::string> list_workflows(const WorkflowFilter& filter);
  // {"instances": [...], "self": id}: the instances sharing the service's store.
  Result<std::string> list_instances();
  Result<std::string> get_workflow(const std::string& workflow_id);
  Result<std::string> cancel_workflow(const std::string& workflow_id);

  // Polls the workflow every `interval` until it is terminal and answers its last
  // {"workflow": ...} body. `on_update` sees every body read (the workflow as JSON text) and
  // may return false to stop waiting: that answers CANCELLED ("wait interrupted"), the workflow
  // itself is left alone. DEADLINE_EXCEEDED when `timeout` (if non-zero) passes first.
  // Transient UNAVAILABLE answers are retried within the timeout.
  Result<std::string> wait_workflow(const std::string& workflow_id,
                                    std::chrono::milliseconds timeout,
                                    std::chrono::milliseconds interval,
                                    const std::function<bool(const std::string&)>& on_update);

 private:
  struct Impl;
  explicit ApiClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Percent-encodes `s` for use as one path segment or query value.
std::string url_encode(std::string_view s);

}  // namespace dmscore::http
