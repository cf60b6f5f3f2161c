// A service process the group crash test kills with SIGKILL while group snapshots are taken.
//
//   group_crash_child setup DATA DIR      attach a local cluster, make three volumes with data
//                                         and a group of them; prints "IDS <cluster> <group>"
//   group_crash_child snap DATA GROUP N   finish what a kill interrupted, then take group
//                                         snapshots again and again ("ACK <cg snapshot id>" each)
//   group_crash_child copy DATA GROUP N   finish what a kill interrupted, then make copy sets of
//                                         two full copies and resynchronize the previous one,
//                                         again and again ("ACK <copy set id>" each)
//   group_crash_child drain DATA          resume and run until nothing is left, exit 0
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
  o.health_check_interval = 0ms;
  return dmscore::testing::open_crash_service(data, o);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  std::string mode = argv[1];
  auto svc = open_service(argv[2]);
  if (mode == "setup" && argc == 4) {
    auto a = svc->clusters().attach({std::string("file://") + argv[3], "c1"});
    if (!a.ok()) return 1;
    std::string cid = dmscore::testing::attached_cluster_or_exit(*svc, *a);
    CreateGroupRequest g{"db", "", cid, "p1", {}, ""};
    std::mt19937_64 rng(5);
    for (const char* name : {"data", "log", "conf"}) {
      auto v = svc->volumes().create(ClusterId(cid), {"p1", name, 4u << 20});
      if (!v.ok()) return 1;
      std::string block(1 << 20, '\0');
      for (std::uint64_t off = 0; off < (4u << 20); off += block.size()) {
        for (auto& ch : block) ch = static_cast<char>(rng());
        if (!svc->volumes().write({ClusterId(cid), "p1", v->id}, off, block).ok()) return 1;
      }
      g.volume_ids.push_back(v->id);
    }
    auto group = svc->groups().create(g);
    if (!group.ok()) return 1;
    std::printf("IDS %s %s\n", cid.c_str(), group->id.c_str());
    return 0;
  }
  if (mode == "snap" && argc == 5) {
    if (dmscore::testing::wait_idle(*svc) != 0) return 3;  // first finish what a kill interrupted
    for (int n = 0;; ++n) {
      auto c = svc->groups().create_snapshot(
          {argv[3], std::string("s") + argv[4] + "-" + std::to_string(n), ""});
      if (!c.ok()) {
        std::fprintf(stderr, "submit: %s\n", c.status().to_string().c_str());
        return 1;
      }
      std::printf("ACK %s\n", c->id.c_str());
      std::fflush(stdout);
      (void)svc->workflows().wait(WorkflowId(c->workflow_id), 60s);
    }
  }
  if (mode == "copy" && argc == 5) {
    if (dmscore::testing::wait_idle(*svc) != 0) return 3;
    std::string previous;
    for (int n = 0;; ++n) {
      CreateFullCopiesRequest r;
      r.consistency_group_id = argv[3];
      r.name = std::string("f") + argv[4] + "-" + std::to_string(n);
      r.count = 2;
      auto w = svc->copy_sets().create(r);
      if (!w.ok()) {
        std::fprintf(stderr, "submit: %s\n", w.status().to_string().c_str());
        return 1;
      }
      std::printf("ACK %s\n", w->copy_set.id.c_str());
      std::fflush(stdout);
      for (const auto& cw : w->workflows)
        (void)svc->workflows().wait(WorkflowId(cw.workflow_id), 60s);
      if (!previous.empty()) {
        CopySetActionRequest a;
        a.action = CopyAction::kResynchronize;
        auto rs = svc->copy_sets().act({GroupId(argv[3]), CopySetId(previous)}, a);
        if (rs.ok())
          for (const auto& cw : rs->workflows)
            (void)svc->workflows().wait(WorkflowId(cw.workflow_id), 60s);
      }
      previous = w->copy_set.id;
    }
  }
  if (mode == "drain") return dmscore::testing::wait_idle(*svc);
  return 2;
}
