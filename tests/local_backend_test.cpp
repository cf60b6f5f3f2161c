#include "dmscore/local_backend.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "copy/file_io.hpp"
#include "crash_harness.hpp"
#include "test_support.hpp"

using namespace dmscore;
using dmscore::testing::open_local_cluster;
using dmscore::testing::TempDir;
using dmscore::testing::write_at;
namespace fs = std::filesystem;

namespace {

std::string read_all(BlockSource& src) {
  std::string out(src.size(), '\0');
  REQUIRE(src.read_at(0, out.data(), out.size()).ok());
  return out;
}

Volume make_volume(LocalBackend& b, const std::string& name, std::uint64_t size = 1 << 20) {
  CreateVolumeRequest r;
  r.project_name = "p1";
  r.name = name;
  r.size = size;
  auto v = b.create_volume(r);
  INFO(v.status().to_string());
  REQUIRE(v.ok());
  return *v;
}

}  // namespace

TEST_CASE("LocalBackend: a new directory becomes a cluster with a stable identity") {
  TempDir tmp;
  std::string id;
  {
    auto b = open_local_cluster(tmp / "c1", "alpha");
    id = b->cluster_id();
    auto info = b->info();
    REQUIRE(info.ok());
    CHECK(info->name == "alpha");
    CHECK(info->api_endpoints == std::vector<std::string>{"file://" + (tmp / "c1")});
    CHECK(info->servers.size() == 1);
  }
  auto b = open_local_cluster(tmp / "c1");
  CHECK(b->cluster_id() == id);
  CHECK(LocalBackend::is_cluster_dir(tmp / "c1"));
}

TEST_CASE("LocalBackend: a non-empty directory that is not a cluster is refused untouched") {
  TempDir tmp;
  fs::create_directories(tmp / "d");
  dmscore::testing::write_file(tmp / "d/precious.txt", "keep me");
  auto b = LocalBackend::open(tmp / "d");
  CHECK(b.status().code() == Code::kFailedPrecondition);
  CHECK(dmscore::testing::read_file(tmp / "d/precious.txt") == "keep me");
  CHECK_FALSE(fs::exists(tmp / "d/cluster.json"));
}

TEST_CASE("LocalBackend: relative paths and bad names are INVALID_ARGUMENT") {
  CHECK(LocalBackend::open("relative/dir").status().code() == Code::kInvalidArgument);
  TempDir tmp;
  CHECK(LocalBackend::open(tmp / "x", "bad name!").status().code() == Code::kInvalidArgument);
}

TEST_CASE("LocalBackend: a second open of the same directory is refused while the first lives") {
  TempDir tmp;
  auto a = open_local_cluster(tmp / "c");
  auto b = LocalBackend::open(tmp / "c");
  CHECK(b.status().code() == Code::kUnavailable);
  CHECK_THAT(b.status().message(), Catch::Contains("another process"));
  a.reset();
  CHECK(LocalBackend::open(tmp / "c").ok());
}

TEST_CASE("LocalBackend: volumes are created sparse, listed, found and deleted") {
  TempDir tmp;
  auto b = open_local_cluster(tmp / "c");
  Volume v = make_volume(*b, "vol-1", 8 << 20);
  CHECK(v.state == VolumeState::kAvailable);
  CHECK(fs::file_size(v.device_path) == (8u << 20));
  CHECK(*detail::allocated_bytes(v.device_path) == 0);
  CHECK(b->get_volume("p1", v.id)->name == "vol-1");
  CHECK(b->find_volume("p1", "vol-1")->id == v.id);
  CHECK(b->find_volume("p2", "vol-1").status().code() == Code::kNotFound);
  CHECK(b->list_volumes("p1", {})->volumes.size() == 1);
  REQUIRE(b->delete_volume("p1", v.id).ok());
  CHECK_FALSE(fs::exists(v.device_path));
  CHECK(b->get_volume("p1", v.id).status().code() == Code::kNotFound);
  CHECK(b->delete_volume("p1", v.id).code() == Code::kNotFound);
}

TEST_CASE(
    "LocalBackend: a name taken within a project is ALREADY_EXISTS, other projects are free") {
  TempDir tmp;
  auto b = open_local_cluster(tmp / "c");
  make_volume(*b, "same");
  CreateVolumeRequest r{"p1", "same", 1 << 20};
  CHECK(b->create_volume(r).status().code() == Code::kAlreadyExists);
  r.project_name = "p2";
  CHECK(b->create_volume(r).ok());
}

TEST_CASE("LocalBackend: bad volume requests name the field and change nothing") {
  TempDir tmp;
  auto b = open_local_cluster(tmp / "c");
  auto check = [&](CreateVolumeRequest r, const std::string& field) {
    auto v = b->create_volume(r);
    CHECK(v.status().code() == Code::kInvalidArgument);
    CHECK(v.status().message().rfind(field + ":", 0) == 0);
  };
  check({"p1", "", 4096}, "name");
  check({"p1", std::string(257, 'a'), 4096}, "name");
  check({"p1", "../etc", 4096}, "name");
  check({"p 1", "v", 4096}, "projectName");
  check({"p1", "v", 0}, "size");
  check({"p1", "v", 4095}, "size");
  check({"p1", "v", 4096, 4}, "replicaCount");
  check({"p1", "v", 4096, 1, 1024}, "sectorSize");
  CHECK(b->list_volumes("p1", {})->volumes.empty());
  CHECK(fs::is_empty(tmp / "c/data"));
}

TEST_CASE("LocalBackend: listing pages through every volume once") {
  TempDir tmp;
  auto b = open_local_cluster(tmp / "c");
  for (int i = 0; i < 7; ++i) make_volume(*b, "v" + std::to_string(i), 4096);
  PageRequest p{3, ""};
  std::vector<std::string> names;
  for (;;) {
    auto page = b->list_volumes("p1", p);
    REQUIRE(page.ok());
    for (auto& v : page->volumes) names.push_back(v.name);
    if (page->next_page_token.empty()) break;
    p.page_token = page->next_page_token;
  }
  CHECK(names == std::vector<std::string>{"v0", "v1", "v2", "v3", "v4", "v5", "v6"});
  CHECK(b->list_volumes("p1", {0, "garbage"}).status().code() == Code::kInvalidArgument);
  CHECK(b->list_volumes("p1", {1001, ""}).status().code() == Code::kInvalidArgument);
}

TEST_CASE("LocalBackend: a snapshot is an immutable point-in-time image") {
  TempDir tmp;
  auto b = open_local_cluster(tmp / "c");
  Volume v = make_volume(*b, "vol", 1 << 20);
  write_at(v.device_path, 4096, "before");
  auto sn = b->create_snapshot({"p1", "snap", v.id, "first"});
  REQUIRE(sn.ok());
  CHECK(sn->state == SnapshotState::kAvailable);
  CHECK(sn->size == v.size);
  write_at(v.device_path, 4096, "AFTER!");
  auto data = b->open_snapshot_data("p1", sn->id, {});
  REQUIRE(data.ok());
  CHECK(read_all(**data).substr(4096, 6) == "before");
  CHECK(dmscore::testing::file_mode(tmp / ("c/data/" + sn->id + ".snap")) == 0400);
  CHECK(b->create_snapshot({"p1", "snap", v.id, ""}).status().code() == Code::kAlreadyExists);
  CHECK(b->create_snapshot({"p1", "s2", "nope", ""}).status().code() == Code::kNotFound);
  CHECK(b->create_snapshot({"p1", "s3", v.id, std::string(257, 'd')}).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("LocalBackend: a thin clone holds the snapshot's data and may be larger") {
  TempDir tmp;
  auto b = open_local_cluster(tmp / "c");
  Volume v = make_volume(*b, "vol", 1 << 20);
  write_at(v.device_path, 0, "hello");
  auto sn = b->create_snapshot({"p1", "snap", v.id, ""});
  REQUIRE(sn.ok());
  CreateVolumeRequest r{"p1", "clone", 2 << 20};
  r.source_snapshot_id = sn->id;
  auto c = b->create_volume(r);
  REQUIRE(c.ok());
  CHECK(c->source_snapshot_id == sn->id);
  CHECK(c->size == (2u << 20));
  CHECK(dmscore::testing::read_file(c->device_path).substr(0, 5) == "hello");
  r.name = "small";
  r.size = 4096;
  CHECK(b->create_volume(r).status().code() == Code::kInvalidArgument);
}

TEST_CASE("LocalBackend: a held volume stays Creating until marked Available") {
  TempDir tmp;
  auto b = open_local_cluster(tmp / "c");
  CreateVolumeRequest r{"p1", "held", 1 << 20};
  r.hold_in_creating = true;
  auto v = b->create_volume(r);
  REQUIRE(v.ok());
  CHECK(v->state == VolumeState::kCreating);
  CHECK(b->create_snapshot({"p1", "s", v->id, ""}).status().code() == Code::kFailedPrecondition);
  REQUIRE(b->mark_volume_available("p1", v->id).ok());
  CHECK(b->get_volume("p1", v->id)->state == VolumeState::kAvailable);
}

TEST_CASE("LocalBackend: reopening finishes half-deleted objects and sets orphan files aside") {
  TempDir tmp;
  std::string held_id, deleting_id;
  {
    auto b = open_local_cluster(tmp / "c");
    CreateVolumeRequest r{"p1", "held", 1 << 20};
    r.hold_in_creating = true;
    held_id = b->create_volume(r)->id;
    deleting_id = make_volume(*b, "dying").id;
  }
  // As if a process died: an orphan file, and a volume stuck half-way through deletion.
  dmscore::testing::write_file(tmp / "c/data/0000-orphan.vol", "junk");
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((tmp / "c/cluster.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(
              db,
              ("UPDATE volumes SET state = 'Deleting' WHERE id = '" + deleting_id + "'").c_str(),
              nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  auto b = open_local_cluster(tmp / "c");
  CHECK_FALSE(fs::exists(tmp / "c/data/0000-orphan.vol"));
  CHECK(dmscore::testing::read_file(tmp / "c/lost+found/0000-orphan.vol") == "junk");
  CHECK(b->get_volume("p1", held_id)->state == VolumeState::kCreating);  // a workflow owns it
  CHECK(b->get_volume("p1", deleting_id).status().code() == Code::kNotFound);
  CHECK_FALSE(fs::exists(tmp / ("c/data/" + deleting_id + ".vol")));
}

TEST_CASE("LocalBackend: a held volume whose file was not sized before a crash gets its size") {
  TempDir tmp;
  std::string created, missing;
  {
    auto b = open_local_cluster(tmp / "c");
    CreateVolumeRequest r{"p1", "held-a", 1 << 20};
    r.hold_in_creating = true;
    created = b->create_volume(r)->id;
    r.name = "held-b";
    missing = b->create_volume(r)->id;
  }
  // As if the process died after creating the file but before extending it, and before
  // creating the other one at all.
  fs::resize_file(tmp / ("c/data/" + created + ".vol"), 0);
  fs::remove(tmp / ("c/data/" + missing + ".vol"));
  auto b = open_local_cluster(tmp / "c");
  for (const auto& id : {created, missing}) {
    INFO(id);
    CHECK(b->get_volume("p1", id)->state == VolumeState::kCreating);
    CHECK(fs::file_size(tmp / ("c/data/" + id + ".vol")) == (1u << 20));
    auto sink = b->open_volume_sink("p1", id, false, {});
    REQUIRE(sink.ok());
    CHECK((*sink)->size() == (1u << 20));
  }
}

TEST_CASE("LocalBackend: sinks and sources move data and refuse deleted objects") {
  TempDir tmp;
  auto b = open_local_cluster(tmp / "c");
  Volume v = make_volume(*b, "vol", 1 << 20);
  auto sink = b->open_volume_sink("p1", v.id, true, {});
  REQUIRE(sink.ok());
  CHECK((*sink)->known_zeroed());
  std::string msg = "payload";
  REQUIRE((*sink)->write_at(8192, msg.data(), msg.size()).ok());
  REQUIRE((*sink)->sync().ok());
  auto src = b->open_volume_data("p1", v.id, {});
  REQUIRE(src.ok());
  CHECK(read_all(**src).substr(8192, 7) == "payload");
  auto ext = (*src)->data_extents(0, (*src)->size());
  REQUIRE(ext.ok());
  REQUIRE(ext->size() == 1);
  CHECK((*ext)[0].offset <= 8192);
  CHECK(b->open_snapshot_data("p1", "nope", {}).status().code() == Code::kNotFound);
}
