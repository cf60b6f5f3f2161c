// Adopting what exists on a local cluster: the candidates under import/ and lost+found/ with
// their safety, managing one without copying it, and giving it back with every byte.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <thread>

#include "backends/local_layout.hpp"
#include "dmscore/local_backend.hpp"
#include "test_support.hpp"
#include "test_util.hpp"

using namespace dmscore;
using dmscore::testing::read_file;
using dmscore::testing::TempDir;
using dmscore::testing::write_file;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

std::unique_ptr<LocalBackend> open_cluster(const std::string& dir,
                                           std::chrono::milliseconds settle = 20ms) {
  LocalBackendOptions o;
  o.manage_settle_time = settle;
  auto b = LocalBackend::open(dir, "c", o);
  INFO(b.status().to_string());
  REQUIRE(b.ok());
  return std::move(b).value();
}

// `size` bytes that say where they are, so any moved or lost byte shows.
std::string pattern(std::size_t size, char salt) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 31 + salt) & 0xff);
  return s;
}

std::map<std::string, ManageableObject> by_reference(const std::vector<ManageableObject>& list) {
  std::map<std::string, ManageableObject> out;
  for (const auto& m : list) out[m.reference] = m;
  return out;
}

ManageVolumeRequest manage_req(const std::string& ref, const std::string& name) {
  ManageVolumeRequest r;
  r.reference = ref;
  r.project_name = "p1";
  r.name = name;
  return r;
}

}  // namespace

TEST_CASE("Manage: candidates under import/ and lost+found/ are listed with why one is unsafe") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  auto b = open_cluster(dir);
  fs::create_directories(dir + "/import/nested");
  fs::create_directories(dir + "/lost+found");
  write_file(dir + "/import/good.img", pattern(1 << 20, 1));
  write_file(dir + "/import/nested/deep.img", pattern(4096, 2));
  write_file(dir + "/import/odd.img", pattern(1000, 3));
  write_file(dir + "/import/empty.img", "");
  write_file(dir + "/lost+found/kept.vol", pattern(8192, 4));
  fs::create_symlink(dir + "/import/good.img", dir + "/import/link.img");
  REQUIRE(::mkfifo((dir + "/import/pipe").c_str(), 0600) == 0);
  write_file(dir + "/import/flocked.img", pattern(512, 5));
  write_file(dir + "/import/posix-locked.img", pattern(512, 6));
  int flocked = ::open((dir + "/import/flocked.img").c_str(), O_RDWR);
  REQUIRE(::flock(flocked, LOCK_EX) == 0);
  int posix = ::open((dir + "/import/posix-locked.img").c_str(), O_RDWR);
  struct flock wl {};
  wl.l_type = F_WRLCK;
  wl.l_whence = SEEK_SET;
  wl.l_start = 0;
  wl.l_len = 512;
  REQUIRE(::fcntl(posix, F_OFD_SETLK, &wl) == 0);
  // As QEMU holds an image it runs: a shared OFD lock and a shared flock.
  write_file(dir + "/import/qemu.img", pattern(4096, 7));
  int qemu = ::open((dir + "/import/qemu.img").c_str(), O_RDONLY);
  struct flock rl {};
  rl.l_type = F_RDLCK;
  rl.l_whence = SEEK_SET;
  rl.l_start = 100;
  rl.l_len = 1;
  REQUIRE(::fcntl(qemu, F_OFD_SETLK, &rl) == 0);
  // Two names for the same bytes.
  write_file(dir + "/import/twice.img", pattern(4096, 8));
  REQUIRE(::link((dir + "/import/twice.img").c_str(), (dir + "/twice-elsewhere.img").c_str()) == 0);
  auto managed = b->create_volume({"p1", "already", 1 << 20});
  REQUIRE(managed.ok());

  auto list = b->list_manageable_volumes();
  REQUIRE(list.ok());
  auto m = by_reference(*list);
  CHECK(m.size() == 12);
  CHECK(m["import/good.img"].safe_to_manage);
  CHECK(m["import/good.img"].size == 1 << 20);
  CHECK(m["import/good.img"].reason_not_safe.empty());
  CHECK(m["import/nested/deep.img"].safe_to_manage);
  CHECK(m["lost+found/kept.vol"].safe_to_manage);
  CHECK(m["import/odd.img"].reason_not_safe == "size is not a multiple of 512 bytes");
  CHECK(m["import/empty.img"].reason_not_safe == "empty");
  CHECK(m["import/link.img"].reason_not_safe == "a symbolic link");
  CHECK(m["import/pipe"].reason_not_safe == "not a regular file");
  CHECK(m["import/flocked.img"].reason_not_safe == "locked by another process");
  CHECK(m["import/posix-locked.img"].reason_not_safe == "locked by another process");
  CHECK(m["import/qemu.img"].reason_not_safe == "locked by another process");
  CHECK(m["import/twice.img"].reason_not_safe == "has other hard links");
  ::close(qemu);
  const auto& mine = m["data/" + managed->id + ".vol"];
  CHECK_FALSE(mine.safe_to_manage);
  CHECK(mine.reason_not_safe == "already managed");
  CHECK(mine.managed_id == managed->id);
  for (const auto& [ref, o] : m) CHECK(o.safe_to_manage == o.reason_not_safe.empty());
  ::close(flocked);
  ::close(posix);
  // The locks gone, those two are safe.
  m = by_reference(*b->list_manageable_volumes());
  CHECK(m["import/flocked.img"].safe_to_manage);
  CHECK(m["import/posix-locked.img"].safe_to_manage);
}

TEST_CASE("Manage: a file whose size changes between the two looks is being written") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  auto b = open_cluster(dir, 300ms);
  fs::create_directories(dir + "/import");
  write_file(dir + "/import/growing.img", pattern(512, 1));
  write_file(dir + "/import/still.img", pattern(512, 2));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    int fd = ::open((dir + "/import/growing.img").c_str(), O_WRONLY | O_APPEND);
    while (!stop) {
      (void)::write(fd, pattern(512, 3).data(), 512);
      std::this_thread::sleep_for(5ms);
    }
    ::close(fd);
  });
  auto list = b->list_manageable_volumes();
  stop = true;
  writer.join();
  REQUIRE(list.ok());
  auto m = by_reference(*list);
  CHECK(m["import/growing.img"].reason_not_safe == "being written");
  CHECK(m["import/still.img"].safe_to_manage);
}

TEST_CASE("Manage: adopting moves the file in without copying, sized up to whole GiB") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  auto b = open_cluster(dir);
  fs::create_directories(dir + "/import");
  const std::string original = pattern(3 << 20, 7);
  write_file(dir + "/import/db-2024.img", original);
  struct stat before {};
  REQUIRE(::stat((dir + "/import/db-2024.img").c_str(), &before) == 0);
  auto listed = by_reference(*b->list_manageable_volumes());

  auto req = manage_req("import/db-2024.img", "db");
  req.fingerprint = listed["import/db-2024.img"].fingerprint;
  req.labels = {{"dms.workflow", "w1"}};
  auto v = b->manage_volume(req);
  INFO(v.status().to_string());
  REQUIRE(v.ok());
  CHECK(v->state == VolumeState::kAvailable);
  CHECK(v->size == kGiB);
  CHECK(v->adopted_from == "import/db-2024.img");
  CHECK(v->adopted_size == original.size());
  CHECK(v->labels.at("dms.workflow") == "w1");
  CHECK_FALSE(fs::exists(dir + "/import/db-2024.img"));
  // The same inode: renamed, not copied; the data whole, zeros after it.
  struct stat after {};
  REQUIRE(::stat(v->device_path.c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);
  CHECK(static_cast<std::uint64_t>(after.st_size) == kGiB);
  CHECK((after.st_mode & 0777) == 0600);
  const std::string data = read_file(v->device_path);
  CHECK(data.compare(0, original.size(), original) == 0);
  CHECK(data.find_first_not_of('\0', original.size()) == std::string::npos);
  // It is a volume like any other, and listed as managed with where it came from.
  auto got = b->get_volume("p1", v->id);
  REQUIRE(got.ok());
  CHECK(got->adopted_from == "import/db-2024.img");
  auto m = by_reference(*b->list_manageable_volumes());
  CHECK(m.count("import/db-2024.img") == 0);
  CHECK(m["data/" + v->id + ".vol"].reason_not_safe == "already managed");
  CHECK_THAT(m["data/" + v->id + ".vol"].extra_info,
             Catch::Contains("import/db-2024.img") && Catch::Contains("3145728 bytes"));
  // It survives a reopen, and the cluster needs no repair.
  b.reset();
  b = open_cluster(dir);
  CHECK(b->repair_needed().ok());
  CHECK(b->get_volume("p1", v->id)->state == VolumeState::kAvailable);
}

TEST_CASE("Manage: a refused adoption leaves the candidate untouched") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  auto b = open_cluster(dir);
  fs::create_directories(dir + "/import");
  const std::string original = pattern(1 << 20, 9);
  write_file(dir + "/import/a.img", original);
  write_file(dir + "/import/odd.img", pattern(100, 1));
  REQUIRE(b->create_volume({"p1", "taken", 1 << 20}).ok());
  auto untouched = [&] {
    CHECK(read_file(dir + "/import/a.img") == original);
    CHECK(b->list_volumes("p1", {})->volumes.size() == 1);
    // Only the volume "taken" has files in data/ (its data and its sidecar).
    CHECK(std::distance(fs::directory_iterator(dir + "/data"), fs::directory_iterator()) == 2);
  };

  SECTION("a taken name") {
    CHECK(b->manage_volume(manage_req("import/a.img", "taken")).status().code() ==
          Code::kAlreadyExists);
  }
  SECTION("an unsafe candidate") {
    auto r = b->manage_volume(manage_req("import/odd.img", "x"));
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::StartsWith("ref:") && Catch::Contains("512"));
  }
  SECTION("a candidate that changed since it was listed") {
    auto listed = by_reference(*b->list_manageable_volumes());
    write_file(dir + "/import/a.img", original);  // rewritten: a new modification time
    struct timespec times[2] = {{0, UTIME_OMIT}, {1, 0}};
    REQUIRE(::utimensat(AT_FDCWD, (dir + "/import/a.img").c_str(), times, 0) == 0);
    auto req = manage_req("import/a.img", "x");
    req.fingerprint = listed["import/a.img"].fingerprint;
    auto r = b->manage_volume(req);
    CHECK(r.status().code() == Code::kFailedPrecondition);
    CHECK_THAT(r.status().message(), Catch::Contains("changed since it was listed"));
  }
  SECTION("references that are not candidates") {
    for (std::string bad :
         {std::string(), std::string("import"), std::string("import/"), std::string("/etc/passwd"),
          std::string("import/../cluster.db"), std::string("data/x.vol"),
          std::string("import/./a.img"), std::string("import/missing.img"),
          std::string("cluster.json"), std::string("import/a\x01.img")}) {
      auto r = b->manage_volume(manage_req(bad, "x"));
      INFO(bad);
      CHECK(r.status().code() == Code::kInvalidArgument);
      CHECK_THAT(r.status().message(), Catch::StartsWith("ref:"));
    }
  }
  SECTION("bad names") {
    CHECK_THAT(b->manage_volume(manage_req("import/a.img", "a b")).status().message(),
               Catch::StartsWith("name:"));
  }
  untouched();
}

TEST_CASE("Manage: unmanaging gives every byte back where it was adopted from") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  auto b = open_cluster(dir);
  fs::create_directories(dir + "/lost+found");
  const std::string original = pattern(5 << 20, 11);
  write_file(dir + "/lost+found/old.vol", original);
  auto v = b->manage_volume(manage_req("lost+found/old.vol", "old"));
  REQUIRE(v.ok());

  SECTION("nothing written past its old end: the file is as it was") {
    auto where = b->unmanage_volume("p1", v->id);
    REQUIRE(where.ok());
    CHECK(*where == "lost+found/old.vol");
    CHECK(read_file(dir + "/lost+found/old.vol") == original);
  }
  SECTION("written while managed: every byte kept, the new ones too") {
    int fd = ::open(v->device_path.c_str(), O_WRONLY);
    REQUIRE(::pwrite(fd, "tail", 4, 100 << 20) == 4);
    ::close(fd);
    auto where = b->unmanage_volume("p1", v->id);
    REQUIRE(where.ok());
    const std::string back = read_file(dir + "/" + *where);
    CHECK(back.size() == kGiB);
    CHECK(back.compare(0, original.size(), original) == 0);
    CHECK(back.compare(100 << 20, 4, "tail") == 0);
  }
  CHECK(b->get_volume("p1", v->id).status().code() == Code::kNotFound);
  CHECK_FALSE(fs::exists(v->device_path));
  CHECK_FALSE(fs::exists(v->device_path + ".meta"));
  // It is a candidate again, and the cluster is consistent after a reopen.
  auto m = by_reference(*b->list_manageable_volumes());
  CHECK(m["lost+found/old.vol"].safe_to_manage);
  b.reset();
  b = open_cluster(dir);
  CHECK(b->repair_needed().ok());
}

TEST_CASE("Manage: a volume the service made goes to import/ under its name, a taken one beside") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  auto b = open_cluster(dir);
  auto v = b->create_volume({"p1", "made", 1 << 20});
  REQUIRE(v.ok());
  fs::create_directories(dir + "/import");
  write_file(dir + "/import/made", "someone else's");
  auto where = b->unmanage_volume("p1", v->id);
  REQUIRE(where.ok());
  CHECK(*where == "import/made.1");
  CHECK(read_file(dir + "/import/made") == "someone else's");
  CHECK(fs::file_size(dir + "/import/made.1") == 1 << 20);
}

TEST_CASE("Manage: unmanage refuses a volume with snapshots or one that is not Available") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  auto b = open_cluster(dir);
  auto v = b->create_volume({"p1", "v", 1 << 20});
  REQUIRE(v.ok());
  REQUIRE(b->create_snapshot({"p1", "s", v->id, ""}).ok());
  auto r = b->unmanage_volume("p1", v->id);
  CHECK(r.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(r.status().message(), Catch::Contains("snapshot"));
  CreateVolumeRequest held{"p1", "held", 1 << 20};
  held.hold_in_creating = true;
  auto h = b->create_volume(held);
  REQUIRE(h.ok());
  CHECK(b->unmanage_volume("p1", h->id).status().code() == Code::kFailedPrecondition);
  CHECK(b->unmanage_volume("p1", "00000000-0000-4000-8000-000000000000").status().code() ==
        Code::kNotFound);
  CHECK(fs::exists(v->device_path));
  CHECK(fs::exists(h->device_path));
  // One a process holds (a lock of any kind) stays, as it was.
  auto used = b->create_volume({"p1", "used", 1 << 20});
  REQUIRE(used.ok());
  int fd = ::open(used->device_path.c_str(), O_RDONLY);
  struct flock rl {};
  rl.l_type = F_RDLCK;
  rl.l_whence = SEEK_SET;
  REQUIRE(::fcntl(fd, F_OFD_SETLK, &rl) == 0);
  auto refused = b->unmanage_volume("p1", used->id);
  CHECK(refused.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(refused.status().message(), Catch::Contains("locked by another process"));
  CHECK(b->get_volume("p1", used->id)->state == VolumeState::kAvailable);
  ::close(fd);
  CHECK(b->unmanage_volume("p1", used->id).ok());
}

TEST_CASE(
    "Manage: removing a volume's files spares a file under its sidecar's name it did not write") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  auto b = open_cluster(dir);
  auto v = b->create_volume({"p1", "v", 1 << 20});
  REQUIRE(v.ok());
  // Not a sidecar this cluster wrote for this volume, though named like one's temporary.
  write_file(v->device_path + ".meta.tmp", "someone else's bytes");
  REQUIRE(b->delete_volume("p1", v->id).ok());
  CHECK_FALSE(fs::exists(v->device_path));
  CHECK_FALSE(fs::exists(v->device_path + ".meta"));  // its own sidecar: removed
  const std::string kept = dir + "/lost+found/" + v->id + ".vol.meta.tmp";
  CHECK(read_file(kept) == "someone else's bytes");
  CHECK(b->set_aside_count() == 1);
}

TEST_CASE("Manage: an interrupted adoption rolls back, keeping the candidate and foreign files") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  std::string cluster_id;
  {
    auto b = open_cluster(dir);
    cluster_id = b->cluster_id();
  }
  fs::create_directories(dir + "/import");
  const std::string original = pattern(1 << 20, 5);
  write_file(dir + "/import/a.img", original);
  // What a kill leaves after the row and before the rename: the intent, and a sidecar.
  const std::string id = "11111111-2222-4333-8444-555555555555";
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir + "/cluster.db").c_str(), &db) == SQLITE_OK);
  const std::string insert =
      "INSERT INTO volumes (id, project, name, size, replica_count, sector_size, compression, "
      "state, held, source_snapshot_id, created_at, labels, adopted_from, adopted_size) VALUES "
      "('" +
      id +
      "', 'p1', 'a', 1073741824, 1, 4096, 0, 'Creating', 0, '', 0, '{}', "
      "'import/a.img', 1048576)";
  REQUIRE(sqlite3_exec(db, insert.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  const std::string sidecar = dir + "/data/" + id + ".vol.meta";
  bool ours = false;
  SECTION("its own sidecar is removed") {
    ours = true;
    detail::local::ObjectMeta m;
    m.cluster_id = cluster_id;
    m.id = id;
    m.project = "p1";
    m.name = "a";
    m.size = kGiB;
    write_file(sidecar, detail::local::sidecar_json(m));
  }
  SECTION("a file under that name it did not write is kept aside") {
    write_file(sidecar, "not a sidecar");
  }
  auto b = open_cluster(dir);
  CHECK(b->repair_needed().ok());
  CHECK(b->get_volume("p1", id).status().code() == Code::kNotFound);
  CHECK(read_file(dir + "/import/a.img") == original);
  CHECK_FALSE(fs::exists(sidecar));
  if (!ours) CHECK(read_file(dir + "/lost+found/" + id + ".vol.meta") == "not a sidecar");
  CHECK(b->set_aside_count() == (ours ? 0 : 1));
}

TEST_CASE("Manage: a symbolic link found in place of an adopted file is set aside, not followed") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  { auto b = open_cluster(dir); }
  fs::create_directories(dir + "/import");
  const std::string original = pattern(1 << 20, 6), victim = pattern(4096, 9);
  write_file(dir + "/import/a.img", original);
  write_file(tmp / "victim.bin", victim);  // a file outside the cluster, not the service's
  // A kill after the row, with a symbolic link swapped in where the renamed file would be.
  const std::string id = "11111111-2222-4333-8444-666666666666";
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir + "/cluster.db").c_str(), &db) == SQLITE_OK);
  const std::string insert =
      "INSERT INTO volumes (id, project, name, size, replica_count, sector_size, compression, "
      "state, held, source_snapshot_id, created_at, labels, adopted_from, adopted_size) VALUES "
      "('" +
      id +
      "', 'p1', 'a', 1073741824, 1, 4096, 0, 'Creating', 0, '', 0, '{}', 'import/a.img', "
      "1048576)";
  REQUIRE(sqlite3_exec(db, insert.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  fs::create_symlink(tmp / "victim.bin", dir + "/data/" + id + ".vol");
  auto b = open_cluster(dir);
  CHECK(b->repair_needed().ok());
  // The file the link named is neither extended nor adopted; the link is kept aside.
  CHECK(read_file(tmp / "victim.bin") == victim);
  CHECK(fs::file_size(tmp / "victim.bin") == victim.size());
  CHECK(fs::is_symlink(dir + "/lost+found/" + id + ".vol"));
  CHECK(b->get_volume("p1", id).status().code() == Code::kNotFound);
  CHECK(read_file(dir + "/import/a.img") == original);
}
