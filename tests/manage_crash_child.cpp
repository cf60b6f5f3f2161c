// The process manage_crash_test kills: it opens a local cluster (which finishes or rolls back
// whatever a kill interrupted) and then adopts and gives back the files under import/, round
// after round, until it is killed.
//
//   manage_crash_child DIR ROUNDS     prints OPEN, then STEP <n> before each adopt or give-back
#include <cstdio>
#include <string>

#include "dmscore/local_backend.hpp"

using namespace dmscore;

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  LocalBackendOptions o;
  o.manage_settle_time = std::chrono::milliseconds(0);
  auto b = LocalBackend::open(argv[1], "", o);
  if (!b.ok()) {
    std::fprintf(stderr, "open: %s\n", b.status().to_string().c_str());
    return 1;
  }
  std::printf("OPEN\n");
  std::fflush(stdout);
  const int rounds = std::atoi(argv[2]);
  int step = 0;
  for (int round = 0; round < rounds; ++round) {
    auto list = (*b)->list_manageable_volumes();
    if (!list.ok()) return 1;
    for (const auto& m : *list) {
      std::printf("STEP %d\n", ++step);
      std::fflush(stdout);
      if (m.safe_to_manage) {
        // Named after its file: import/f-3.img becomes volume f-3.img.
        const std::string name = m.reference.substr(m.reference.rfind('/') + 1);
        auto v = (*b)->manage_volume({"", m.reference, "p1", name, m.fingerprint, {}});
        if (!v.ok()) {
          std::fprintf(stderr, "manage %s: %s\n", m.reference.c_str(),
                       v.status().to_string().c_str());
          return 1;
        }
      } else if (!m.managed_id.empty()) {
        auto r = (*b)->unmanage_volume("p1", m.managed_id);
        if (!r.ok()) {
          std::fprintf(stderr, "unmanage %s: %s\n", m.managed_id.c_str(),
                       r.status().to_string().c_str());
          return 1;
        }
      }
    }
  }
  std::printf("DONE\n");
  return 0;
}
