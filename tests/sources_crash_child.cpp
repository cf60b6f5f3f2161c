// The process sources_crash_test kills: a service taking bursts of source reports from
// several agents at once, printing each report it acknowledged.
//
//   sources_crash_child DATA_DIR ROUND   prints READY, then "ACK <mac> <version> <id>" after
//                                        each report the service acknowledged (until killed)
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dmscore/service.hpp"

using namespace dmscore;

namespace {

// A Linux source with everything the environment check asks for, as agent `agent` reports it
// at `version`.
std::string report(int agent, int version) {
  const std::string mac = "02:00:00:00:00:" + std::string(agent < 16 ? "0" : "") + [&] {
    char b[8];
    std::snprintf(b, sizeof b, "%x", agent);
    return std::string(b);
  }();
  return R"({"name":"agent-)" + std::to_string(agent) + R"(","os_type":"LINUX",)" +
         R"("os_version":"UBUNTU22.04","agent_version":")" + std::to_string(version) +
         R"(","ip":"10.1.0.)" + std::to_string(agent + 1) + R"(","firmware":"UEFI",)" +
         R"("boot_loader":"GRUB","has_rsync":true,"has_tc":true,"paravirtualization":false,)" +
         R"("raw_devices":"","btrfs_list":[],"volume_groups":[],)" +
         R"("disks":[{"name":"/dev/vda","size":)" +
         std::to_string((std::int64_t{version} + 1) * 1048576) +
         R"(,"partition_style":"GPT"}],"networks":[{"mac":")" + mac + R"(","mtu":1500}]})";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  Options o;
  o.data_dir = argv[1];
  o.rsa_bits = 2048;
  o.scrypt_log2_n = 10;
  o.log = [](std::string_view) {};
  auto svc = Service::open(o);
  if (!svc.ok()) {
    std::fprintf(stderr, "open: %s\n", svc.status().to_string().c_str());
    return 1;
  }
  const int round = std::atoi(argv[2]);
  std::printf("READY\n");
  std::fflush(stdout);
  std::mutex out_mu;
  std::vector<std::thread> agents;
  for (int a = 0; a < 8; ++a) {
    agents.emplace_back([&, a] {
      // Agents 0..5 report again and again; 6 and 7 are new each round.
      const int agent = a < 6 ? a : 6 + round * 2 + (a - 6);
      for (int v = round * 100000;; ++v) {
        auto r = (*svc)->sources().report(report(agent, v), "agent");
        if (!r.ok()) {
          std::fprintf(stderr, "report: %s\n", r.status().to_string().c_str());
          std::_Exit(1);
        }
        std::lock_guard lock(out_mu);
        std::printf("ACK %d %d %s\n", agent, v, r->id.c_str());
        std::fflush(stdout);
      }
    });
  }
  for (auto& t : agents) t.join();
  return 0;
}
