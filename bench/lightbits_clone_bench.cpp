// Thick clone Lightbits -> Lightbits through the model of the data path, against the standard
// tools copying between the same kind of device files, in one run:
//   libdmscore thick clone      two emulated LightOS clusters; the service's real data path:
//                               temporary volume, ACLs, nvme-cli (the model), sysfs, O_DIRECT
//                               device I/O, zero chunks not written to the new thin volume
//   dd bs=4M iflag=direct oflag=direct conv=fsync
//   qemu-img convert -m 8 -W -n --target-is-zero (+ sync), the fresh destination known zero
// The peers copy from a device of a volume holding the snapshot's data to the device of a fresh
// empty volume, both connected through the same model (`nvme connect`, device nodes under the
// bench's dev root). The tools take turns, --runs rounds (median and best); as root the page
// cache is dropped before every run. Each result is compared with the source (cmp).
//
// The clone is timed twice: from submission to COMPLETED (what a user waits: the temporary
// volume, which this model makes by copying the snapshot's data where LightOS shares blocks,
// the connections, the copy, the clean-up), and its copy stage alone (first progress of "copy"
// to the stage after it), the part comparable with the peers' runs.
//
//   lightbits_clone_bench [--dir DIR] [--runs N] [--mib 4096] [--data-percent 30] [--threads 4]
//                         [--chunk-mib 4] [--direct-io on|off]
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dmscore/http/client.hpp"
#include "dmscore/service.hpp"
#include "lightos_emulator_process.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

const std::string kHostNqn = "nqn.2014-08.org.nvmexpress:uuid:0b5c1d7e-9a2f-4e61-8c3d-bench0000001";
std::string g_dir = "/var/tmp/dmscore-lightbits-bench";
bool g_cold = false;

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

void settle() {
  sh("sync");
  if (g_cold) sh("echo 3 > /proc/sys/vm/drop_caches");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One LightOS emulator process and its control API.
struct Emulator {
  dmscore::testing::LightosEmulatorProcess process;
  std::unique_ptr<http::Client> control;

  Emulator(const std::string& dir, const std::string& ca_dir) {
    if (std::string why = process.start(dir, ca_dir, 20); !why.empty()) {
      std::fprintf(stderr, "cannot start the LightOS emulator: %s\n", why.c_str());
      std::exit(1);
    }
    http::ClientOptions o;
    o.endpoints = {process.control_endpoint()};
    control = std::move(http::Client::create(o)).value();
  }
  json::value call(const std::string& method, const std::string& path,
                   const std::string& body = "") {
    auto r = control->request(method, path, body);
    if (!r.ok() || r->status / 100 != 2) {
      std::fprintf(stderr, "control %s %s failed\n", method.c_str(), path.c_str());
      std::exit(1);
    }
    return json::parse(r->body);
  }
  json::object state() { return call("GET", "/control/state").as_object(); }
  std::string data(const std::string& id) {
    return std::string(state().at("data").at("dataDir").as_string()) + "/" + id + ".img";
  }
};

// The device node (under `dev`) that is the data file `data` (the model hard-links them).
std::string device_of(const std::string& dev, const std::string& data) {
  struct stat want {};
  if (::stat(data.c_str(), &want) != 0) return {};
  for (const auto& e : fs::directory_iterator(dev)) {
    struct stat st {};
    if (::stat(e.path().c_str(), &st) == 0 && st.st_ino == want.st_ino) return e.path();
  }
  return {};
}

struct Timing {
  std::string tool;
  std::vector<double> times;
  std::vector<double> copy_times;  // the clone's copy stage
  bool identical = true;
};

}  // namespace

int main(int argc, char** argv) {
  int mib = 4096, pct = 30, runs = 3, threads = 4, chunk_mib = 4;
  bool direct = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--dir") g_dir = argv[i + 1];
    if (a == "--runs") runs = std::stoi(argv[i + 1]);
    if (a == "--mib") mib = std::stoi(argv[i + 1]);
    if (a == "--data-percent") pct = std::stoi(argv[i + 1]);
    if (a == "--threads") threads = std::stoi(argv[i + 1]);
    if (a == "--chunk-mib") chunk_mib = std::stoi(argv[i + 1]);
    if (a == "--direct-io") direct = std::string(argv[i + 1]) == "on";
  }
  g_cold = ::geteuid() == 0;
  fs::remove_all(g_dir);
  fs::create_directories(g_dir);
  const std::string host = g_dir + "/host";
  fs::create_directories(host + "/sys");
  fs::create_directories(host + "/dev");
  std::ofstream(host + "/nvme") << "#!/bin/sh\nexec /usr/bin/python3 " DMSCORE_SOURCE_DIR
                                   "/tests/lightos_emulator/nvme_model.py --sysfs-root "
                                << host << "/sys --dev-root " << host << "/dev \"$@\"\n";
  fs::permissions(host + "/nvme", fs::perms(0755));

  Emulator e1(g_dir + "/emu1", g_dir + "/ca"), e2(g_dir + "/emu2", g_dir + "/ca");
  const std::uint64_t size = static_cast<std::uint64_t>(mib) << 20;
  const std::string size_text = std::to_string(mib) + "mib";

  // The source: a volume another tool filled, and its snapshot.
  auto vol = e1.call("POST", "/control/volumes",
                     R"({"projectName": "bench", "name": "source", "replicaCount": 1, "size": ")" +
                         size_text + "\"}");
  const std::string vol_id(vol.at("UUID").as_string());
  std::string tool = std::string(DMSCORE_SOURCE_DIR) + "/bench/make_test_image.py";
  std::fprintf(stderr, "making a %d MiB image with %d%% data...\n", mib, pct);
  sh("python3 " + tool + " " + e1.data(vol_id) + " " + std::to_string(mib) + " " +
     std::to_string(pct) + " >&2");
  auto snap =
      e1.call("POST", "/control/snapshots",
              json::serialize(json::object{{"sourceVolumeUUID", vol_id}, {"name", "snap"}}));
  const std::string snap_id(snap.at("UUID").as_string());
  const std::string snap_data = e1.data(snap_id);

  // The peers' devices: a volume holding the snapshot's data on cluster 1 and a fresh one on
  // cluster 2, both granted to the host and connected through the model.
  auto acl = json::array{json::value(kHostNqn)};
  auto psrc = e1.call(
      "POST", "/control/volumes",
      json::serialize(json::object{
          {"projectName", "bench"}, {"name", "peer-src"}, {"size", size_text}, {"acl", acl}}));
  auto pdst = e2.call(
      "POST", "/control/volumes",
      json::serialize(json::object{
          {"projectName", "bench"}, {"name", "peer-dst"}, {"size", size_text}, {"acl", acl}}));
  const std::string psrc_data = e1.data(std::string(psrc.at("UUID").as_string()));
  const std::string pdst_data = e2.data(std::string(pdst.at("UUID").as_string()));
  sh("cp --sparse=always " + snap_data + " " + psrc_data);
  for (auto* e : {&e1, &e2}) {
    auto st = e->state();
    sh(host + "/nvme connect -t tcp -a 127.0.0.1 -s " +
       std::to_string(st.at("data").at("fabricPort").to_number<int>()) + " -n " +
       std::string(st.at("cluster").at("subsystemNQN").as_string()) + " -q " + kHostNqn);
  }
  const std::string src_dev = device_of(host + "/dev", psrc_data),
                    dst_dev = device_of(host + "/dev", pdst_data);
  if (src_dev.empty() || dst_dev.empty()) {
    std::fprintf(stderr, "the model did not expose the peers' devices\n");
    return 1;
  }
  auto fresh_dst = [&] {  // an empty thin volume again (same inode: the device node stays)
    ::truncate(pdst_data.c_str(), 0);
    ::truncate(pdst_data.c_str(), static_cast<off_t>(size));
  };

  Options o;
  o.data_dir = g_dir + "/service";
  o.admin_password = "lightbits-bench-admin";
  o.rsa_bits = 2048;
  o.log = [](std::string_view) {};
  o.copy_threads = threads;
  o.device_direct_io = direct;
  o.copy_chunk_bytes = static_cast<std::uint64_t>(chunk_mib) << 20;
  o.cluster_ca_file = e1.process.ca_file();
  o.host_nqn = kHostNqn;
  o.nvme_cli = host + "/nvme";
  o.sysfs_root = host + "/sys";
  o.dev_root = host + "/dev";
  auto svc = Service::open(o);
  if (!svc.ok()) return 1;
  Service& s = **svc;
  std::string lb[2];
  int n = 0;
  for (auto* e : {&e1, &e2}) {
    e->call("POST", "/control/credentials",
            json::serialize(json::object{{"id", "system:" + s.service_credentials().pub_key_id},
                                         {"pem", s.identity().keys()[0].public_pem}}));
    auto id = s.clusters().attach({e->process.endpoint(), n == 0 ? "lb1" : "lb2"});
    auto w = s.workflows().wait(*id, 60s);
    if (!w.ok() || w->state != WorkflowState::kCompleted) return 1;
    lb[n++] = std::string(json::parse(w->result).at("clusterId").as_string());
  }

  Timing dms{"libdmscore thick clone"}, dd{"dd bs=4M iflag=direct oflag=direct"},
      qemu{"qemu-img convert -m 8 -W -n"},
      qemu_zero{"qemu-img convert -m 8 -W -n --target-is-zero"};
  for (int r = 0; r < runs; ++r) {
    {  // libdmscore
      settle();
      ThickCloneRequest req;
      req.src = {snap_id, "bench", lb[0]};
      req.dst = {};
      req.dst.name = "clone-" + std::to_string(r);
      req.dst.cluster_id = lb[1];
      const auto t0 = Clock::now();
      auto id = s.clones().volume(req);
      if (!id.ok()) return 1;
      std::optional<Clock::time_point> c0, c1;
      Progress last_copy;
      Workflow w;
      for (;;) {
        auto g = s.workflows().get(*id);
        if (!g.ok()) return 1;
        w = *g;
        if (!c0 && w.progress.stage == "copy") c0 = Clock::now();
        if (c0 && !c1 && (w.progress.stage != "copy" || is_terminal(w.state))) c1 = Clock::now();
        if (w.progress.stage == "copy") last_copy = w.progress;
        if (is_terminal(w.state)) break;
        std::this_thread::sleep_for(2ms);
      }
      const double total = std::chrono::duration<double>(Clock::now() - t0).count();
      if (w.state != WorkflowState::kCompleted) {
        std::fprintf(stderr, "clone failed: %s\n", w.msg.c_str());
        return 1;
      }
      const std::string vid(json::parse(w.result).at("volumeId").as_string());
      dms.times.push_back(total);
      // The engine's own rate over the whole copy call (its last report): the data movement.
      dms.copy_times.push_back(last_copy.bytes_per_second
                                   ? static_cast<double>(last_copy.bytes_total) /
                                         static_cast<double>(last_copy.bytes_per_second)
                                   : std::chrono::duration<double>(*c1 - *c0).count());
      std::fprintf(stderr, "  copy stage seen for %.2f s\n",
                   std::chrono::duration<double>(*c1 - *c0).count());
      dms.identical &=
          sh("cmp -s -n " + std::to_string(size) + " " + snap_data + " " + e2.data(vid)) == 0;
      (void)s.volumes().remove({ClusterId(lb[1]), "bench", vid});
    }
    for (Timing* peer : {&dd, &qemu, &qemu_zero}) {
      fresh_dst();
      settle();
      const std::string cmd = peer == &dd
                                  ? "dd if=" + src_dev + " of=" + dst_dev +
                                        " bs=4M iflag=direct oflag=direct conv=fsync status=none"
                                  : "qemu-img convert -f raw -O raw -m 8 -W -n " +
                                        std::string(peer == &qemu_zero ? "--target-is-zero " : "") +
                                        src_dev + " " + dst_dev + " && sync " + dst_dev;
      const auto t0 = Clock::now();
      if (sh(cmd) != 0) return 1;
      peer->times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      peer->identical &= sh("cmp -s " + snap_data + " " + dst_dev) == 0;
    }
    std::fprintf(stderr,
                 "round %d: clone %.2f s (copy %.2f s), dd %.2f s, qemu-img %.2f s, with "
                 "--target-is-zero %.2f s\n",
                 r + 1, dms.times.back(), dms.copy_times.back(), dd.times.back(), qemu.times.back(),
                 qemu_zero.times.back());
  }
  // The peers the aim names: dd and qemu-img -m 8 -W (the --target-is-zero row is shown beside).
  const double best_peer = std::min(median(dd.times), median(qemu.times));
  std::printf(
      "| %d MiB, %d%% data, Lightbits -> Lightbits | median s (of %d) | best s | vs better "
      "peer | identical |\n|---|---|---|---|---|\n",
      mib, pct, runs);
  auto row = [&](const std::string& name, const std::vector<double>& t, bool same) {
    std::printf("| %s | %.2f | %.2f | %.2fx | %s |\n", name.c_str(), median(t),
                *std::min_element(t.begin(), t.end()), best_peer / median(t), same ? "yes" : "NO");
  };
  row(dms.tool + ": copy stage", dms.copy_times, dms.identical);
  row(dms.tool + ": submission to COMPLETED", dms.times, dms.identical);
  row(dd.tool, dd.times, dd.identical);
  row(qemu.tool, qemu.times, qemu.identical);
  row(qemu_zero.tool, qemu_zero.times, qemu_zero.identical);
  sh(host + "/nvme disconnect -n " +
     std::string(e1.state().at("cluster").at("subsystemNQN").as_string()) + " >/dev/null");
  sh(host + "/nvme disconnect -n " +
     std::string(e2.state().at("cluster").at("subsystemNQN").as_string()) + " >/dev/null");
  return dms.identical && dd.identical && qemu.identical && qemu_zero.identical ? 0 : 1;
}
