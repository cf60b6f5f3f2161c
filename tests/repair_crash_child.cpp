// The process repair_crash_test kills: it makes a local cluster, or opens one and repairs it.
//
//   repair_crash_child setup DIR COUNT   COUNT volumes with data and a snapshot of each
//   repair_crash_child repair DIR        prints OPEN <1 if it needs repair>, then DONE or CLEAN
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "dmscore/local_backend.hpp"

using namespace dmscore;

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::string mode = argv[1], dir = argv[2];
  auto b = LocalBackend::open(dir);
  if (!b.ok()) {
    std::fprintf(stderr, "open: %s\n", b.status().to_string().c_str());
    return 1;
  }
  if (mode == "setup" && argc == 4) {
    const int count = std::atoi(argv[3]);
    for (int i = 0; i < count; ++i) {
      auto v = (*b)->create_volume({"p1", "vol-" + std::to_string(i), 64 << 10});
      if (!v.ok()) return 1;
      int fd = ::open(v->device_path.c_str(), O_WRONLY);
      std::string data = "volume " + std::to_string(i) + " holds this";
      if (fd < 0 || ::pwrite(fd, data.data(), data.size(), 4096 * (i % 8)) < 0) return 1;
      ::close(fd);
      if (!(*b)->create_snapshot({"p1", "snap-" + std::to_string(i), v->id, ""}).ok()) return 1;
    }
    std::printf("ID %s\n", (*b)->cluster_id().c_str());
    return 0;
  }
  if (mode == "repair") {
    const bool needed = !(*b)->repair_needed().ok();
    std::printf("OPEN %d\n", needed ? 1 : 0);
    std::fflush(stdout);
    if (!needed) {
      std::printf("CLEAN\n");
      return 0;
    }
    auto r = (*b)->repair();
    if (!r.ok()) {
      std::fprintf(stderr, "repair: %s\n", r.status().to_string().c_str());
      return 1;
    }
    std::printf("DONE %d %d\n", r->volumes, r->snapshots);
    return 0;
  }
  return 2;
}
