// Thick clone throughput against its peers, in one run, on the same images:
//   libdmscore thick clone (local clusters, copy + fsync, no verify)
//   cp --sparse=always --reflink=never  (+ sync of the destination)
//   qemu-img convert -O raw             (+ sync)
//   qemu-img convert -O raw -m 8 -W     (+ sync)
// The tools take turns, --runs rounds (median and best reported); as root the page cache is
// dropped before every run so each reads its source from disk. Every result is checked for byte
// identity (cmp) and its allocated size compared with the source's.
//
//   clone_bench [--dir DIR] [--runs N] [--sparse-mib 4096] [--dense-mib 2048] [--threads T]
//               [--chunk-mib C]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dmscore/http/api_client.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

std::string g_dir = "/var/tmp/dmscore-clone-bench";
int g_runs = 5;

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

std::uint64_t allocated(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

struct Measurement {
  std::string tool;
  std::vector<double> times;
  double seconds = 0;  // median
  double best = 0;
  bool identical = false;
  std::uint64_t alloc = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Flushes dirty pages and, when allowed (root), empties the page cache so that every timed run
// reads its source from the disk.
bool g_cold = false;
void settle() {
  sh("sync");
  if (g_cold) sh("echo 3 > /proc/sys/vm/drop_caches");
}

std::string result_id(const std::string& result, const std::string& key) {
  auto p = result.find("\"" + key + "\":\"");
  return p == std::string::npos ? std::string() : result.substr(p + key.size() + 4, 36);
}

struct Dms {
  std::unique_ptr<Service> svc;
  std::string a, b;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<http::ApiClient> api;
};

// One tool: prepare() sets up, run() is timed (it must include the fsync), check() returns the
// destination path to compare, cleanup() removes it.
struct Tool {
  std::string name;
  std::function<bool()> run;
  std::function<std::string()> output;
  std::function<void()> cleanup;
};

Tool peer(const std::string& name, const std::string& cmd_fmt, const std::string& src) {
  std::string dst = g_dir + "/peer.img";
  char cmd[1024];
  std::snprintf(cmd, sizeof cmd, cmd_fmt.c_str(), src.c_str(), dst.c_str());
  std::string full = std::string(cmd) + " && sync " + dst;
  return {name, [full] { return sh(full) == 0; }, [dst] { return dst; },
          [dst] { fs::remove(dst); }};
}

Tool dms_tool(Dms& d, const std::string& image, const std::string& label, std::string& snap_file) {
  std::uint64_t size = fs::file_size(image);
  auto v = d.svc->volumes().create(ClusterId(d.a), {"bench", "src-" + label, size});
  if (!v.ok()) std::abort();
  sh("cp --sparse=always --reflink=never " + image + " " + v->device_path);
  auto sn = d.svc->volumes().create_snapshot(ClusterId(d.a), {"bench", "snap-" + label, v->id, ""});
  if (!sn.ok()) std::abort();
  (void)d.svc->volumes().remove({ClusterId(d.a), "bench", v->id});
  snap_file = sn->id;
  auto last = std::make_shared<std::string>();
  auto n = std::make_shared<int>(0);
  std::string sid = sn->id;
  return {"libdmscore thick clone",
          [&d, sid, label, last, n] {
            ThickCloneRequest req;
            req.src = {sid, "bench", d.a};
            req.dst.name = "copy-" + label + "-" + std::to_string((*n)++);
            req.dst.cluster_id = d.b;
            auto id = d.svc->clones().volume(req);
            if (!id.ok()) return false;
            auto w = d.svc->workflows().wait(*id, 3600s);
            if (!w.ok() || w->state != WorkflowState::kCompleted) return false;
            *last = result_id(w->result, "volumeId");
            return true;
          },
          [&d, last] {
            return d.svc->volumes().get({ClusterId(d.b), "bench", *last})->device_path;
          },
          [&d, last] {
            (void)d.svc->volumes().remove({ClusterId(d.b), "bench", *last});
          }};
}

// The same clone through the HTTP API, as dmsctl clone --wait does it: POST the request, then
// follow the workflow (ApiClient::wait_workflow, 500 ms progress interval) to COMPLETED.
Tool http_tool(Dms& d, const std::string& snap_id, const std::string& label) {
  auto last = std::make_shared<std::string>();
  auto n = std::make_shared<int>(0);
  return {"libdmscore thick clone via HTTP",
          [&d, snap_id, label, last, n] {
            std::string body = "{\"src\":{\"snapId\":\"" + snap_id +
                               "\",\"projectName\":\"bench\",\"clusterId\":\"" + d.a +
                               "\"},\"dst\":{\"name\":\"http-" + label + "-" +
                               std::to_string((*n)++) + "\",\"clusterId\":\"" + d.b + "\"}}";
            auto r = d.api->thick_clone_volume(body);
            if (!r.ok()) return false;
            std::string id = result_id(*r, "workflowId");
            auto w = d.api->wait_workflow(id, 3600s, 500ms, {});
            if (!w.ok() || w->find("\"state\":\"COMPLETED\"") == std::string::npos) return false;
            *last = result_id(*w, "volumeId");
            return true;
          },
          [&d, last] {
            return d.svc->volumes().get({ClusterId(d.b), "bench", *last})->device_path;
          },
          [&d, last] {
            (void)d.svc->volumes().remove({ClusterId(d.b), "bench", *last});
          }};
}

std::vector<Measurement> measure(std::vector<Tool>& tools, const std::string& src) {
  std::vector<Measurement> out(tools.size());
  for (std::size_t t = 0; t < tools.size(); ++t) out[t].tool = tools[t].name;
  // Round-robin, so that drift in the machine's speed spreads over every tool alike.
  for (int r = 0; r < g_runs; ++r) {
    for (std::size_t t = 0; t < tools.size(); ++t) {
      settle();
      auto t0 = Clock::now();
      if (!tools[t].run()) {
        std::fprintf(stderr, "%s failed\n", tools[t].name.c_str());
        std::exit(1);
      }
      out[t].times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      if (r == g_runs - 1) {
        std::string dst = tools[t].output();
        out[t].identical = sh("cmp -s " + src + " " + dst) == 0;
        out[t].alloc = allocated(dst);
      }
      tools[t].cleanup();
    }
  }
  for (auto& m : out) {
    m.seconds = median(m.times);
    m.best = *std::min_element(m.times.begin(), m.times.end());
  }
  return out;
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
  std::printf(
      "| tool | median s (of %d) | best s | logical GiB/s (median) | vs cp | vs best qemu-img | "
      "identical | allocated MiB |\n",
      g_runs);
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (auto& r : rows) {
    std::printf("| %s | %.2f | %.2f | %.2f | %.2fx | %.2fx | %s | %.0f |\n", r.tool.c_str(),
                r.seconds, r.best, size / 1073741824.0 / r.seconds, cp / r.seconds,
                best_qemu / r.seconds, r.identical ? "yes" : "NO", r.alloc / 1048576.0);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int sparse_mib = 4096, dense_mib = 2048, threads = 4, chunk_mib = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--dir")
      g_dir = argv[i + 1];
    else if (a == "--runs")
      g_runs = std::stoi(argv[i + 1]);
    else if (a == "--sparse-mib")
      sparse_mib = std::stoi(argv[i + 1]);
    else if (a == "--dense-mib")
      dense_mib = std::stoi(argv[i + 1]);
    else if (a == "--threads")
      threads = std::stoi(argv[i + 1]);
    else if (a == "--chunk-mib")
      chunk_mib = std::stoi(argv[i + 1]);
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
  o.copy_chunk_bytes = static_cast<std::uint64_t>(chunk_mib) << 20;
  o.admin_password = "clone-bench-admin";
  o.log = [](std::string_view) {};
  auto svc = Service::open(o);
  if (!svc.ok()) return 1;
  Dms d{std::move(svc).value(), "", ""};
  for (auto* name : {"site-a", "site-b"}) {
    auto id = d.svc->clusters().attach({"file://" + g_dir + "/" + name, name});
    auto w = d.svc->workflows().wait(*id, 60s);
    (name == std::string("site-a") ? d.a : d.b) = result_id(w->result, "clusterId");
  }
  {
    http::ServerOptions so;
    so.port = 0;
    auto srv = http::Server::create(*d.svc, so);
    if (!srv.ok() || !(*srv)->start().ok()) return 1;
    d.server = std::move(srv).value();
    auto token = d.svc->auth().login("admin", "clone-bench-admin", "127.0.0.1");
    http::ClientOptions co;
    co.endpoints = {"http://127.0.0.1:" + std::to_string(d.server->port())};
    co.request_timeout = 60s;
    auto api = http::ApiClient::create(co, token.ok() ? token->id_token : "");
    if (!token.ok() || !api.ok()) return 1;
    d.api = std::move(api).value();
  }
  g_cold = ::geteuid() == 0 && sh("sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null") == 0;
  std::printf("clone_bench: %d interleaved runs per tool, copy threads %d, chunk %d MiB, %s, %s\n",
              g_runs, threads, chunk_mib,
              g_cold ? "page cache dropped before every run" : "warm page cache", g_dir.c_str());
  for (auto& [label, image] :
       std::vector<std::pair<std::string, std::string>>{{"sparse", sparse}, {"dense", dense}}) {
    std::string snap_file;
    std::vector<Tool> tools;
    tools.push_back(dms_tool(d, image, label, snap_file));
    tools.push_back(http_tool(d, snap_file, label));
    tools.push_back(peer("cp --sparse=always --reflink=never",
                         "cp --sparse=always --reflink=never %s %s", image));
    tools.push_back(peer("qemu-img convert -O raw", "qemu-img convert -O raw %s %s", image));
    tools.push_back(
        peer("qemu-img convert -O raw -m 8 -W", "qemu-img convert -O raw -m 8 -W %s %s", image));
    auto rows = measure(tools, image);
    report(label + " source", fs::file_size(image), allocated(image), rows);
  }
  d.api.reset();
  d.server.reset();
  d.svc.reset();
  fs::remove_all(g_dir);
  return 0;
}
