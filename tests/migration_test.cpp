// Migrations of source servers over real HTTP on 127.0.0.1: a real `dmsctl agent` process
// streams two image disks into a local cluster, syncs what changed and cuts over; the data
// stream's refusals (malformed, stale, corrupt, oversized) that change nothing; SMS's command
// channel through a migration's life; stop, start, failure and cancel; and bad requests.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "dmscore/http/api_client.hpp"
#include "dmscore/http/client.hpp"
#include "dmscore/http/server.hpp"
#include "dmscore/migrations.hpp"
#include "dmscore/service.hpp"
#include "process.hpp"
#include "test_files.hpp"
#include "test_support.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

constexpr std::uint64_t kMiB = 1u << 20;

using Reply = dmscore::testing::HttpReply;

// Writes `slots` 1 MiB slots of random bytes (seeded) into `path` (created sparse, `mib` MiB).
void write_slots(const std::string& path, std::uint64_t mib,
                 const std::vector<std::uint64_t>& slots, unsigned seed) {
  std::mt19937_64 rng(seed);
  dmscore::testing::write_random_slots(path, mib, slots, rng);
}

// `pct` % of the 1 MiB slots of a `mib` MiB image, picked with `seed`, from slot `first` on.
std::vector<std::uint64_t> pick_slots(std::uint64_t mib, int pct, unsigned seed,
                                      std::uint64_t first = 0) {
  std::vector<std::uint64_t> all;
  for (std::uint64_t i = first; i < mib; ++i) all.push_back(i);
  std::mt19937 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(all.size() * static_cast<std::size_t>(pct) / 100);
  std::sort(all.begin(), all.end());
  return all;
}

// An MBR with two primary partitions: 1 MiB..32 MiB and 32 MiB..the end.
void write_mbr(const std::string& path, std::uint64_t mib) {
  std::string mbr(512, '\0');
  auto entry = [&](int i, std::uint32_t lba, std::uint32_t sectors) {
    char* e = mbr.data() + 446 + 16 * i;
    e[4] = static_cast<char>(0x83);
    std::memcpy(e + 8, &lba, 4);
    std::memcpy(e + 12, &sectors, 4);
  };
  entry(0, 2048, 31 * 2048);
  entry(1, 32 * 2048, static_cast<std::uint32_t>((mib - 32) * 2048));
  mbr[510] = 0x55;
  mbr[511] = static_cast<char>(0xaa);
  const int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, mbr.data(), 512, 0) == 512);
  REQUIRE(::fsync(fd) == 0);
  ::close(fd);
}

struct Fixture : dmscore::testing::ServiceHarness {
  std::unique_ptr<http::Server> server;
  std::unique_ptr<http::Client> client;
  std::string admin, agent, viewer, cluster;

  Fixture() {
    Options o;
    o.admin_password = "migration-admin-pw";
    open_service(o);
    const auto tokens = dmscore::testing::role_tokens(*svc, "migration-admin-pw");
    admin = tokens.admin;
    agent = tokens.agent;
    viewer = tokens.viewer;
    server = dmscore::testing::start_server(*svc);
    client = dmscore::testing::local_client(*server);
    cluster = attach("c1");
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(server->port()); }

  // `dmsctl agent` with the agent user's token, the fixture tree and `args`, logging to
  // tmp/agent.log.
  dmscore::testing::Process start_agent(const std::vector<std::string>& args) {
    std::filesystem::create_directories(tmp / "home");
    std::vector<std::string> argv = {
        DMSCORE_DMSCTL, "agent",  "--endpoint",
        endpoint(),     "--root", std::string(DMSCORE_SOURCE_DIR) + "/tests/data/agent_root"};
    argv.insert(argv.end(), args.begin(), args.end());
    return dmscore::testing::Process(
        argv, {"HOME=" + (tmp / "home"), "DMS_TOKEN=" + agent, "PATH=/usr/bin:/bin"},
        tmp / "agent.log");
  }

  // The id of the first source an agent registered.
  std::string await_source() {
    for (int i = 0; i < 500; ++i) {
      auto page = svc->sources().list({});
      REQUIRE(page.ok());
      if (!page->sources.empty()) return page->sources[0].id;
      std::this_thread::sleep_for(20ms);
    }
    FAIL("no source registered: " << dmscore::testing::read_file(tmp / "agent.log"));
    return {};
  }

  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             const std::string& token = "", const char* type = nullptr) {
    http::Headers h{{"Authorization", "Bearer " + (token.empty() ? admin : token)}};
    if (type) h.emplace_back("Content-Type", type);
    auto r = client->request(method, target, body, h);
    INFO(method << " " << target << ": " << r.status().to_string());
    REQUIRE(r.ok());
    return {r->status, r->body};
  }

  // A source with one disk "/dev/vda" of `size` bytes, reported by the agent user.
  std::string register_source(const std::string& name, std::uint64_t size, const std::string& mac) {
    json::object body = json::parse(R"({"os_type":"LINUX","os_version":"DEBIAN12_64BIT",
      "agent_version":"1.0","ip":"10.0.0.9","firmware":"BIOS","boot_loader":"GRUB",
      "has_rsync":true,"has_tc":true,"paravirtualization":false,"raw_devices":"",
      "btrfs_list":[],"volume_groups":[],
      "networks":[{"mac":"","mtu":1500}]})")
                            .as_object();
    body["name"] = name;
    body["networks"].as_array()[0].as_object()["mac"] = mac;
    body["disks"] = json::array{json::object{{"name", "/dev/vda"},
                                             {"size", size},
                                             {"partition_style", "MBR"},
                                             {"device_use", "BOOT"},
                                             {"physical_volumes", json::array()}}};
    auto r = call("POST", "/v3/sources", json::serialize(body), agent);
    INFO(r.body);
    REQUIRE(r.status == 200);
    return std::string(r.json().at("id").as_string());
  }

  std::string start(const std::string& source, bool syncing) {
    auto r = call("POST", "/api/v1/source-servers/" + source + "/migrations",
                  json::serialize(json::object{{"clusterId", cluster}, {"syncing", syncing}}));
    INFO(r.body);
    REQUIRE(r.status == 200);
    return std::string(r.json().at("workflowId").as_string());
  }

  SourceMigration migration(const std::string& id) {
    auto m = svc->migrations().get(id);
    INFO(m.status().to_string());
    REQUIRE(m.ok());
    return *m;
  }

  // Waits until `pred` holds for the migration.
  SourceMigration await(const std::string& id,
                        const std::function<bool(const SourceMigration&)>& pred,
                        std::chrono::milliseconds within = 60s) {
    const auto until = std::chrono::steady_clock::now() + within;
    for (;;) {
      SourceMigration m = migration(id);
      if (pred(m)) return m;
      INFO("stage " << m.stage << " state " << m.state << " pass " << m.pass << " error "
                    << m.error);
      REQUIRE(std::chrono::steady_clock::now() < until);
      std::this_thread::sleep_for(20ms);
    }
  }

  static bool pass_done(const SourceMigration& m, std::int64_t pass) {
    if (m.pass != pass) return false;
    for (const auto& d : m.disks)
      if (d.pass != pass || d.acked != d.size) return false;
    return true;
  }

  std::string volume_path(const std::string& volume_id) {
    auto v = svc->volumes().get({ClusterId(cluster), "default", volume_id});
    INFO(v.status().to_string());
    REQUIRE(v.ok());
    return v->device_path;
  }

  // The first `size` bytes of the volume equal the file's, and the rest reads as zeros.
  void check_same(const std::string& volume_id, const std::string& file) {
    const std::string want = dmscore::testing::read_file(file);
    const std::string got = dmscore::testing::read_file(volume_path(volume_id));
    REQUIRE(got.size() >= want.size());
    CHECK((got.compare(0, want.size(), want) == 0));
    CHECK(got.find_first_not_of('\0', want.size()) == std::string::npos);
  }
};

// The status of a request that announces a `length`-byte body but sends only its headers (the
// server must refuse before reading a body beyond its limit).
int announced_body_status(int port, const std::string& target, const std::string& token,
                          std::uint64_t length) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  const std::string req = "POST " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          token + "\r\nContent-Type: application/octet-stream\r\n" +
                          "Content-Length: " + std::to_string(length) + "\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  char buf[256] = {};
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n < 12) return -1;
  return std::atoi(buf + 9);
}

std::string disk_base(const std::string& source, const std::string& mid, const std::string& disk) {
  return "/api/v1/source-servers/" + source + "/migrations/" + mid + "/disks/" +
         http::url_encode(disk);
}

// One chunk's frame: header and payload.
std::string frame(std::uint64_t offset, const std::string& data) {
  return chunk_header(offset, static_cast<std::uint32_t>(data.size()), 0, chunk_checksum(data)) +
         data;
}

}  // namespace

#ifdef DMSCORE_DMSCTL
TEST_CASE("Migrations: an agent streams two image disks, syncs 1% changed, cuts over, identical") {
  Fixture f;
  const std::string sys = f.tmp / "sys.img", data = f.tmp / "data.img";
  write_slots(sys, 64, pick_slots(64, 40, 1, 1), 11);
  write_mbr(sys, 64);
  const auto data_slots = pick_slots(256, 30, 2);
  write_slots(data, 256, data_slots, 12);
  auto agent = f.start_agent({"--disk", "sys=" + sys, "--disk", "data=" + data, "--name", "web-01",
                              "--poll-interval-ms", "100", "--exit-after-cutover",
                              "--pre-cutover-hook", "touch " + (f.tmp / "quiesced")});
  const std::string source = f.await_source();
  // The agent reported the image's partition table.
  {
    auto r = f.call("GET", "/v3/sources/" + source);
    REQUIRE(r.status == 200);
    const json::array disks = r.json().at("disks").as_array();
    REQUIRE(disks.size() == 2);
    CHECK(disks[0].at("name") == "sys");
    CHECK(disks[0].at("partition_style") == "MBR");
    CHECK(disks[0].at("physical_volumes").as_array().size() == 2);
    CHECK(disks[1].at("size").to_number<std::uint64_t>() == 256 * kMiB);
    CHECK(r.json().at("state") == "waiting");
  }
  const std::string mid = f.start(source, true);
  SourceMigration m = f.await(mid, [](const SourceMigration& m) {
    return m.stage == "syncing" && Fixture::pass_done(m, 0);
  });
  REQUIRE(m.disks.size() == 2);
  f.check_same(m.disks[0].volume_id, sys);
  f.check_same(m.disks[1].volume_id, data);
  // Holes and zero chunks were not sent: only the data slots.
  CHECK(m.disks[1].total_bytes == data_slots.size() * kMiB);
  CHECK(f.svc->sources().get(source)->state == "syncing");

  // 1% of the data disk's 1 MiB extents change; one data chunk becomes zeros.
  write_slots(data, 256, {data_slots[3], data_slots[40], data_slots[70]}, 99);
  {
    const int fd = ::open(data.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    const std::string zeros(kMiB, '\0');
    REQUIRE(::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(data_slots[10] * kMiB)) ==
            static_cast<ssize_t>(kMiB));
    ::close(fd);
  }
  REQUIRE(f.call("POST", "/api/v1/source-servers/" + source + "/sync", "{}").status == 200);
  m = f.await(mid, [](const SourceMigration& m) { return Fixture::pass_done(m, 1); });
  CHECK(m.disks[0].pass_bytes == 0);
  CHECK(m.disks[1].pass_bytes == 3 * kMiB);
  f.check_same(m.disks[1].volume_id, data);

  // The cutover: a last pass after the pre-cutover hook, then Available volumes.
  write_slots(sys, 64, {5}, 7);
  REQUIRE(f.call("POST", "/api/v1/source-servers/" + source + "/cutover", "{}").status == 200);
  Workflow w = f.wait(mid);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  CHECK(std::filesystem::exists(f.tmp / "quiesced"));
  m = f.migration(mid);
  CHECK(m.state == "MIGRATE_SUCCESS");
  CHECK(m.stage == "cutovered");
  CHECK(m.disks[0].pass_bytes == kMiB);
  for (std::size_t i = 0; i < 2; ++i) {
    auto v = f.svc->volumes().get({ClusterId(f.cluster), "default", m.disks[i].volume_id});
    REQUIRE(v.ok());
    CHECK(v->state == VolumeState::kAvailable);
  }
  f.check_same(m.disks[0].volume_id, sys);
  f.check_same(m.disks[1].volume_id, data);
  auto s = f.svc->sources().get(source);
  REQUIRE(s.ok());
  CHECK(s->state == "finished");
  CHECK(s->migration_cycle == "cutovered");
  CHECK(s->replicate_size == s->total_size);
  auto shown = f.call("GET", "/v3/sources/" + source);
  CHECK(shown.json().at("current_task").at("state") == "MIGRATE_SUCCESS");
  CHECK(shown.json().at("current_task").at("id").as_string() == mid);
  CHECK(agent.wait(20s) == std::optional<int>(0));
  // The checksum files are gone with the migration.
  CHECK(!std::filesystem::exists(f.tmp / "data/migrations" + ("/" + mid)));
}
TEST_CASE(
    "Migrations: an agent that cannot read its disk puts the source in error, start resumes") {
  Fixture f;
  const std::string disk = f.tmp / "disk.img";
  write_slots(disk, 16, pick_slots(16, 50, 3), 21);
  const std::string saved = dmscore::testing::read_file(disk);
  auto agent =
      f.start_agent({"--disk", "d=" + disk, "--poll-interval-ms", "50", "--exit-after-cutover"});
  const std::string source = f.await_source();
  // The disk shrinks under the agent: it cannot read what it registered.
  REQUIRE(::truncate(disk.c_str(), static_cast<off_t>(kMiB)) == 0);
  const std::string mid = f.start(source, false);
  SourceMigration m = f.await(mid, [](const SourceMigration& m) { return !m.error.empty(); });
  CHECK(m.state == "MIGRATE_FAIL");
  CHECK(m.error.find("ended early") != std::string::npos);
  CHECK(f.svc->sources().get(source)->state == "error");
  CHECK(f.svc->workflows().get(WorkflowId(mid))->state == WorkflowState::kRunning);
  // Mended, started again: it goes on where it stood and completes.
  dmscore::testing::write_file(disk, saved);
  REQUIRE(f.call("POST", "/api/v1/source-servers/" + source + "/start", "{}").status == 200);
  Workflow w = f.wait(mid);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  f.check_same(f.migration(mid).disks[0].volume_id, disk);
  CHECK(agent.wait(20s) == std::optional<int>(0));
}
#endif

TEST_CASE(
    "Migrations: the data stream refuses what is malformed, stale or corrupt, changing nothing") {
  Fixture f;
  const std::uint64_t size = 8 * kMiB + 4096;  // the last chunk is short
  const std::string source = f.register_source("db-01", size, "52:54:00:00:00:01");
  const std::string mid = f.start(source, false);
  f.await(mid, [](const SourceMigration& m) { return m.stage == "replicating"; });
  const std::string base = disk_base(source, mid, "/dev/vda");
  auto open_pass = [&](int pass) {
    auto r = f.call("POST", base + "/session", "{}", f.agent);
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(r.json().at("pass") == pass);
    CHECK(r.json().at("chunkBytes").as_string() == std::to_string(kMiB));
    CHECK(r.json().at("batchBytes").as_string() == std::to_string(8 * kMiB));
    CHECK(r.json().at("windowBytes").as_string() == std::to_string(32 * kMiB));
    CHECK(r.json().at("size").as_string() == std::to_string(size));
    return std::string(r.json().at("session").as_string());
  };
  auto open = [&] { return open_pass(0); };
  const std::string session = open();
  auto sums = [&] {
    auto r = f.call("GET", base + "/checksums", "", f.agent);
    REQUIRE(r.status == 200);
    REQUIRE(r.body.size() == 9 * 16);
    return r.body;
  };
  const std::string fresh = sums();
  CHECK(fresh == std::string(9 * 16, '\0'));  // every chunk reads as zeros
  auto post = [&](const std::string& q, const std::string& body, const std::string& s = "",
                  const char* type = "application/octet-stream") {
    return f.call("POST", base + "/data?session=" + (s.empty() ? session : s) + q, body, f.agent,
                  type);
  };
  const std::string one(kMiB, 'a'), two(kMiB, 'b');
  struct Bad {
    std::string q, body;
    int status;
    std::string says;
    const char* type = "application/octet-stream";
  };
  std::string corrupt = frame(0, one);
  corrupt[kChunkHeaderBytes + 7] = 'x';
  std::string magic = frame(0, one);
  magic[0] = 'X';
  std::string flags = frame(0, one);
  flags[4] = 2;
  const std::vector<Bad> bad = {
      {"&from=0&to=1048576", frame(0, one), 400, "Content-Type", "application/json"},
      {"&to=1048576", frame(0, one), 400, "from:"},
      {"&from=x&to=1048576", frame(0, one), 400, "from:"},
      {"&from=0", frame(0, one), 400, "to:"},
      {"&from=1048576&to=2097152", frame(kMiB, one), 409, "received up to 0"},
      {"&from=0&to=0", "", 400, "to:"},
      {"&from=0&to=99999999", frame(0, one), 400, "to:"},
      {"&from=0&to=1000", frame(0, one), 400, "to:"},
      {"&from=0&to=1048576", corrupt, 400, "frames[0].checksum"},
      {"&from=0&to=1048576", magic, 400, "frames[0]: bad magic"},
      {"&from=0&to=1048576", flags, 400, "frames[0]: unknown flags"},
      {"&from=0&to=1048576", frame(4096, one), 400, "frames[0].offset"},
      {"&from=0&to=1048576", frame(kMiB, one), 400, "frames[0].offset"},
      {"&from=0&to=2097152", frame(kMiB, two) + frame(0, one), 400, "frames[1].offset"},
      {"&from=0&to=1048576", frame(0, std::string(4096, 'c')), 400, "frames[0].length"},
      {"&from=0&to=1048576", frame(0, one).substr(0, 30), 400, "truncated header"},
      {"&from=0&to=1048576", frame(0, one).substr(0, 5000), 400, "truncated payload"},
      {"&from=0&to=1048576&extra=1", frame(0, one), 400, "extra: unknown query parameter"},
  };
  for (const auto& b : bad) {
    auto r = post(b.q, b.body, "", b.type);
    INFO(b.q << " -> " << r.status << " " << r.body);
    CHECK(r.status == b.status);
    CHECK(r.message().find(b.says) != std::string::npos);
  }
  // A stale session, and a second agent's: refused.
  CHECK(post("&from=0&to=1048576", frame(0, one), "0123").status == 409);
  const std::string second = open();
  CHECK(post("&from=0&to=1048576", frame(0, one)).status == 409);
  // A body beyond the window's limit is refused before it is read.
  const std::string data_target = base + "/data?session=" + second + "&from=0&to=1048576";
  CHECK(announced_body_status(f.server->port(), data_target, f.agent, 17 * kMiB + 70000) == 413);
  // Other routes keep the server's 1 MiB limit.
  CHECK(announced_body_status(f.server->port(), "/api/v1/source-servers/" + source + "/sync",
                              f.admin, 2 * kMiB) == 413);
  // Viewers may not stream; an unknown migration or disk is 404.
  CHECK(f.call("POST", base + "/data?session=" + second + "&from=0&to=1048576", frame(0, one),
               f.viewer, "application/octet-stream")
            .status == 403);
  CHECK(f.call("POST", disk_base(source, "nope", "/dev/vda") + "/session", "{}", f.agent).status ==
        404);
  CHECK(f.call("POST", disk_base(source, mid, "/dev/vdz") + "/session", "{}", f.agent).status ==
        404);
  // Nothing of the refusals was written or acknowledged.
  CHECK(sums() == fresh);
  CHECK(f.migration(mid).disks[0].acked == 0);
  CHECK(f.migration(mid).disks[0].total_bytes == 0);

  // Good windows: changed chunks only; an empty window moves the offset; a zero chunk.
  auto ok = post("&from=0&to=2097152", frame(0, one) + frame(kMiB, two), second);
  INFO(ok.body);
  REQUIRE(ok.status == 200);
  CHECK(ok.json().at("receivedOffset") == "2097152");
  CHECK(ok.json().at("passDone") == false);
  // Progress shows on the source (SMS's replicatesize, current_task) and on the workflow once
  // the batch is durable (the flusher acknowledges it; the parked step reports it).
  {
    const auto until = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      auto shown = f.call("GET", "/v3/sources/" + source);
      auto w = f.svc->workflows().get(WorkflowId(mid));
      REQUIRE(w.ok());
      if (shown.json().at("replicatesize") == 2 * kMiB && w->progress.bytes_done == 2 * kMiB) {
        CHECK(shown.json().at("totalsize") == size);
        CHECK(shown.json().at("current_task").at("state") == "RUNNING");
        CHECK(shown.json().at("current_task").as_object().contains("migrate_speed"));
        CHECK(shown.json().at("current_task").at("remain_seconds").as_int64() >= 0);
        CHECK(w->progress.bytes_total == size);
        CHECK(w->progress.stage == "replicating");
        break;
      }
      REQUIRE(std::chrono::steady_clock::now() < until);
      std::this_thread::sleep_for(50ms);
    }
  }
  REQUIRE(post("&from=2097152&to=8388608", "", second).status == 200);
  const std::string tail(4096, 't');
  auto last = post("&from=8388608&to=" + std::to_string(size), frame(8 * kMiB, tail), second);
  REQUIRE(last.status == 200);
  CHECK(last.json().at("passDone") == true);
  // The pass's last batch answers once everything is durable.
  CHECK(last.json().at("ackedOffset").as_string() == std::to_string(size));
  // The window that ended the pass, replayed, is refused: the offset moved past it.
  auto replay = post("&from=8388608&to=" + std::to_string(size), frame(8 * kMiB, tail), second);
  CHECK((replay.status == 409 || replay.status == 400));
  const std::string now = sums();
  CHECK(now.substr(0, 16) == chunk_checksum(one));
  CHECK(now.substr(16, 16) == chunk_checksum(two));
  CHECK(now.substr(32, 16) == std::string(16, '\0'));
  CHECK(now.substr(8 * 16, 16) == chunk_checksum(tail));
  // Without syncing, the replication's end starts the cutover: a last pass, in which nothing
  // changed (empty windows).
  f.await(mid, [](const SourceMigration& m) { return m.stage == "cutovering" && m.pass == 1; });
  const std::string third = open_pass(1);
  REQUIRE(post("&from=0&to=" + std::to_string(size), "", third).status == 200);
  Workflow w = f.wait(mid);
  INFO(w.msg);
  REQUIRE(w.state == WorkflowState::kCompleted);
  SourceMigration m = f.migration(mid);
  CHECK(m.disks[0].total_bytes == 2 * kMiB + 4096);
  CHECK(m.disks[0].resent_bytes == 0);
  const std::string vol = dmscore::testing::read_file(f.volume_path(m.disks[0].volume_id));
  REQUIRE(vol.size() >= size);
  CHECK((vol.substr(0, kMiB) == one));
  CHECK((vol.substr(kMiB, kMiB) == two));
  CHECK(vol.find_first_not_of('\0', 2 * kMiB) == 8 * kMiB);
  CHECK((vol.substr(8 * kMiB, 4096) == tail));
}

TEST_CASE("Migrations: SMS's command channel, a failed command, stop and start") {
  Fixture f;
  const std::string source = f.register_source("app-01", 2 * kMiB, "52:54:00:00:00:02");
  auto command = [&](const std::string& token = "") {
    auto r =
        f.call("GET", "/v3/sources/" + source + "/command", "", token.empty() ? f.agent : token);
    INFO(r.body);
    REQUIRE(r.status == 200);
    return r.json().as_object();
  };
  CHECK(command().at("command_name") == "TASK_NOT_STARTED");
  CHECK(f.call("GET", "/v3/sources/" + source + "/command", "", f.viewer).status == 403);
  const std::string mid = f.start(source, true);
  f.await(mid, [](const SourceMigration& m) { return m.stage == "replicating"; });
  json::object c = command();
  CHECK(c.at("command_name") == "START");
  CHECK(c.at("command_param").at("task_id").as_string() == mid);
  // The current task shows on the source, as SMS shows it.
  auto shown = f.call("GET", "/v3/sources/" + source);
  CHECK(shown.json().at("current_task").at("state") == "RUNNING");
  CHECK(shown.json().at("current_task").at("type") == "MIGRATE_BLOCK");
  CHECK(shown.json().at("state") == "replicate");
  CHECK(shown.json().at("migration_cycle") == "replicating");

  // Malformed results are refused in SMS's words.
  auto result = [&](const std::string& body) {
    return f.call("POST", "/v3/sources/" + source + "/command_result", body, f.agent);
  };
  for (const char* bad :
       {R"({"result":"success","result_detail":{}})", R"({"command_name":"START"})",
        R"({"command_name":"START","result":"maybe","result_detail":{}})",
        R"({"command_name":"START","result":"fail"})",
        R"({"command_name":"FORMAT","result":"fail","result_detail":{}})",
        R"({"command_name":"START","result":"fail","result_detail":{},"x":1})", "[]", "{"}) {
    auto r = result(bad);
    INFO(bad << " -> " << r.body);
    CHECK(r.status == 400);
    CHECK(r.json().at("error_code") == "SMS.9001");
  }
  CHECK(f.migration(mid).error.empty());

  // The agent fails: the source is in error with its words; start goes on where it stood.
  REQUIRE(result(R"({"command_name":"START","result":"fail","result_detail":{"msg":"disk gone"}})")
              .status == 200);
  SourceMigration m = f.migration(mid);
  CHECK(m.state == "MIGRATE_FAIL");
  CHECK(m.error.find("disk gone") != std::string::npos);
  CHECK(f.svc->sources().get(source)->state == "error");
  CHECK(command().at("command_name") == "SKIP");
  CHECK(f.call("POST", disk_base(source, mid, "/dev/vda") + "/session", "{}", f.agent).status ==
        400);
  CHECK(f.svc->workflows().get(WorkflowId(mid))->state == WorkflowState::kRunning);
  REQUIRE(f.call("POST", "/api/v1/source-servers/" + source + "/start", "{}").status == 200);
  CHECK(f.migration(mid).error.empty());
  CHECK(f.svc->sources().get(source)->state == "replicate");
  CHECK(command().at("command_name") == "START");

  // Stop: the agent is told STOP, streaming is refused, the volumes stay; start resumes.
  REQUIRE(f.call("POST", "/api/v1/source-servers/" + source + "/stop", "").status == 200);
  CHECK(f.call("POST", "/api/v1/source-servers/" + source + "/stop", "").status == 400);
  CHECK(command().at("command_name") == "STOP");
  CHECK(f.svc->sources().get(source)->state == "stopped");
  CHECK(f.migration(mid).state == "ABORT");
  CHECK(f.call("POST", disk_base(source, mid, "/dev/vda") + "/session", "{}", f.agent).status ==
        400);
  // A stopped migration's source cannot be deleted: it holds volumes.
  CHECK(f.call("DELETE", "/api/v1/source-servers/" + source).status == 400);
  REQUIRE(f.call("POST", "/api/v1/source-servers/" + source + "/start", "").status == 200);
  CHECK(f.call("POST", "/api/v1/source-servers/" + source + "/start", "").status == 400);
  CHECK(command().at("command_name") == "START");

  // The cluster cannot be detached under a migration.
  auto detach = f.call("DELETE", "/api/v1/clusters/" + f.cluster);
  CHECK(detach.status == 400);
  CHECK(detach.message().find("used by a running workflow") != std::string::npos);

  // A stop in the middle of a session ends it; the next session resumes from what is durable.
  const std::string base = disk_base(source, mid, "/dev/vda");
  auto first = f.call("POST", base + "/session", "{}", f.agent);
  REQUIRE(first.status == 200);
  const std::string s1 = std::string(first.json().at("session").as_string());
  REQUIRE(f.call("POST", base + "/data?session=" + s1 + "&from=0&to=" + std::to_string(kMiB),
                 frame(0, std::string(kMiB, 'p')), f.agent, "application/octet-stream")
              .status == 200);
  REQUIRE(f.call("POST", "/api/v1/source-servers/" + source + "/stop", "").status == 200);
  CHECK(f.call("POST",
               base + "/data?session=" + s1 + "&from=" + std::to_string(kMiB) +
                   "&to=" + std::to_string(2 * kMiB),
               "", f.agent, "application/octet-stream")
            .status == 400);  // stopped
  REQUIRE(f.call("POST", "/api/v1/source-servers/" + source + "/start", "").status == 200);
  auto sess = f.call("POST", base + "/session", "{}", f.agent);
  REQUIRE(sess.status == 200);
  const std::string s = std::string(sess.json().at("session").as_string());
  const std::string resume = std::string(sess.json().at("ackedOffset").as_string());
  CHECK((resume == "0" || resume == std::to_string(kMiB)));
  CHECK(f.call("POST",
               base + "/data?session=" + s1 + "&from=" + resume + "&to=" + std::to_string(2 * kMiB),
               "", f.agent, "application/octet-stream")
            .status == 409);  // the old session is over
  if (resume == std::to_string(kMiB))
    REQUIRE(
        f.call("POST",
               base + "/data?session=" + s + "&from=" + resume + "&to=" + std::to_string(2 * kMiB),
               "", f.agent, "application/octet-stream")
            .status == 200);
  if (resume == "0")
    REQUIRE(f.call("POST", base + "/data?session=" + s + "&from=0&to=" + std::to_string(2 * kMiB),
                   frame(0, std::string(kMiB, 'q')), f.agent, "application/octet-stream")
                .status == 200);
  f.await(mid, [](const SourceMigration& m) { return m.stage == "syncing"; });
  CHECK(command().at("command_name") == "SKIP");
  CHECK(f.call("POST", "/api/v1/source-servers/" + source + "/sync", "{}", f.agent).status == 403);
  CHECK(f.call("POST", "/api/v1/source-servers/" + source + "/sync", "{}", f.viewer).status == 403);
  REQUIRE(f.call("POST", "/api/v1/source-servers/" + source + "/sync", "{}").status == 200);
  CHECK(f.call("POST", "/api/v1/source-servers/" + source + "/sync", "{}").status == 400);
  f.await(mid, [](const SourceMigration& m) { return m.pass == 1; });
  c = command();
  CHECK(c.at("command_name") == "SYNC");
  CHECK(f.call("GET", "/api/v1/source-servers/" + source + "/migration", "", f.agent)
            .json()
            .at("migration")
            .at("pass") == 1);
}

TEST_CASE("Migrations: a cancel removes the volumes the migration made and nothing else") {
  Fixture f;
  CreateVolumeRequest keep;
  keep.project_name = "default";
  keep.name = "keep-me";
  keep.size = 4 * kMiB;
  auto kept = f.svc->volumes().create(ClusterId(f.cluster), keep);
  REQUIRE(kept.ok());
  const std::string source = f.register_source("old-01", 4 * kMiB, "52:54:00:00:00:03");
  const std::string mid = f.start(source, true);
  SourceMigration m =
      f.await(mid, [](const SourceMigration& m) { return m.stage == "replicating"; });
  const std::string made = m.disks[0].volume_id;
  REQUIRE(!made.empty());
  // Files the service did not make, beside its checksum files: they stay.
  const std::string sums = f.tmp / ("data/migrations/" + mid);
  REQUIRE(std::filesystem::exists(sums + "/0.sums"));
  dmscore::testing::write_file(sums + "/1.sums", "not the service's");
  dmscore::testing::write_file(sums + "/notes.txt", "an operator's");
  REQUIRE(f.call("POST", "/api/v1/workflows/" + mid + "/cancel", "{}").status == 200);
  Workflow w = f.wait(mid);
  CHECK(w.state == WorkflowState::kCancelled);
  CHECK(f.svc->volumes().get({ClusterId(f.cluster), "default", made}).status().code() ==
        Code::kNotFound);
  CHECK(f.svc->volumes().get({ClusterId(f.cluster), "default", kept->id}).ok());
  CHECK(!std::filesystem::exists(sums + "/0.sums"));
  CHECK(dmscore::testing::read_file(sums + "/1.sums") == "not the service's");
  CHECK(dmscore::testing::read_file(sums + "/notes.txt") == "an operator's");
  m = f.migration(mid);
  CHECK(m.state == "ABORT");
  CHECK(m.finished);
  auto s = f.svc->sources().get(source);
  CHECK(s->state == "waiting");
  // It can be migrated again, and deleted once nothing runs.
  const std::string again = f.start(source, true);
  CHECK(again != mid);
  REQUIRE(f.svc->workflows().cancel(WorkflowId(again)).ok());
  f.wait(again);
  CHECK(f.call("DELETE", "/api/v1/source-servers/" + source).status == 200);
}

TEST_CASE("Migrations: bad requests name their field and change nothing") {
  Fixture f;
  const std::string source = f.register_source("bad-01", 4 * kMiB, "52:54:00:00:00:04");
  const std::string path = "/api/v1/source-servers/" + source + "/migrations";
  struct Bad {
    std::string body;
    int status;
    std::string says;
  };
  const std::vector<Bad> bad = {
      {"", 400, "body"},
      {"{", 400, ""},
      {"[]", 400, ""},
      {R"({})", 400, "clusterId"},
      {R"({"clusterId":7})", 400, "clusterId"},
      {R"({"clusterId":"no-such-cluster"})", 404, "no-such-cluster"},
      {R"({"clusterId":"C","projectName":"bad name!"})", 400, "projectName"},
      {R"({"clusterId":"C","disks":"vda"})", 400, "disks"},
      {R"({"clusterId":"C","disks":["/dev/vdz"]})", 400, "disks: source"},
      {R"({"clusterId":"C","disks":["/dev/vda","/dev/vda"]})", 400, "disks: a disk is named twice"},
      {R"({"clusterId":"C","syncing":"yes"})", 400, "syncing"},
      {R"({"clusterId":"C","rateLimitBytesPerSec":-1})", 400, "rateLimitBytesPerSec"},
      {R"({"clusterId":"C","surprise":1})", 400, "surprise"},
  };
  for (auto b : bad) {
    const auto at = b.body.find("\"C\"");
    if (at != std::string::npos) b.body.replace(at, 3, "\"" + f.cluster + "\"");
    auto r = f.call("POST", path, b.body);
    INFO(b.body.substr(0, 200) << " -> " << r.body);
    CHECK(r.status == b.status);
    CHECK(r.message().find(b.says) != std::string::npos);
  }
  CHECK(f.call("POST", "/api/v1/source-servers/nope/migrations",
               json::serialize(json::object{{"clusterId", f.cluster}}))
            .status == 404);
  CHECK(f.call("POST", path, json::serialize(json::object{{"clusterId", f.cluster}}), f.viewer)
            .status == 403);
  CHECK(f.call("POST", path, json::serialize(json::object{{"clusterId", f.cluster}}), f.agent)
            .status == 403);
  // Nothing was started.
  CHECK(f.svc->migrations().of_source(source).status().code() == Code::kNotFound);
  CHECK(f.svc->sources().get(source)->state == "waiting");
  for (const char* action : {"sync", "cutover", "stop", "start"})
    CHECK(f.call("POST", "/api/v1/source-servers/" + source + "/" + action, "{}").status == 404);

  // An unavailable source cannot be migrated; one migration at a time.
  const std::string mid = f.start(source, false);
  auto twice = f.call("POST", path, json::serialize(json::object{{"clusterId", f.cluster}}));
  CHECK(twice.status == 400);
  CHECK(twice.message().find("under way") != std::string::npos);
  CHECK(f.call("POST", "/api/v1/source-servers/" + source + "/sync", "{}").status == 400);
  CHECK(f.call("POST", "/api/v1/source-servers/" + source + "/sync", R"({"x":1})").status == 400);
  CHECK(f.call("POST", "/api/v1/source-servers/" + source + "/sync?x=1", "{}").status == 400);
  REQUIRE(f.svc->workflows().cancel(WorkflowId(mid)).ok());
  f.wait(mid);
  json::object broken =
      json::parse(
          R"({"name":"old","os_type":"LINUX","os_version":"DEBIAN7_32BIT","agent_version":"1",
      "ip":"10.0.0.8","firmware":"BIOS","networks":[{"mac":"52:54:00:00:00:05","mtu":1500}],
      "disks":[{"name":"/dev/vda","size":1048576,"partition_style":"MBR"}]})")
          .as_object();
  auto reg = f.call("POST", "/v3/sources", json::serialize(broken), f.agent);
  INFO(reg.body);
  REQUIRE(reg.status == 200);
  const std::string unavailable = std::string(reg.json().at("id").as_string());
  auto refused = f.call("POST", "/api/v1/source-servers/" + unavailable + "/migrations",
                        json::serialize(json::object{{"clusterId", f.cluster}}));
  CHECK(refused.status == 400);
  CHECK(refused.message().find("unavailable") != std::string::npos);
}
