// A service process the clone crash test kills with SIGKILL mid-copy.
//
//   clone_crash_child setup DATA DIR1 DIR2   attach two local clusters, make a source snapshot;
//                                            prints "IDS <c1> <c2> <snapshot id>"
//   clone_crash_child clone DATA C1 C2 SNAP N   resume whatever was running, then clone the
//                                            snapshot again and again ("ACK <id>" each)
//   clone_crash_child drain DATA             resume and run until nothing is left, exit 0
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include "crash_child.hpp"
#include "dmscore/service.hpp"

using namespace dmscore;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Service> open_service(const std::string& data) {
  Options o;
  o.copy_chunk_bytes = 1 << 20;
  o.copy_threads = 3;
  o.copy_rate_limit_bytes_per_sec = 48 << 20;
  return dmscore::testing::open_crash_service(data, o);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  std::string mode = argv[1];
  auto svc = open_service(argv[2]);
  if (mode == "setup" && argc == 5) {
    auto a = svc->clusters().attach({std::string("file://") + argv[3], "src"});
    auto b = svc->clusters().attach({std::string("file://") + argv[4], "dst"});
    if (!a.ok() || !b.ok()) return 1;
    std::string c1 = dmscore::testing::attached_cluster_or_exit(*svc, *a),
                c2 = dmscore::testing::attached_cluster_or_exit(*svc, *b);
    const std::uint64_t size = 40ull << 20;
    auto v = svc->volumes().create(ClusterId(c1), {"p1", "source", size});
    if (!v.ok()) return 1;
    int fd = ::open(v->device_path.c_str(), O_WRONLY);
    std::mt19937_64 rng(11);
    std::string block(1 << 20, '\0');
    for (int i = 0; i < 40; ++i) {
      if (rng() % 2) continue;  // about half the slots stay holes
      for (auto& ch : block) ch = static_cast<char>(rng());
      if (i % 7 == 0) std::fill(block.begin() + 4096, block.begin() + 65536, '\0');
      ::pwrite(fd, block.data(), block.size(), static_cast<off_t>(i) << 20);
    }
    ::fsync(fd);
    ::close(fd);
    auto sn = svc->volumes().create_snapshot(ClusterId(c1), {"p1", "source-snap", v->id, ""});
    if (!sn.ok()) return 1;
    std::printf("IDS %s %s %s\n", c1.c_str(), c2.c_str(), sn->id.c_str());
    return 0;
  }
  if (mode == "clone" && argc == 7) {
    if (dmscore::testing::wait_idle(*svc) != 0) return 3;  // first finish what a kill interrupted
    return dmscore::testing::clone_forever(*svc, argv[3], argv[4], argv[5], argv[6]);
  }
  if (mode == "drain") return dmscore::testing::wait_idle(*svc);
  return 2;
}
