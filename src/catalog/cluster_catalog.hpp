#pragma once
// The clusters table: the attached clusters, what they last reported and their connection
// status. Only this catalog names it in SQL; every function works inside the caller's
// transaction. (The registry writes through its StoreCache, which keeps list_clusters() warm.)

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/backend.hpp"
#include "dmscore/cluster.hpp"
#include "dmscore/result.hpp"
#include "dmscore/store.hpp"

namespace dmscore::detail {

class ClusterCatalog {
 public:
  // Where a cluster is and how it was last seen, in attach order.
  struct Entry {
    std::string id;
    std::string name;
    ClusterKind kind = ClusterKind::kLocal;
    std::string api_endpoint;
    ConnectionStatus access_status = ConnectionStatus::kDisconnected;
    std::string status_message;
  };

  // Every attached cluster, in attach order.
  static Result<std::vector<Cluster>> list(Txn& t);
  static Result<std::optional<Cluster>> find(Txn& t, const std::string& id);
  static Result<std::vector<Entry>> entries(Txn& t);
  // How many clusters are attached.
  static Result<std::int64_t> count(Txn& t);
  // The cluster attached under id `id` or at `endpoint` (either may be empty); "" when none.
  static Result<std::string> attached_as(Txn& t, const std::string& id,
                                         const std::string& endpoint);
  // The API endpoints cluster `id` reported ([] when none or no such cluster).
  static Result<std::vector<std::string>> reported_endpoints(Txn& t, const std::string& id);

  // Records a newly attached cluster, Connected. ALREADY_EXISTS when its id is attached (OK with
  // `adopt` when it is attached at `endpoint` already: a resumed attach).
  static Status insert(Txn& t, const ClusterInfo& info, ClusterKind kind,
                       const std::string& endpoint, bool adopt, std::int64_t now_ms);
  // What the cluster reported on a refresh; it is Connected again.
  static Status update_info(Txn& t, const std::string& id, const ClusterInfo& info,
                            std::int64_t now_ms);
  static Status set_status(Txn& t, const std::string& id, ConnectionStatus status,
                           const std::string& message);
  static Status remove(Txn& t, const std::string& id);
};

}  // namespace dmscore::detail
