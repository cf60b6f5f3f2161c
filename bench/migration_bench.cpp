// Source migration throughput against cp, in one run, on the clone benchmark's image:
//   full replication: `dmsctl agent` streams a 4 GiB image (30% data) over HTTPS to
//     `dmsctl serve`, which writes it durably into a local cluster's volume; timed from the
//     migration's start until the service has acknowledged the whole disk;
//   cp --sparse=always --reflink=never of the same image on the same disk (+ sync);
//   incremental sync: 1% of the image's 1 MiB extents rewritten, then a sync; its time and the
//     bytes it sent.
// They take turns, --runs rounds (median and best). As root the page cache is dropped before
// every replication and cp, so each reads its source from the disk; the sync runs warm (the
// agent of a running machine reads what the machine just wrote), or cold with --cold-sync.
// Every replicated volume is compared with the image (cmp).
//
//   migration_bench [--dir DIR] [--runs N] [--mib 4096] [--pct 30] [--cold-sync]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dmscore/http/client.hpp"
#include "process.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

std::string g_dir = "/var/tmp/dmscore-migration-bench";
int g_runs = 3;
int g_mib = 4096;
int g_pct = 30;
bool g_cold = false, g_cold_sync = false;

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

void settle(bool drop) {
  sh("sync");
  if (drop && g_cold) sh("echo 3 > /proc/sys/vm/drop_caches");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "migration_bench: %s\n", why.c_str());
  std::exit(1);
}

class Bench {
 public:
  void start() {
    fs::create_directories(g_dir);
    const std::string cert = g_dir + "/cert.pem", key = g_dir + "/key.pem";
    if (sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
           "-addext subjectAltName=IP:127.0.0.1 -keyout " +
           key + " -out " + cert + " 2>/dev/null") != 0)
      die("openssl could not make a certificate");
    port_ = 20000 + static_cast<int>(::getpid() % 20000);
    service_ = dmscore::testing::Process(
        {DMSCORE_DMSCTL, "serve", "--listen", "127.0.0.1:" + std::to_string(port_), "--data-dir",
         g_dir + "/data", "--tls-cert", cert, "--tls-key", key},
        {"DMS_ADMIN_PASSWORD=bench-admin-password", "PATH=/usr/bin:/bin"}, g_dir + "/serve.log");
    dmscore::http::ClientOptions o;
    o.endpoints = {endpoint()};
    o.ca_file = cert;
    o.request_timeout = 600s;
    client_ = std::move(dmscore::http::Client::create(o)).value();
    for (int i = 0; i < 400 && !client_->request("GET", "/readyz").ok(); ++i)
      std::this_thread::sleep_for(50ms);
    admin_ = login("admin", "bench-admin-password");
    call("POST", "/api/v1/users",
         R"({"username":"agent1","role":"agent","password":"agent-password-1"})");
    agent_token_ = login("agent1", "agent-password-1");
    auto wf = call("POST", "/api/v1/clusters",
                   json::serialize(json::object{{"apiEndpoint", "file://" + g_dir + "/c1"}}));
    const std::string id(wf.at("workflowId").as_string());
    for (;;) {
      auto w = call("GET", "/api/v1/workflows/" + id).at("workflow");
      if (w.at("state") == "COMPLETED") {
        cluster_ = std::string(w.at("result").at("clusterId").as_string());
        break;
      }
      if (w.at("state") == "FAILED") die("attach failed");
      std::this_thread::sleep_for(50ms);
    }
    ca_ = cert;
  }

  void start_agent(const std::string& image) {
    fs::create_directories(g_dir + "/home");
    agent_ = dmscore::testing::Process(
        {DMSCORE_DMSCTL, "agent", "--endpoint", endpoint(), "--ca-cert", ca_, "--disk",
         "d=" + image, "--root", std::string(DMSCORE_SOURCE_DIR) + "/tests/data/agent_root",
         "--poll-interval-ms", "50"},
        {"HOME=" + g_dir + "/home", "DMS_TOKEN=" + agent_token_, "PATH=/usr/bin:/bin"},
        g_dir + "/agent.log");
    for (int i = 0; i < 400; ++i) {
      auto page = call("GET", "/api/v1/source-servers");
      if (!page.at("sourceServers").as_array().empty()) {
        source_ = std::string(page.at("sourceServers").as_array()[0].at("id").as_string());
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    die("the agent did not register");
  }

  // Starts a migration (syncing) and waits for the full replication: its seconds.
  double replicate() {
    const auto t0 = Clock::now();
    auto r = call("POST", "/api/v1/source-servers/" + source_ + "/migrations",
                  json::serialize(json::object{{"clusterId", cluster_}, {"syncing", true}}));
    mid_ = std::string(r.at("workflowId").as_string());
    await_pass(0);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

  // Asks a sync and waits for it: its seconds, and the payload bytes it sent.
  std::pair<double, std::uint64_t> sync() {
    const auto t0 = Clock::now();
    call("POST", "/api/v1/source-servers/" + source_ + "/sync", "{}");
    auto m = await_pass(1);
    std::uint64_t sent = 0;
    for (const auto& d : m.at("disks").as_array())
      sent += std::stoull(std::string(d.at("passBytes").as_string()));
    return {std::chrono::duration<double>(Clock::now() - t0).count(), sent};
  }

  std::string volume_path() {
    auto m = call("GET", "/api/v1/source-servers/" + source_ + "/migration").at("migration");
    return g_dir + "/c1/data/" +
           std::string(m.at("disks").as_array()[0].at("volumeId").as_string()) + ".vol";
  }

  // Cancels the migration: its volume goes.
  void drop() {
    call("POST", "/api/v1/workflows/" + mid_ + "/cancel", "{}");
    for (int i = 0; i < 600; ++i) {
      auto w = call("GET", "/api/v1/workflows/" + mid_).at("workflow");
      if (w.at("state") == "CANCELLED") return;
      std::this_thread::sleep_for(50ms);
    }
    die("the migration did not end");
  }

  void stop() {
    agent_.stop(SIGTERM);
    service_.stop(SIGTERM);
  }

 private:
  std::string endpoint() const { return "https://127.0.0.1:" + std::to_string(port_); }

  json::value await_pass(std::int64_t pass) {
    for (;;) {
      auto m = call("GET", "/api/v1/source-servers/" + source_ + "/migration").at("migration");
      bool done = m.at("pass").to_number<std::int64_t>() == pass;
      for (const auto& d : m.at("disks").as_array())
        done = done && d.at("pass").to_number<std::int64_t>() == pass &&
               d.at("ackedOffset").as_string() == d.at("size").as_string();
      if (done) return m;
      if (!m.at("error").as_string().empty()) die(std::string(m.at("error").as_string()));
      std::this_thread::sleep_for(5ms);
    }
  }

  json::value call(const std::string& method, const std::string& target,
                   const std::string& body = "") {
    auto r = client_->request(method, target, body, {{"Authorization", "Bearer " + admin_}});
    if (!r.ok()) die(method + " " + target + ": " + r.status().to_string());
    if (r->status != 200) die(method + " " + target + ": " + r->body);
    return json::parse(r->body);
  }

  std::string login(const std::string& user, const std::string& password) {
    auto r =
        client_->request("POST", "/api/v1/login",
                         json::serialize(json::object{{"username", user}, {"password", password}}));
    if (!r.ok() || r->status != 200) die("login " + user);
    return std::string(json::parse(r->body).at("idToken").as_string());
  }

  int port_ = 0;
  std::string admin_, agent_token_, cluster_, source_, mid_, ca_;
  std::unique_ptr<dmscore::http::Client> client_;
  dmscore::testing::Process service_, agent_;
};

// Rewrites 1% of the image's 1 MiB extents (holes included) with new random bytes.
void change_one_percent(const std::string& image, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> all(static_cast<std::size_t>(g_mib));
  for (int i = 0; i < g_mib; ++i) all[static_cast<std::size_t>(i)] = i;
  std::shuffle(all.begin(), all.end(), rng);
  std::FILE* f = std::fopen(image.c_str(), "r+b");
  if (!f) die("open " + image);
  std::string buf(1 << 20, '\0');
  for (int k = 0; k < g_mib / 100; ++k) {
    for (std::size_t i = 0; i < buf.size(); i += 8) {
      const std::uint64_t v = rng();
      std::memcpy(buf.data() + i, &v, 8);
    }
    std::fseek(f, static_cast<long>(all[static_cast<std::size_t>(k)]) << 20, SEEK_SET);
    std::fwrite(buf.data(), 1, buf.size(), f);
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc)
      g_dir = argv[++i];
    else if (a == "--runs" && i + 1 < argc)
      g_runs = std::atoi(argv[++i]);
    else if (a == "--mib" && i + 1 < argc)
      g_mib = std::atoi(argv[++i]);
    else if (a == "--pct" && i + 1 < argc)
      g_pct = std::atoi(argv[++i]);
    else if (a == "--cold-sync")
      g_cold_sync = true;
    else {
      die("usage: migration_bench [--dir DIR] [--runs N] [--mib 4096] [--pct 30] [--cold-sync]");
    }
  }
  g_cold = ::geteuid() == 0 && sh("sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null") == 0;
  fs::remove_all(g_dir);
  fs::create_directories(g_dir);
  const std::string image = g_dir + "/image.img";
  std::string tool = std::string(DMSCORE_SOURCE_DIR) + "/bench/make_test_image.py";
  if (sh("python3 " + tool + " " + image + " " + std::to_string(g_mib) + " " +
         std::to_string(g_pct) + " >/dev/null") != 0)
    die("cannot make the image");
  Bench b;
  b.start();
  b.start_agent(image);
  const double disk = static_cast<double>(g_mib) * (1 << 20);
  std::vector<double> cp, rep, sync_warm;
  std::vector<std::uint64_t> sent_warm;
  bool identical = true;
  for (int run = 0; run < g_runs; ++run) {
    settle(true);
    auto t0 = Clock::now();
    if (sh("cp --sparse=always --reflink=never " + image + " " + g_dir + "/cp.img && sync " +
           g_dir + "/cp.img") != 0)
      die("cp failed");
    cp.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    fs::remove(g_dir + "/cp.img");
    settle(true);
    rep.push_back(b.replicate());
    identical = identical && sh("cmp -s " + image + " " + b.volume_path()) == 0;
    change_one_percent(image, static_cast<unsigned>(run + 1));
    settle(g_cold_sync);
    auto [s, bytes] = b.sync();
    sync_warm.push_back(s);
    sent_warm.push_back(bytes);
    identical = identical && sh("cmp -s " + image + " " + b.volume_path()) == 0;
    b.drop();
    std::fprintf(stderr, "run %d: cp %.2f s, replication %.2f s, sync %.3f s (%.1f MiB sent)\n",
                 run + 1, cp.back(), rep.back(), s, static_cast<double>(bytes) / (1 << 20));
  }
  b.stop();
  const double rep_m = median(rep), cp_m = median(cp), sync_m = median(sync_warm);
  std::printf("image: %d MiB, %d%% data; %d runs%s%s; output identical: %s\n\n", g_mib, g_pct,
              g_runs, g_cold ? ", page cache dropped before replication and cp" : "",
              g_cold && g_cold_sync ? " and sync" : "", identical ? "yes" : "NO");
  std::printf("| | median s | best s | vs cp (throughput) |\n|---|---|---|---|\n");
  std::printf("| cp --sparse=always --reflink=never + sync | %.2f | %.2f | 1.00x |\n", cp_m,
              best(cp));
  std::printf("| full replication, dmsctl agent over HTTPS | %.2f | %.2f | %.2fx |\n", rep_m,
              best(rep), cp_m / rep_m);
  std::printf(
      "| incremental sync after 1%% of extents changed | %.3f | %.3f | %.3f of the replication "
      "|\n",
      sync_m, best(sync_warm), sync_m / rep_m);
  std::uint64_t max_sent = *std::max_element(sent_warm.begin(), sent_warm.end());
  std::printf("\nsync sent at most %.1f MiB = %.2f%% of the disk\n",
              static_cast<double>(max_sent) / (1 << 20), 100.0 * max_sent / disk);
  return identical ? 0 : 1;
}
