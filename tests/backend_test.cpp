#include "dmscore/backend.hpp"

#include <catch2/catch.hpp>

#include "dmscore/dmscore.hpp"  // the umbrella header compiles on its own

using namespace dmscore;

TEST_CASE("Backend: object names follow the Lightbits rules") {
  CHECK(validate_object_name("vol-1.data_A", "name").ok());
  CHECK(validate_object_name(std::string(256, 'a'), "name").ok());
  for (std::string bad : {std::string(), std::string(257, 'a'), std::string("a b"),
                          std::string("a/b"), std::string("..\\x"), std::string("caf\xc3\xa9"),
                          std::string("a\0b", 3), std::string("$(rm)")}) {
    Status s = validate_object_name(bad, "dst.name");
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(s.message() == "dst.name: must be 1-256 characters of [A-Za-z0-9._-]");
  }
}

TEST_CASE("Backend: states print as the contract spells them") {
  CHECK(to_string(VolumeState::kCreating) == "Creating");
  CHECK(to_string(VolumeState::kAvailable) == "Available");
  CHECK(to_string(VolumeState::kUpdating) == "Updating");
  CHECK(to_string(VolumeState::kDeleting) == "Deleting");
  CHECK(to_string(VolumeState::kFailed) == "Failed");
  CHECK(to_string(SnapshotState::kAvailable) == "Available");
  CHECK(to_string(SnapshotState::kFailed) == "Failed");
}
