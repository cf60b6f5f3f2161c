#include "dmscore/cluster.hpp"

#include <catch2/catch.hpp>

using namespace dmscore;

TEST_CASE("Cluster: file:// endpoints resolve to a normalised absolute directory") {
  auto d = local_cluster_dir("file:///srv/site-a/");
  REQUIRE(d.ok());
  REQUIRE(d->has_value());
  CHECK(**d == "/srv/site-a");
  CHECK(**local_cluster_dir("file:///srv//x/./y") == "/srv/x/y");
}

TEST_CASE("Cluster: other endpoints are not local") {
  auto d = local_cluster_dir("10.0.0.1:443");
  REQUIRE(d.ok());
  CHECK_FALSE(d->has_value());
  CHECK_FALSE(local_cluster_dir("https://lb.example:443")->has_value());
}

TEST_CASE("Cluster: malformed endpoints are INVALID_ARGUMENT naming apiEndpoint") {
  for (std::string bad : {std::string(), std::string("file://rel/dir"), std::string("file://"),
                          std::string("file:///a/../etc"), std::string("file:///a\x01"),
                          std::string("file:///") + std::string(5000, 'a')}) {
    auto d = local_cluster_dir(bad);
    CHECK(d.status().code() == Code::kInvalidArgument);
    CHECK(d.status().message().rfind("apiEndpoint:", 0) == 0);
  }
}

TEST_CASE("Cluster: statuses and kinds print as the contract spells them") {
  CHECK(to_string(ConnectionStatus::kConnected) == "Connected");
  CHECK(to_string(ConnectionStatus::kDisconnected) == "Disconnected");
  CHECK(to_string(ConnectionStatus::kUnauthorized) == "Unauthorized");
  CHECK(to_string(ClusterKind::kLocal) == "local");
  CHECK(to_string(ClusterKind::kLightbits) == "lightbits");
}
