// The process manage_crash_test kills: it opens a local cluster (which finishes or rolls back
// whatever a kill interrupted) and then adopts and gives back the files under import/, volumes
// and then the snapshots of adopted volumes, round after round, until it is killed.
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
        // A volume whose snapshot is managed stays until the snapshot is given back.
        if (!r.ok() && r.status().code() != Code::kFailedPrecondition) {
          std::fprintf(stderr, "unmanage %s: %s\n", m.managed_id.c_str(),
                       r.status().to_string().c_str());
          return 1;
        }
      }
    }
    auto snaps = (*b)->list_manageable_snapshots();
    auto vols = (*b)->list_volumes("p1", {1000, ""});
    if (!snaps.ok() || !vols.ok()) return 1;
    for (const auto& m : *snaps) {
      std::printf("STEP %d\n", ++step);
      std::fflush(stdout);
      if (m.safe_to_manage) {
        // Only once its volume is adopted: import/f-1.img@s is a snapshot of f-1.img.
        for (const auto& v : vols->volumes) {
          if (v.adopted_from != m.source_reference) continue;
          ManageSnapshotRequest r;
          r.reference = m.reference;
          r.project_name = "p1";
          r.volume_id = v.id;
          r.name = m.reference.substr(m.reference.rfind('/') + 1);
          r.name[r.name.find('@')] = '.';
          r.fingerprint = m.fingerprint;
          auto sn = (*b)->manage_snapshot(r);
          if (!sn.ok()) {
            std::fprintf(stderr, "manage %s: %s\n", m.reference.c_str(),
                         sn.status().to_string().c_str());
            return 1;
          }
        }
      } else if (!m.managed_id.empty()) {
        auto r = (*b)->unmanage_snapshot("p1", m.managed_id);
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
