// Thick clone throughput against its peers, in one run, on the same images:
//   libdmscore thick clone (local clusters, copy + fsync, no verify)
//   cp --sparse=always --reflink=never  (+ sync of the destination)
//   qemu-img convert -O raw             (+ sync)
//   qemu-img convert -O raw -m 8 -W     (+ sync)
// Each is run --runs times (median reported) with the source in the page cache; every result is
// checked for byte identity (cmp) and its allocated size compared with the source's.
//
//   clone_bench [--dir DIR] [--runs N] [--sparse-mib 4096] [--dense-mib 2048] [--threads T]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "dmscore/service.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

std::string g_dir = "/var/tmp/dmscore-clone-bench";
int g_runs = 3;

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

std::uint64_t allocated(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

struct Measurement {
  std::string tool;
  double seconds = 0;
  bool identical = false;
  std::uint64_t alloc = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Measurement run_peer(const std::string& tool, const std::string& cmd_fmt, const std::string& src) {
  Measurement r{tool};
  std::vector<double> times;
  std::string dst = g_dir + "/peer.img";
  for (int i = 0; i < g_runs; ++i) {
    fs::remove(dst);
    sh("sync");
    char cmd[1024];
    std::snprintf(cmd, sizeof cmd, cmd_fmt.c_str(), src.c_str(), dst.c_str());
    auto t0 = Clock::now();
    if (sh(std::string(cmd) + " && sync " + dst) != 0) {
      std::fprintf(stderr, "%s failed\n", tool.c_str());
      return r;
    }
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  r.seconds = median(times);
  r.identical = sh("cmp -s " + src + " " + dst) == 0;
  r.alloc = allocated(dst);
  fs::remove(dst);
  return r;
}

struct Dms {
  std::unique_ptr<Service> svc;
  std::string a, b;
};

std::string result_id(const std::string& result, const std::string& key) {
  auto p = result.find("\"" + key + "\":\"");
  return p == std::string::npos ? std::string() : result.substr(p + key.size() + 4, 36);
}

Measurement run_dms(Dms& d, const std::string& image, const std::string& label, int threads) {
  Measurement r{"libdmscore thick clone"};
  // Import the image as a volume and snapshot it (not timed).
  std::uint64_t size = fs::file_size(image);
  auto v = d.svc->create_volume(d.a, {"bench", "src-" + label, size});
  if (!v.ok()) std::abort();
  sh("cp --sparse=always --reflink=never " + image + " " + v->device_path);
  auto sn = d.svc->create_snapshot(d.a, {"bench", "snap-" + label, v->id, ""});
  if (!sn.ok()) std::abort();
  (void)d.svc->delete_volume(d.a, "bench", v->id);
  std::string snap_file = g_dir + "/site-a/data/" + sn->id + ".snap";
  std::vector<double> times;
  std::string last;
  for (int i = 0; i < g_runs; ++i) {
    if (!last.empty()) (void)d.svc->delete_volume(d.b, "bench", last);
    sh("sync");
    ThickCloneRequest req;
    req.src = {sn->id, "bench", d.a};
    req.dst.name = "copy-" + label + "-" + std::to_string(i);
    req.dst.cluster_id = d.b;
    auto t0 = Clock::now();
    auto id = d.svc->thick_clone_volume(req);
    if (!id.ok()) std::abort();
    auto w = d.svc->wait_workflow(*id, 3600s);
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (!w.ok() || w->state != WorkflowState::kCompleted) {
      std::fprintf(stderr, "clone failed: %s\n", w.ok() ? w->msg.c_str() : "");
      std::abort();
    }
    last = result_id(w->result, "volumeId");
  }
  auto dst = d.svc->get_volume(d.b, "bench", last);
  r.seconds = median(times);
  r.identical = sh("cmp -s " + snap_file + " " + dst->device_path) == 0;
  r.alloc = allocated(dst->device_path);
  (void)d.svc->delete_volume(d.b, "bench", last);
  (void)threads;
  return r;
}

void report(const std::string& title, std::uint64_t size, std::uint64_t src_alloc,
            const std::vector<Measurement>& rows) {
  double cp = 0, best_qemu = 1e30;
  for (auto& r : rows) {
    if (r.tool.rfind("cp", 0) == 0) cp = r.seconds;
    if (r.tool.rfind("qemu", 0) == 0) best_qemu = std::min(best_qemu, r.seconds);
  }
  std::printf("\n%s: %.0f MiB logical, %.0f MiB allocated\n\n", title.c_str(), size / 1048576.0,
              src_alloc / 1048576.0);
  std::printf("| tool | seconds (median of %d) | logical GiB/s | vs cp | vs best qemu-img | identical | allocated MiB |\n", g_runs);
  std::printf("|---|---|---|---|---|---|---|\n");
  for (auto& r : rows) {
    std::printf("| %s | %.2f | %.2f | %.2fx | %.2fx | %s | %.0f |\n", r.tool.c_str(), r.seconds,
                size / 1073741824.0 / r.seconds, cp / r.seconds, best_qemu / r.seconds,
                r.identical ? "yes" : "NO", r.alloc / 1048576.0);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int sparse_mib = 4096, dense_mib = 2048, threads = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--dir") g_dir = argv[i + 1];
    else if (a == "--runs") g_runs = std::stoi(argv[i + 1]);
    else if (a == "--sparse-mib") sparse_mib = std::stoi(argv[i + 1]);
    else if (a == "--dense-mib") dense_mib = std::stoi(argv[i + 1]);
    else if (a == "--threads") threads = std::stoi(argv[i + 1]);
  }
  fs::remove_all(g_dir);
  fs::create_directories(g_dir);
  std::string tool = fs::path(argv[0]).parent_path().string() + "/make_test_image.py";
  if (!fs::exists(tool)) tool = std::string(DMSCORE_SOURCE_DIR) + "/bench/make_test_image.py";
  std::string sparse = g_dir + "/sparse.img", dense = g_dir + "/dense.img";
  sh("python3 " + tool + " " + sparse + " " + std::to_string(sparse_mib) + " 30 >&2");
  sh("python3 " + tool + " " + dense + " " + std::to_string(dense_mib) + " 100 >&2");

  Options o;
  o.data_dir = g_dir + "/service";
  o.copy_threads = threads;
  auto svc = Service::open(o);
  if (!svc.ok()) return 1;
  Dms d{std::move(svc).value(), "", ""};
  for (auto* name : {"site-a", "site-b"}) {
    auto id = d.svc->attach_cluster({"file://" + g_dir + "/" + name, name});
    auto w = d.svc->wait_workflow(*id, 60s);
    (name == std::string("site-a") ? d.a : d.b) = result_id(w->result, "clusterId");
  }
  std::printf("clone_bench: %d runs each, copy threads %d, %s\n", g_runs, threads, g_dir.c_str());
  for (auto& [label, image] : std::vector<std::pair<std::string, std::string>>{{"sparse", sparse}, {"dense", dense}}) {
    std::vector<Measurement> rows;
    rows.push_back(run_dms(d, image, label, threads));
    rows.push_back(run_peer("cp --sparse=always --reflink=never", "cp --sparse=always --reflink=never %s %s", image));
    rows.push_back(run_peer("qemu-img convert -O raw", "qemu-img convert -O raw %s %s", image));
    rows.push_back(run_peer("qemu-img convert -O raw -m 8 -W", "qemu-img convert -O raw -m 8 -W %s %s", image));
    report(label + " source (" + image + ")", fs::file_size(image), allocated(image), rows);
  }
  d.svc.reset();
  fs::remove_all(g_dir);
  return 0;
}
