// Kills a process that adopts and gives back files on a local cluster with SIGKILL at random
// points, again and again: after each kill every file is either a candidate under import/ or an
// adopted volume (or snapshot, for the <file>@s beside two of them), never both and never
// neither, with every byte it had.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <random>

#include "crash_harness.hpp"
#include "dmscore/local_backend.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace dmscore::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string content(int i) {
  std::string s(static_cast<std::size_t>(64 * 1024 + 512 * i), '\0');
  for (std::size_t k = 0; k < s.size(); ++k) s[k] = static_cast<char>((k * 7 + 13 * i) & 0xff);
  return s;
}

// The file at `path` is `original` followed only by a hole (what adoption adds), read without
// reading the hole.
bool holds(const std::string& path, const std::string& original) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const std::size_t block_end = (original.size() + 4095) / 4096 * 4096;
  std::string head(block_end, '\0');
  const ssize_t n = ::pread(fd, head.data(), head.size(), 0);
  const off_t size = ::lseek(fd, 0, SEEK_END);
  const bool hole_after =
      size <= static_cast<off_t>(block_end) ||
      (::lseek(fd, static_cast<off_t>(block_end), SEEK_DATA) < 0 && errno == ENXIO);
  ::close(fd);
  if (n < static_cast<ssize_t>(original.size())) return false;
  head.resize(static_cast<std::size_t>(n));
  return head.compare(0, original.size(), original) == 0 &&
         head.find_first_not_of('\0', original.size()) == std::string::npos && hole_after;
}

}  // namespace

TEST_CASE("Manage: SIGKILL at any point of adopting or giving back leaves each file whole, once") {
  TempDir tmp;
  const std::string dir = tmp / "c";
  constexpr int kFiles = 6;
  {
    auto b = LocalBackend::open(dir, "c");
    REQUIRE(b.ok());
  }
  fs::create_directories(dir + "/import");
  constexpr int kSnapshots = 2;  // of f-0.img and f-1.img
  for (int i = 0; i < kFiles; ++i)
    write_file(dir + "/import/f-" + std::to_string(i) + ".img", content(i));
  for (int i = 0; i < kSnapshots; ++i)
    write_file(dir + "/import/f-" + std::to_string(i) + ".img@s", content(20 + i));

  const int rounds = env_int("DMSCORE_MANAGE_ROUNDS", 24);
  std::mt19937 rng(Catch::rngSeed());
  int kills_mid_work = 0, rounds_with_snapshots = 0;
  for (int round = 0; round < rounds; ++round) {
    auto run = run_child_kill_after_line({DMSCORE_MANAGE_CHILD, dir, "1000"}, "OPEN",
                                         std::chrono::microseconds(rng() % 60000));
    INFO("round " << round << ": " << run.out);
    REQUIRE(!lines_with(run.out, "OPEN").empty());
    if (run.killed && !lines_with(run.out, "STEP").empty()) ++kills_mid_work;
    REQUIRE((run.killed || run.exit_code == 0));

    // Reopening finishes or rolls back what the kill interrupted.
    auto b = LocalBackend::open(dir);
    REQUIRE(b.ok());
    REQUIRE((*b)->repair_needed().ok());
    std::map<std::string, int> seen;  // file name -> times found
    for (auto& e : fs::directory_iterator(dir + "/import")) {
      const std::string name = e.path().filename().string();
      const int i = std::stoi(name.substr(2));
      INFO(name);
      const bool snapshot = name.back() == 's';
      CHECK(name == "f-" + std::to_string(i) + (snapshot ? ".img@s" : ".img"));
      const std::string original = content(snapshot ? 20 + i : i);
      CHECK(holds(e.path().string(), original));
      CHECK(fs::file_size(e.path()) == original.size());
      ++seen[snapshot ? name.substr(0, name.size() - 2) + ".s" : name];
    }
    auto vols = (*b)->list_volumes("p1", {1000, ""});
    REQUIRE(vols.ok());
    for (const auto& v : vols->volumes) {
      INFO(v.name);
      CHECK(v.state == VolumeState::kAvailable);
      CHECK(v.adopted_from == "import/" + v.name);
      const int i = std::stoi(v.name.substr(2));
      CHECK(v.adopted_size == content(i).size());
      CHECK(holds(v.device_path, content(i)));
      ++seen[v.name];
    }
    auto snaps = (*b)->list_snapshots("p1", {1000, ""});
    REQUIRE(snaps.ok());
    for (const auto& sn : snaps->snapshots) {
      INFO(sn.name);
      CHECK(sn.state == SnapshotState::kAvailable);
      const int i = std::stoi(sn.name.substr(2));
      CHECK(sn.name == "f-" + std::to_string(i) + ".img.s");
      CHECK(sn.adopted_from == "import/f-" + std::to_string(i) + ".img@s");
      CHECK(sn.adopted_size == content(20 + i).size());
      CHECK(holds(dir + "/data/" + sn.id + ".snap", content(20 + i)));
      ++seen[sn.name];
    }
    CHECK(seen.size() == kFiles + kSnapshots);
    rounds_with_snapshots += !snaps->snapshots.empty();
    for (const auto& [name, n] : seen) {
      INFO(name);
      CHECK(n == 1);
    }
    // Nothing half made is left in data/: each file there is a volume's data or sidecar.
    std::size_t files = 0;
    for (auto& e : fs::directory_iterator(dir + "/data")) {
      CHECK(e.path().extension() != ".tmp");
      ++files;
    }
    CHECK(files == 2 * (vols->volumes.size() + snaps->snapshots.size()));
  }
  WARN("kills in the middle of adopting or giving back: "
       << kills_mid_work
       << "; rounds that ended with snapshots adopted: " << rounds_with_snapshots);
  CHECK(kills_mid_work >= 20);
  CHECK(rounds_with_snapshots > 0);
}
