// A service process the Lightbits data-path crash test kills with SIGKILL at random points of
// thick clones between two emulated Lightbits clusters.
//
//   lightbits_data_crash_child DATA HOST CA key PEMFILE    writes the service's public key,
//                                                          prints "KEY <pubKeyId>"
//   lightbits_data_crash_child DATA HOST CA attach E1 E2   prints "IDS <lb1> <lb2>"
//   lightbits_data_crash_child DATA HOST CA clone LB1 LB2 SNAP N
//                                     resume whatever was running, then clone the snapshot
//                                     again and again ("ACK <id>" each)
//   lightbits_data_crash_child DATA HOST CA drain          resume and run until nothing is left
//
// HOST is the model host's directory (nvme, sys/, dev/), as lightbits_data_fixture.hpp lays it.
#include <cstdio>
#include <fstream>
#include <string>

#include "crash_child.hpp"
#include "dmscore/service.hpp"

using namespace dmscore;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  const std::string data = argv[1], host = argv[2], mode = argv[4];
  Options o;
  o.cluster_ca_file = argv[3];
  o.cluster_operation_timeout = 20s;
  o.host_nqn = "nqn.2014-08.org.nvmexpress:uuid:5e1f0c2a-7b3d-4c9e-8f10-a1b2c3d4e5f6";
  o.nvme_cli = host + "/nvme";
  o.sysfs_root = host + "/sys";
  o.dev_root = host + "/dev";
  o.copy_chunk_bytes = 1 << 20;
  o.copy_threads = 3;
  o.copy_rate_limit_bytes_per_sec = 64 << 20;
  auto svc = dmscore::testing::open_crash_service(data, o);
  if (mode == "key" && argc == 6) {
    auto keys = svc->identity().keys();
    std::ofstream(argv[5]) << keys[0].public_pem;
    std::printf("KEY %s\n", svc->service_credentials().pub_key_id.c_str());
    return 0;
  }
  if (mode == "attach" && argc == 7) {
    auto a = svc->clusters().attach({argv[5], "lb1"});
    auto b = svc->clusters().attach({argv[6], "lb2"});
    if (!a.ok() || !b.ok()) return 1;
    std::string c1 = dmscore::testing::attached_cluster_or_exit(*svc, *a),
                c2 = dmscore::testing::attached_cluster_or_exit(*svc, *b);
    std::printf("IDS %s %s\n", c1.c_str(), c2.c_str());
    return 0;
  }
  if (mode == "clone" && argc == 9) {
    if (dmscore::testing::wait_idle(*svc) != 0) return 3;  // first finish what a kill interrupted
    return dmscore::testing::clone_forever(*svc, argv[5], argv[6], argv[7], argv[8], 2);
  }
  if (mode == "drain") return dmscore::testing::wait_idle(*svc);
  return 2;
}
