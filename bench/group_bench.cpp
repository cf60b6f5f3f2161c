// Group snapshots under write load: what the write fence costs, side by side with peers.
//
//   group_bench DIR [VOLUME_MIB] [SNAPSHOTS] [WRITERS]     (defaults: 64 MiB, 20, 2)
//
// A local cluster in DIR with three volumes of VOLUME_MIB random data, grouped; WRITERS
// threads write 4 KiB at random offsets of the members through Service::write_volume
// throughout. Three runs, each taking SNAPSHOTS group snapshots one after another:
//   fence       group snapshots as shipped (writes to the members held while members are taken)
//   no fence    the same member snapshots without the fence (not one instant: the cost floor)
//   idle        group snapshots with no writer (how long the snapshot itself takes)
// and, as the peer an operator would script, `cp --reflink=auto --sparse=always` of the three
// volume files one after another (what the snapshots do underneath, without any metadata).
// Reported: group snapshot latency (submit to COMPLETED), the longest single write and the p99
// write latency seen by the writers, and their throughput.
//
// Then group full copies: a copy set of three copies (one group snapshot, nine thick clones,
// fsynced), submit to the last COMPLETED, three rounds, side by side with `cp --sparse=always`
// of the nine volume files followed by `sync` (the same bytes, made durable).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dmscore/service.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

struct RunResult {
  std::vector<double> snapshot_ms;
  std::vector<double> write_ms;
  double seconds = 0;
};

RunResult run(Service& svc, const std::string& cid, const ConsistencyGroup& g, int snapshots,
              int writers, std::uint64_t volume_bytes, const std::string& tag) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(writers));
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(w) + 1);
      std::string block(4096, static_cast<char>('a' + w));
      while (!stop) {
        const auto& vid = g.volume_ids[rng() % g.volume_ids.size()];
        std::uint64_t off = (rng() % (volume_bytes / 4096)) * 4096;
        auto t0 = Clock::now();
        if (!svc.volumes().write({ClusterId(cid), "p1", vid}, off, block).ok()) std::abort();
        lat[static_cast<std::size_t>(w)].push_back(ms(Clock::now() - t0));
      }
    });
  }
  RunResult r;
  auto start = Clock::now();
  for (int i = 0; i < snapshots; ++i) {
    auto t0 = Clock::now();
    auto c = svc.groups().create_snapshot({g.id, tag + std::to_string(i), ""});
    if (!c.ok()) std::abort();
    auto w = svc.workflows().wait(WorkflowId(c->workflow_id), 600s);
    if (!w.ok() || w->state != WorkflowState::kCompleted) std::abort();
    r.snapshot_ms.push_back(ms(Clock::now() - t0));
    if (!svc.groups().remove_snapshot(CgSnapshotId(c->id)).ok()) std::abort();
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  for (auto& t : threads) t.join();
  for (auto& l : lat) r.write_ms.insert(r.write_ms.end(), l.begin(), l.end());
  return r;
}

void report(const char* name, const RunResult& r) {
  if (r.write_ms.empty()) {
    std::printf("%-10s group snapshot p50 %7.1f ms  p99 %7.1f ms  (no writers)\n", name,
                pct(r.snapshot_ms, 0.5), pct(r.snapshot_ms, 0.99));
    return;
  }
  std::printf(
      "%-10s group snapshot p50 %7.1f ms  p99 %7.1f ms | writes %8.0f/s  p99 %6.2f ms  "
      "longest %7.1f ms\n",
      name, pct(r.snapshot_ms, 0.5), pct(r.snapshot_ms, 0.99),
      static_cast<double>(r.write_ms.size()) / r.seconds, pct(r.write_ms, 0.99),
      *std::max_element(r.write_ms.begin(), r.write_ms.end()));
}

std::unique_ptr<Service> open(const std::string& dir, bool fence) {
  Options o;
  o.data_dir = dir + "/data";
  o.rsa_bits = 2048;
  o.health_check_interval = 0ms;
  o.group_snapshot_write_fence = fence;
  o.log = [](std::string_view) {};
  auto s = Service::open(o);
  if (!s.ok()) {
    std::fprintf(stderr, "open: %s\n", s.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(s).value();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: group_bench DIR [VOLUME_MIB] [SNAPSHOTS] [WRITERS]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const std::uint64_t mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64;
  const int snapshots = argc > 3 ? std::atoi(argv[3]) : 20;
  const int writers = argc > 4 ? std::atoi(argv[4]) : 2;
  const std::uint64_t bytes = mib << 20;
  fs::remove_all(dir);
  fs::create_directories(dir);

  std::string cid;
  ConsistencyGroup g;
  std::vector<std::string> files;
  {
    auto svc = open(dir, true);
    auto a = svc->clusters().attach({"file://" + dir + "/c1", "c1"});
    auto w = a.ok() ? svc->workflows().wait(*a, 60s) : Result<Workflow>(a.status());
    if (!w.ok() || w->state != WorkflowState::kCompleted) return 1;
    cid = w->result.substr(w->result.find("\"clusterId\":\"") + 13, 36);
    CreateGroupRequest req{"db", "", cid, "p1", {}, ""};
    std::mt19937_64 rng(3);
    std::string block(1 << 20, '\0');
    for (const char* name : {"data", "log", "conf"}) {
      auto v = svc->volumes().create(ClusterId(cid), {"p1", name, bytes});
      if (!v.ok()) return 1;
      for (std::uint64_t off = 0; off < bytes; off += block.size()) {
        for (auto& ch : block) ch = static_cast<char>(rng());
        if (!svc->volumes()
                 .write({ClusterId(cid), "p1", v->id}, off, block, off + block.size() == bytes)
                 .ok())
          return 1;
      }
      req.volume_ids.push_back(v->id);
      files.push_back(v->device_path);
    }
    auto made = svc->groups().create(req);
    if (!made.ok()) return 1;
    g = *made;
  }
  std::printf("3 volumes x %llu MiB, %d group snapshots per run, %d writers of 4 KiB\n",
              static_cast<unsigned long long>(mib), snapshots, writers);
  for (bool fence : {true, false}) {
    auto svc = open(dir, fence);
    report(fence ? "fence" : "no fence",
           run(*svc, cid, g, snapshots, writers, bytes, fence ? "f" : "n"));
  }
  {
    auto svc = open(dir, true);
    report("idle", run(*svc, cid, g, snapshots, 0, bytes, "i"));
  }
  std::vector<double> cp_ms;
  for (int i = 0; i < snapshots; ++i) {
    auto t0 = Clock::now();
    for (std::size_t k = 0; k < files.size(); ++k) {
      std::string cmd = "cp --reflink=auto --sparse=always '" + files[k] + "' '" + dir + "/peer-" +
                        std::to_string(k) + "'";
      if (std::system(cmd.c_str()) != 0) return 1;
    }
    cp_ms.push_back(ms(Clock::now() - t0));
    for (std::size_t k = 0; k < files.size(); ++k) fs::remove(dir + "/peer-" + std::to_string(k));
  }
  std::printf("%-10s three files p50 %7.1f ms  p99 %7.1f ms  (cp --reflink=auto --sparse=always)\n",
              "peer cp", pct(cp_ms, 0.5), pct(cp_ms, 0.99));
  // Group full copies against cp of the same nine files.
  std::vector<double> fc_ms, peer_ms;
  {
    auto svc = open(dir, true);
    for (int round = 0; round < 3; ++round) {
      CreateFullCopiesRequest r;
      r.consistency_group_id = g.id;
      r.name = "fc" + std::to_string(round);
      r.count = 3;
      auto t0 = Clock::now();
      auto w = svc->copy_sets().create(r);
      if (!w.ok()) {
        std::fprintf(stderr, "full copies: %s\n", w.status().to_string().c_str());
        return 1;
      }
      for (const auto& cw : w->workflows) {
        auto done = svc->workflows().wait(WorkflowId(cw.workflow_id), 600s);
        if (!done.ok() || done->state != WorkflowState::kCompleted) {
          std::fprintf(stderr, "full copy: %s\n", done.ok() ? done->msg.c_str() : "wait failed");
          return 1;
        }
      }
      fc_ms.push_back(ms(Clock::now() - t0));
      CopySetActionRequest d;
      d.action = CopyAction::kDetach;
      auto detached = svc->copy_sets().act({GroupId(g.id), CopySetId(w->copy_set.id)}, d);
      if (!detached.ok()) {
        std::fprintf(stderr, "detach: %s\n", detached.status().to_string().c_str());
        return 1;
      }
      for (const auto& copy : detached->copy_set.copies)
        for (const auto& v : copy.volumes)
          if (Status s = svc->volumes().remove({ClusterId(cid), "p1", v.volume_id}); !s.ok()) {
            std::fprintf(stderr, "delete: %s\n", s.to_string().c_str());
            return 1;
          }
    }
  }
  for (int round = 0; round < 3; ++round) {
    auto t0 = Clock::now();
    std::string cmd;
    for (int k = 0; k < 3; ++k)
      for (std::size_t f = 0; f < files.size(); ++f)
        cmd += "cp --sparse=always '" + files[f] + "' '" + dir + "/peer-" + std::to_string(k) +
               "-" + std::to_string(f) + "' && ";
    cmd += "sync";
    if (std::system(cmd.c_str()) != 0) return 1;
    peer_ms.push_back(ms(Clock::now() - t0));
    for (int k = 0; k < 3; ++k)
      for (std::size_t f = 0; f < files.size(); ++f)
        fs::remove(dir + "/peer-" + std::to_string(k) + "-" + std::to_string(f));
  }
  const double copied_mib = 9.0 * static_cast<double>(mib);
  std::printf("%-10s 3 copies of the group p50 %7.1f ms  (%6.0f MiB/s)\n", "full copy",
              pct(fc_ms, 0.5), copied_mib / (pct(fc_ms, 0.5) / 1000));
  std::printf("%-10s nine files p50 %7.1f ms  (%6.0f MiB/s)  (cp --sparse=always; sync)\n",
              "peer cp", pct(peer_ms, 0.5), copied_mib / (pct(peer_ms, 0.5) / 1000));
  std::printf("full copy / peer: %.2f\n", pct(fc_ms, 0.5) / pct(peer_ms, 0.5));
  fs::remove_all(dir);
  return 0;
}
