#pragma once
// Clusters: the storage systems the service copies between, as the registry records them.
//
// A cluster is attached by endpoint: `file:///absolute/dir` selects a local cluster (the
// embedded default), anything else a Lightbits cluster. Attaching, refreshing and detaching are
// done through Service; these are the values it hands out.

#include <optional>
#include <string>
#include <vector>

#include "dmscore/backend.hpp"
#include "dmscore/env.hpp"

namespace dmscore {

// NeedsRepair: a local cluster whose metadata does not explain its data (lost, empty or older
// than its files); nothing is written to it until an operator repairs it.
enum class ConnectionStatus { kConnected, kDisconnected, kUnauthorized, kNeedsRepair };
// "Connected", "Disconnected", "Unauthorized", "NeedsRepair".
std::string_view to_string(ConnectionStatus status);

enum class ClusterKind { kLocal, kLightbits };
// "local", "lightbits".
std::string_view to_string(ClusterKind kind);

struct Cluster {
  std::string id;
  std::string name;
  std::string version;
  std::string subsystem_nqn;
  std::vector<std::string> api_endpoints;
  std::vector<std::string> discovery_endpoints;
  ConnectionStatus access_status = ConnectionStatus::kConnected;
  ConnectionStatus data_status = ConnectionStatus::kConnected;
  // Why the cluster is not Connected, when the service knows; empty otherwise.
  std::string status_message;
  ClusterKind kind = ClusterKind::kLocal;
  Env::SystemTime attached_at;
  std::optional<Env::SystemTime> refreshed_at;
  std::vector<ClusterServer> servers;
};

struct AttachClusterRequest {
  // `file:///absolute/dir`, `host:port` or `https://host:port`. REQUIRES: not empty.
  std::string api_endpoint;
  // For a local cluster created by the attach: its name. Default: the directory's name.
  std::string name;
};

// Parses a `file://` endpoint into its absolute directory; INVALID_ARGUMENT naming
// `apiEndpoint` for anything malformed (relative path, `..`, NUL bytes, over 4096 bytes).
// NOT_FOUND-free: std::nullopt when the endpoint is not a file:// one.
Result<std::optional<std::string>> local_cluster_dir(const std::string& api_endpoint);

}  // namespace dmscore
