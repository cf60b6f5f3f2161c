// A local cluster never deletes data it cannot prove it made: lost or older metadata makes the
// cluster wait for a repair that rebuilds it from the data files and their sidecars, and files
// nothing explains are moved to lost+found/.

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <random>

#include "dmscore/local_backend.hpp"
#include "test_support.hpp"

using namespace dmscore;
using dmscore::testing::open_local_cluster;
using dmscore::testing::read_file;
using dmscore::testing::remove_cluster_db;
using dmscore::testing::TempDir;
using dmscore::testing::write_at;
using dmscore::testing::write_file;
namespace fs = std::filesystem;

namespace {

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// The content of every file under `dir/data`, by name: what "nothing was written" compares.
std::map<std::string, std::string> data_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::directory_iterator(dir + "/data"))
    out[e.path().filename().string()] = read_file(e.path().string());
  return out;
}

struct Made {
  std::vector<Volume> volumes;
  std::vector<Snapshot> snapshots;
  std::map<std::string, std::string> bytes;  // data file name -> content
};

// Two volumes with data, a snapshot of each, a thin clone of one snapshot.
Made populate(LocalBackend& b, const std::string& dir) {
  Made m;
  for (int i = 0; i < 2; ++i) {
    auto v = b.create_volume({"p1", "vol" + std::to_string(i), 1 << 20});
    REQUIRE(v.ok());
    write_at(v->device_path, 4096 * static_cast<unsigned>(i + 1), random_bytes(8192, i + 1));
    m.volumes.push_back(*v);
    auto sn = b.create_snapshot({"p1", "snap" + std::to_string(i), v->id, "nightly"});
    REQUIRE(sn.ok());
    m.snapshots.push_back(*sn);
  }
  CreateVolumeRequest thin{"p1", "thin", 0};
  thin.source_snapshot_id = m.snapshots[0].id;
  auto t = b.create_volume(thin);
  REQUIRE(t.ok());
  m.volumes.push_back(*t);
  for (const auto& v : m.volumes) m.bytes[v.id + ".vol"] = read_file(dir + "/data/" + v.id + ".vol");
  for (const auto& s : m.snapshots)
    m.bytes[s.id + ".snap"] = read_file(dir + "/data/" + s.id + ".snap");
  return m;
}

void check_all_back(LocalBackend& b, const std::string& dir, const Made& m) {
  for (const auto& v : m.volumes) {
    auto got = b.get_volume("p1", v.id);
    INFO(v.name);
    REQUIRE(got.ok());
    CHECK(got->name == v.name);
    CHECK(got->size == v.size);
    CHECK(got->state == VolumeState::kAvailable);
    CHECK(got->source_snapshot_id == v.source_snapshot_id);
  }
  for (const auto& s : m.snapshots) {
    auto got = b.get_snapshot("p1", s.id);
    INFO(s.name);
    REQUIRE(got.ok());
    CHECK(got->name == s.name);
    CHECK(got->source_volume_id == s.source_volume_id);
    CHECK(got->description == "nightly");
    CHECK(got->state == SnapshotState::kAvailable);
  }
  for (const auto& [file, content] : m.bytes) CHECK(read_file(dir + "/data/" + file) == content);
}

}  // namespace

TEST_CASE("Local repair: a deleted cluster.db loses nothing, repair brings every object back") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  Made made;
  std::string id;
  {
    auto b = open_local_cluster(dir);
    id = b->cluster_id();
    made = populate(*b, dir);
  }
  remove_cluster_db(dir);
  const auto before = data_files(dir);

  auto b = open_local_cluster(dir);
  REQUIRE(b->repair_needed().code() == Code::kFailedPrecondition);
  CHECK_THAT(b->repair_needed().message(), Catch::Contains("cluster.db is missing"));
  // Nothing but identity answers, and nothing was written.
  auto denied = b->get_volume("p1", made.volumes[0].id);
  CHECK(denied.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(denied.status().message(), Catch::Contains("dmsctl repair cluster " + id));
  CHECK(b->create_volume({"p1", "new", 1 << 20}).status().code() == Code::kFailedPrecondition);
  CHECK(b->info().ok());
  CHECK(data_files(dir) == before);
  CHECK_FALSE(fs::exists(dir + "/cluster.db"));

  auto report = b->repair();
  INFO(report.status().to_string());
  REQUIRE(report.ok());
  CHECK(report->volumes == 3);
  CHECK(report->snapshots == 2);
  CHECK(report->set_aside.empty());
  CHECK(report->previous_metadata.empty());
  CHECK(b->repair_needed().ok());
  check_all_back(*b, dir, made);
  // Usable again, and the rebuilt metadata survives a reopen.
  REQUIRE(b->create_volume({"p1", "after", 1 << 20}).ok());
  b.reset();
  auto again = open_local_cluster(dir);
  CHECK(again->repair_needed().ok());
  check_all_back(*again, dir, made);
  CHECK(again->find_volume("p1", "after").ok());
}

TEST_CASE("Local repair: a cluster.db restored from an older copy needs repair, then knows all") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  std::string gone_id;
  Made made;
  {
    auto b = open_local_cluster(dir);
    made = populate(*b, dir);
    auto doomed = b->create_volume({"p1", "doomed", 1 << 20});
    REQUIRE(doomed.ok());
    gone_id = doomed->id;
  }
  fs::copy_file(dir + "/cluster.db", tmp / "old.db");  // the backup (WAL checkpointed on close)
  Volume newer;
  {
    auto b = open_local_cluster(dir);
    REQUIRE(b->delete_volume("p1", gone_id).ok());
    auto v = b->create_volume({"p1", "newer", 1 << 20});
    REQUIRE(v.ok());
    write_at(v->device_path, 0, "made after the backup");
    newer = *v;
  }
  remove_cluster_db(dir);
  fs::copy_file(tmp / "old.db", dir + "/cluster.db");
  const auto before = data_files(dir);

  auto b = open_local_cluster(dir);
  REQUIRE_FALSE(b->repair_needed().ok());
  CHECK_THAT(b->repair_needed().message(), Catch::Contains("does not name"));
  CHECK_THAT(b->repair_needed().message(), Catch::Contains("missing"));
  CHECK(data_files(dir) == before);  // the newer volume was not touched

  auto report = b->repair();
  REQUIRE(report.ok());
  CHECK(report->volumes == 4);
  REQUIRE(report->missing.size() == 1);
  CHECK_THAT(report->missing[0], Catch::Contains(gone_id));
  // The replaced metadata is kept, not deleted.
  REQUIRE_FALSE(report->previous_metadata.empty());
  CHECK(fs::exists(dir + "/" + report->previous_metadata));
  check_all_back(*b, dir, made);
  auto v = b->find_volume("p1", "newer");
  REQUIRE(v.ok());
  CHECK(read_file(v->device_path).substr(0, 21) == "made after the backup");
}

TEST_CASE("Local repair: an emptied cluster.db is not taken as the truth") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  Made made;
  {
    auto b = open_local_cluster(dir);
    made = populate(*b, dir);
  }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir + "/cluster.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "DELETE FROM volumes; DELETE FROM snapshots;", nullptr, nullptr,
                       nullptr) == SQLITE_OK);
  sqlite3_close(db);
  const auto before = data_files(dir);
  auto b = open_local_cluster(dir);
  REQUIRE_FALSE(b->repair_needed().ok());
  CHECK(data_files(dir) == before);
  REQUIRE(b->repair().ok());
  check_all_back(*b, dir, made);
}

TEST_CASE("Local repair: an unreadable cluster.db is kept aside and rebuilt") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  Made made;
  {
    auto b = open_local_cluster(dir);
    made = populate(*b, dir);
  }
  remove_cluster_db(dir);
  write_file(dir + "/cluster.db", "this is not an SQLite database, but somebody's notes");
  auto b = open_local_cluster(dir);
  REQUIRE_FALSE(b->repair_needed().ok());
  CHECK_THAT(b->repair_needed().message(), Catch::Contains("cannot be read"));
  auto report = b->repair();
  REQUIRE(report.ok());
  CHECK(read_file(dir + "/" + report->previous_metadata) ==
        "this is not an SQLite database, but somebody's notes");
  check_all_back(*b, dir, made);
}

TEST_CASE("Local repair: files nothing explains go to lost+found, whole, and are counted") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  std::vector<std::string> lines;
  LocalBackendOptions o;
  o.log = [&](std::string_view l) { lines.emplace_back(l); };
  std::string vid;
  {
    auto b = open_local_cluster(dir);
    vid = b->create_volume({"p1", "kept", 1 << 20})->id;
  }
  write_file(dir + "/data/notes.txt", "an operator's notes");
  // A temporary file no intent names: incomplete by definition, still not ours to delete.
  write_file(dir + "/data/0b7ae1f4-5d40-4c5e-9d5f-1c2b3a4d5e6f.vol.tmp", "half");
  fs::create_directories(dir + "/data/somebodys-dir");
  write_file(dir + "/data/somebodys-dir/file", "inside");

  auto b = open_local_cluster(dir, "", o);
  CHECK(b->repair_needed().ok());
  CHECK(b->set_aside_count() == 2);
  CHECK(read_file(dir + "/lost+found/notes.txt") == "an operator's notes");
  CHECK(read_file(dir + "/lost+found/0b7ae1f4-5d40-4c5e-9d5f-1c2b3a4d5e6f.vol.tmp") == "half");
  CHECK_FALSE(fs::exists(dir + "/data/notes.txt"));
  // A directory is left where it is, untouched.
  CHECK(read_file(dir + "/data/somebodys-dir/file") == "inside");
  CHECK(b->get_volume("p1", vid).ok());
  int said = 0;
  for (const auto& l : lines) said += l.find("lost+found") != std::string::npos;
  CHECK(said == 2);
  // A second file of the same name does not replace the first.
  b.reset();
  write_file(dir + "/data/notes.txt", "newer notes");
  b = open_local_cluster(dir);
  CHECK(read_file(dir + "/lost+found/notes.txt") == "an operator's notes");
  CHECK(read_file(dir + "/lost+found/notes.txt.1") == "newer notes");
}

TEST_CASE("Local repair: data files without a sidecar of this cluster are set aside by repair") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  Made made;
  std::string foreign;
  {
    auto b = open_local_cluster(dir);
    made = populate(*b, dir);
    auto other = open_local_cluster(tmp / "other");
    auto v = other->create_volume({"p1", "foreign", 1 << 20});
    REQUIRE(v.ok());
    foreign = v->id;
  }
  // A volume (with its sidecar) copied in from another cluster, and one without any sidecar.
  fs::copy_file(tmp / ("other/data/" + foreign + ".vol"), dir + "/data/" + foreign + ".vol");
  fs::copy_file(tmp / ("other/data/" + foreign + ".vol.meta"),
                dir + "/data/" + foreign + ".vol.meta");
  const std::string bare = "5a5a5a5a-0000-4000-8000-000000000001.vol";
  write_file(dir + "/data/" + bare, std::string(4096, 'x'));
  remove_cluster_db(dir);
  auto b = open_local_cluster(dir);
  auto report = b->repair();
  REQUIRE(report.ok());
  CHECK(report->volumes == 3);
  CHECK(report->set_aside.size() == 3);  // the foreign volume, its sidecar, the bare file
  CHECK(read_file(dir + "/lost+found/" + bare) == std::string(4096, 'x'));
  CHECK(fs::exists(dir + "/lost+found/" + foreign + ".vol"));
  check_all_back(*b, dir, made);
}

TEST_CASE("Local repair: a held volume comes back held, repair is refused when not needed") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  std::string held;
  {
    auto b = open_local_cluster(dir);
    CreateVolumeRequest r{"p1", "being-filled", 1 << 20};
    r.hold_in_creating = true;
    held = b->create_volume(r)->id;
    CHECK(b->repair().status().code() == Code::kFailedPrecondition);
  }
  remove_cluster_db(dir);
  auto b = open_local_cluster(dir);
  REQUIRE(b->repair().ok());
  auto v = b->get_volume("p1", held);
  REQUIRE(v.ok());
  CHECK(v->state == VolumeState::kCreating);
  REQUIRE(b->mark_volume_available("p1", held).ok());
  b.reset();
  remove_cluster_db(dir);
  b = open_local_cluster(dir);
  REQUIRE(b->repair().ok());
  CHECK(b->get_volume("p1", held)->state == VolumeState::kAvailable);
}

TEST_CASE("Local repair: objects made before sidecars existed get one at the next open") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  Made made;
  {
    auto b = open_local_cluster(dir);
    made = populate(*b, dir);
  }
  for (const auto& v : made.volumes) fs::remove(dir + "/data/" + v.id + ".vol.meta");
  { auto b = open_local_cluster(dir); }
  for (const auto& v : made.volumes) CHECK(fs::exists(dir + "/data/" + v.id + ".vol.meta"));
  remove_cluster_db(dir);
  auto b = open_local_cluster(dir);
  REQUIRE(b->repair().ok());
  check_all_back(*b, dir, made);
}

TEST_CASE("Local repair: data files are private to the service, or to the configured group") {
  TempDir tmp;
  auto b = open_local_cluster(tmp / "c");
  auto v = b->create_volume({"p1", "v", 1 << 20});
  REQUIRE(v.ok());
  auto s = b->create_snapshot({"p1", "s", v->id, ""});
  REQUIRE(s.ok());
  using dmscore::testing::file_mode;
  CHECK(file_mode(v->device_path) == 0600);
  CHECK(file_mode(tmp / ("c/data/" + s->id + ".snap")) == 0400);
  CHECK(file_mode(v->device_path + ".meta") == 0600);
  CHECK(file_mode(tmp / "c") == 0700);
  CHECK(file_mode(tmp / "c/data") == 0700);
  CHECK(file_mode(tmp / "c/cluster.db") == 0600);
  CHECK(file_mode(tmp / "c/cluster.json") == 0600);

  LocalBackendOptions o;
  o.file_group = static_cast<int>(::getegid());
  auto g = open_local_cluster(tmp / "g", "", o);
  auto gv = g->create_volume({"p1", "v", 1 << 20});
  REQUIRE(gv.ok());
  auto gs = g->create_snapshot({"p1", "s", gv->id, ""});
  REQUIRE(gs.ok());
  CHECK(file_mode(gv->device_path) == 0640);
  CHECK(file_mode(tmp / ("g/data/" + gs->id + ".snap")) == 0440);
  CHECK(file_mode(tmp / "g") == 0750);

  // A volume an older release made 0644 is tightened at the next open.
  b.reset();
  ::chmod(v->device_path.c_str(), 0644);
  b = open_local_cluster(tmp / "c");
  CHECK(file_mode(v->device_path) == 0600);
}

TEST_CASE("Local repair: a cluster is never made inside another cluster's directory") {
  TempDir tmp;
  auto outer = open_local_cluster(tmp / "outer");
  auto inner = LocalBackend::open(tmp / "outer/data/inner");
  CHECK(inner.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(inner.status().message(), Catch::Contains(tmp / "outer"));
  CHECK_FALSE(fs::exists(tmp / "outer/data/inner"));
}
