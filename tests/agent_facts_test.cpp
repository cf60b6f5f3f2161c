// The agent's fact collector (cli/agent/facts.hpp): a Debian 12 tree (tests/data/agent_root) as
// the registration report, accepted by the service's schema and passing every environment check;
// stand-in disk images with a GPT, an MBR with logical partitions and no table; paths resolved
// inside the root; errors that name the file or option that was wrong.
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/facts.hpp"
#include "sources/source_schema.hpp"
#include "test_files.hpp"
#include "test_util.hpp"

using dmscore::Code;
using dmscore::testing::TempDir;
using dmsctl::agent::collect_facts;
using dmsctl::agent::Facts;
using dmsctl::agent::FactsOptions;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

const std::string kRoot = std::string(DMSCORE_SOURCE_DIR) + "/tests/data/agent_root";

Facts collect(const FactsOptions& o) {
  auto f = collect_facts(o);
  INFO(f.status().to_string());
  REQUIRE(f.ok());
  return std::move(f).value();
}

const json::object& named(const json::value& array, std::string_view name) {
  for (const auto& v : array.as_array())
    if (v.as_object().at("name").as_string() == name) return v.as_object();
  static const json::object kNone;
  FAIL("no item named " << name << " in " << json::serialize(array));
  return kNone;
}

bool has_named(const json::value& array, std::string_view name) {
  for (const auto& v : array.as_array())
    if (v.as_object().at("name").as_string() == name) return true;
  return false;
}

// What the service does with a report: parse the body, canonicalise it (which must change
// nothing: every number already an int64, nothing null) and run the environment check.
void require_accepted(const json::object& report) {
  const json::value body = json::parse(json::serialize(report));
  auto canonical = dmscore::detail::canonical_source_report(body);
  INFO(canonical.status().to_string());
  REQUIRE(canonical.ok());
  CHECK(*canonical == report);
  const auto checks = dmscore::detail::check_source_environment(*canonical);
  REQUIRE(!checks.empty());
  for (const auto& c : checks) {
    INFO(c.name << ": " << c.message);
    CHECK(c.result == "OK");
  }
}

// --- disk images -----------------------------------------------------------------------------

void put(const std::string& path, std::uint64_t offset, const std::vector<unsigned char>& bytes) {
  dmscore::testing::write_file_at(path, offset, bytes.data(), bytes.size());
}
void put(const std::string& path, std::uint64_t offset, std::string_view bytes) {
  dmscore::testing::write_file_at(path, offset, bytes.data(), bytes.size());
}

void set_le(std::vector<unsigned char>& b, std::size_t at, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i)
    b[at + static_cast<std::size_t>(i)] = static_cast<unsigned char>(v >> (8 * i));
}

std::uint32_t crc32(const unsigned char* p, std::size_t n) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

// "0FC63DAF-8483-4772-8E79-3D69D8477DE4" as a GPT stores it (the first three fields
// little-endian).
std::array<unsigned char, 16> guid(std::string_view text) {
  std::string hex;
  for (char c : text)
    if (c != '-') hex += c;
  std::array<unsigned char, 16> b{};
  for (std::size_t i = 0; i < 16; ++i)
    b[i] = static_cast<unsigned char>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
  std::reverse(b.begin(), b.begin() + 4);
  std::reverse(b.begin() + 4, b.begin() + 6);
  std::reverse(b.begin() + 6, b.begin() + 8);
  return b;
}

const auto kLinuxFs = guid("0FC63DAF-8483-4772-8E79-3D69D8477DE4");
const auto kLinuxSwap = guid("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F");

struct GptPart {
  std::uint32_t slot;
  std::uint64_t first, last;
  std::array<unsigned char, 16> type;
};

void protective_mbr(const std::string& path, std::uint64_t sectors) {
  std::vector<unsigned char> mbr(512);
  mbr[446 + 4] = 0xEE;
  set_le(mbr, 446 + 8, 1, 4);
  set_le(mbr, 446 + 12, std::min<std::uint64_t>(sectors - 1, 0xFFFFFFFF), 4);
  mbr[510] = 0x55;
  mbr[511] = 0xAA;
  put(path, 0, mbr);
}

// A GPT header for `count` entries at `entries_lba` whose CRC is `entries_crc`, placed at `lba`.
std::vector<unsigned char> gpt_header(std::uint64_t lba, std::uint64_t alternate,
                                      std::uint64_t sectors, std::uint64_t entries_lba,
                                      std::uint32_t count, std::uint32_t entries_crc) {
  std::vector<unsigned char> h(512);
  std::memcpy(h.data(), "EFI PART", 8);
  set_le(h, 8, 0x00010000, 4);
  set_le(h, 12, 92, 4);
  set_le(h, 24, lba, 8);
  set_le(h, 32, alternate, 8);
  set_le(h, 40, 34, 8);
  set_le(h, 48, sectors - 34, 8);
  for (int i = 0; i < 16; ++i)
    h[56 + static_cast<std::size_t>(i)] = static_cast<unsigned char>(0xA0 + i);
  set_le(h, 72, entries_lba, 8);
  set_le(h, 80, count, 4);
  set_le(h, 84, 128, 4);
  set_le(h, 88, entries_crc, 4);
  set_le(h, 16, crc32(h.data(), 92), 4);
  return h;
}

// A GPT of 128 entries on a `size`-byte image, primary and backup, as sgdisk writes one.
void write_gpt(const std::string& path, std::uint64_t size, const std::vector<GptPart>& parts) {
  const std::uint64_t sectors = size / 512;
  protective_mbr(path, sectors);
  std::vector<unsigned char> entries(128 * 128);
  for (const auto& p : parts) {
    unsigned char* e = &entries[p.slot * 128];
    std::memcpy(e, p.type.data(), 16);
    for (int i = 0; i < 16; ++i) e[16 + i] = static_cast<unsigned char>(p.slot * 16 + i + 1);
    set_le(entries, p.slot * 128 + 32, p.first, 8);
    set_le(entries, p.slot * 128 + 40, p.last, 8);
    e[56] = 'd';  // "data" in UTF-16LE
    e[58] = 'a';
    e[60] = 't';
    e[62] = 'a';
  }
  const std::uint32_t crc = crc32(entries.data(), entries.size());
  put(path, 2 * 512, entries);
  put(path, 512, gpt_header(1, sectors - 1, sectors, 2, 128, crc));
  put(path, (sectors - 33) * 512, entries);
  put(path, (sectors - 1) * 512, gpt_header(sectors - 1, 1, sectors, sectors - 33, 128, crc));
}

// An ext4 superblock (extents, filetype) with this UUID, 65536 inodes of 256 bytes.
std::vector<unsigned char> ext4_superblock() {
  std::vector<unsigned char> sb(256);
  set_le(sb, 0x00, 65536, 4);
  set_le(sb, 0x38, 0xEF53, 2);
  set_le(sb, 0x4C, 1, 4);
  set_le(sb, 0x58, 256, 2);
  set_le(sb, 0x60, 0x0002 | 0x0040, 4);
  for (int i = 0; i < 16; ++i)
    sb[0x68 + static_cast<std::size_t>(i)] = static_cast<unsigned char>(0x10 + i);
  return sb;
}

std::vector<unsigned char> mbr_entry(unsigned char status, unsigned char type, std::uint32_t start,
                                     std::uint32_t count) {
  std::vector<unsigned char> e(16);
  e[0] = status;
  e[4] = type;
  set_le(e, 8, start, 4);
  set_le(e, 12, count, 4);
  return e;
}

void boot_signature(const std::string& path, std::uint64_t sector) {
  put(path, sector * 512 + 510, std::string_view("\x55\xAA", 2));
}

constexpr std::uint64_t kMiB = 1 << 20;

}  // namespace

TEST_CASE("agent facts: a Debian 12 tree", "[agent]") {
  FactsOptions o;
  o.root = kRoot;
  o.agent_version = "1.4.0";
  const Facts f = collect(o);
  const json::object& r = f.report;
  INFO(json::serialize(r));

  CHECK(r.at("os_type") == "LINUX");
  CHECK(r.at("os_version") == "DEBIAN12_64BIT");
  CHECK(r.at("kernel_version") == "6.1.0-18-amd64");
  CHECK(json::parse(r.at("linux_block_check").as_string()) ==
        json::parse(R"({"release_type": "DEBIAN", "release_version": "12",
                        "kernel_simplification": "6.1.0", "architecture": "x86_64",
                        "kernel_version": "6.1.0-18-amd64"})"));
  CHECK(r.at("name") == "web-01");
  CHECK(r.at("hostname") == "web-01");
  CHECK(r.at("agent_version") == "1.4.0");
  CHECK(r.at("cpu_quantity") == 2);
  CHECK(r.at("memory") == 4010504ll * 1024);
  CHECK(r.at("firmware") == "UEFI");
  CHECK(r.at("boot_loader") == "GRUB");
  CHECK(r.at("has_rsync") == true);
  CHECK(r.at("has_tc") == false);
  CHECK(r.at("paravirtualization") == true);
  CHECK(r.at("raw_devices") == "");
  CHECK(r.at("platform") == "other");
  CHECK(r.at("start_type") == "MANUAL");
  // Figures that change with every read or write would make the agent report on every poll.
  CHECK_FALSE(r.contains("io_read_wait"));

  // Networks: eth0 has the default route, so it comes first although docker0 sorts before it.
  const json::array& nets = r.at("networks").as_array();
  REQUIRE(nets.size() == 2);
  CHECK(nets[0] == json::parse(R"({"name": "eth0", "ip": "192.168.2.15",
                                   "ipv6": "2001:db8:0:2::15", "netmask": "255.255.255.0",
                                   "gateway": "192.168.2.1", "mtu": 1500,
                                   "mac": "52:54:00:12:34:56"})"));
  CHECK(nets[1] == json::parse(R"({"name": "docker0", "ip": "172.17.0.1",
                                   "netmask": "255.255.0.0", "mtu": 1500,
                                   "mac": "02:42:8f:1c:2e:01"})"));
  CHECK(r.at("ip") == "192.168.2.15");
  CHECK(r.at("ipv6") == "2001:db8:0:2::15");

  // Disks: vda (GPT: the kernel named a partition) holds the ESP and the LVM PV; vdb is a
  // whole-disk btrfs; loop0 and the device-mapper devices are not disks.
  const json::value& disks = r.at("disks");
  REQUIRE(disks.as_array().size() == 2);
  CHECK_FALSE(has_named(disks, "loop0"));
  CHECK_FALSE(has_named(disks, "dm-0"));
  const json::object& vda = named(disks, "vda");
  CHECK(vda.at("partition_style") == "GPT");
  CHECK(vda.at("size") == 41943040ll * 512);
  CHECK(vda.at("used_size") == (1048576ll + 40890368ll) * 512);
  CHECK(vda.at("os_disk") == true);
  CHECK(vda.at("device_use") == "BOOT");
  const json::value& pvs = vda.at("physical_volumes");
  REQUIRE(pvs.as_array().size() == 2);
  CHECK(named(pvs, "/dev/vda1") == json::parse(R"({"index": 1, "name": "/dev/vda1",
                                                  "size": 536870912, "device_use": "NORMAL",
                                                  "file_system": "vfat",
                                                  "mount_point": "/boot/efi",
                                                  "uuid": "7A3B-1C2D"})"));
  CHECK(named(pvs, "/dev/vda2") == json::parse(R"({"index": 2, "name": "/dev/vda2",
                                                  "size": 20935868416,
                                                  "device_use": "VOLUME_GROUP",
                                                  "file_system": "LVM2_member",
                                                  "mount_point": ""})"));
  const json::object& vdb = named(disks, "vdb");
  CHECK(vdb.at("partition_style") == "MBR");
  CHECK(vdb.at("device_use") == "BTRFS");
  CHECK(vdb.at("os_disk") == false);
  CHECK(vdb.at("physical_volumes").as_array().empty());

  // "debian--vg-root" is the LV root of the VG debian-vg.
  const json::value& vgs = r.at("volume_groups");
  REQUIRE(vgs.as_array().size() == 1);
  const json::object& vg = named(vgs, "debian-vg");
  CHECK(vg.at("components") == "/dev/vda2");
  CHECK(vg.at("size") == 40890368ll * 512);
  const json::value& lvs = vg.at("logical_volumes");
  REQUIRE(lvs.as_array().size() == 2);
  CHECK(named(lvs, "/dev/mapper/debian--vg-root") ==
        json::parse(R"({"name": "/dev/mapper/debian--vg-root", "device_use": "NORMAL",
                        "size": 19864223744, "file_system": "ext4", "mount_point": "/"})"));
  CHECK(named(lvs, "/dev/mapper/debian--vg-swap_1") ==
        json::parse(R"({"name": "/dev/mapper/debian--vg-swap_1", "device_use": "NORMAL",
                        "size": 1023410176, "file_system": "swap", "mount_point": ""})"));

  const json::array& btrfs = r.at("btrfs_list").as_array();
  REQUIRE(btrfs.size() == 1);
  CHECK(btrfs[0] == json::parse(R"({"name": "/dev/vdb", "label": "srv",
                                    "uuid": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
                                    "device": "/dev/vdb", "nodesize": 16384,
                                    "sectorsize": 4096, "data_profile": "single",
                                    "metadata_profile": "dup", "system_profile": "dup"})"));

  // What the agent reads: the tree's /dev, in report order.
  REQUIRE(f.disks.size() == 2);
  CHECK(f.disks[0].name == "vda");
  CHECK(f.disks[0].path == kRoot + "/dev/vda");
  CHECK(f.disks[0].size == 41943040ull * 512);
  CHECK(f.disks[0].partition_style == "GPT");
  REQUIRE(f.disks[0].partitions.size() == 2);
  CHECK(f.disks[0].partitions[0].offset == 2048 * 512);
  CHECK(f.disks[0].partitions[1].offset == 1050624ull * 512);
  CHECK(f.disks[0].partitions[1].size == 40890368ull * 512);
  CHECK(f.disks[1].name == "vdb");
  CHECK(f.disks[1].file_system == "btrfs");
  CHECK(f.disks[1].partitions.empty());

  require_accepted(r);

  SECTION("--name names the source; the hostname stays what it is") {
    o.name = "billing-db";
    const Facts g = collect(o);
    CHECK(g.report.at("name") == "billing-db");
    CHECK(g.report.at("hostname") == "web-01");
    require_accepted(g.report);
  }
}

TEST_CASE("agent facts: stand-in disks with GPT, MBR and no table", "[agent]") {
  TempDir dir;

  // GPT: an ext4 in slot 0 and a swap in slot 2 (indexes follow slots, as the kernel numbers
  // them); its primary header is then damaged, so the backup is what is read.
  const std::string gpt = dir / "gpt.img";
  const std::uint64_t gpt_size = 64 * kMiB;
  dmscore::testing::make_hole_image(gpt, gpt_size);
  write_gpt(gpt, gpt_size, {{0, 2048, 18431, kLinuxFs}, {2, 18432, 131038, kLinuxSwap}});
  put(gpt, 2048 * 512 + 1024, ext4_superblock());
  put(gpt, 18432ull * 512 + 4086, "SWAPSPACE2");
  put(gpt, 512 + 16, std::string_view("\0\0\0\0", 4));  // the primary header's CRC

  // MBR: an active xfs partition 1, and an extended partition 2 whose chain holds a FAT32
  // logical partition 5 and an unformatted logical partition 6.
  const std::string mbr = dir / "mbr.img";
  dmscore::testing::make_hole_image(mbr, 32 * kMiB);
  put(mbr, 446, mbr_entry(0x80, 0x83, 2048, 20480));
  put(mbr, 462, mbr_entry(0x00, 0x05, 22528, 65536 - 22528));
  boot_signature(mbr, 0);
  put(mbr, 2048 * 512, "XFSB");
  put(mbr, 22528ull * 512 + 446, mbr_entry(0x00, 0x0C, 2048, 16384));
  put(mbr, 22528ull * 512 + 462, mbr_entry(0x00, 0x05, 18432, 4096 + 8192));
  boot_signature(mbr, 22528);
  put(mbr, 24576ull * 512 + 82, "FAT32   ");
  put(mbr, 24576ull * 512 + 67, std::string_view("\xCD\xAB\x34\x12", 4));
  put(mbr, 40960ull * 512 + 446, mbr_entry(0x00, 0x83, 2048, 8192));
  boot_signature(mbr, 40960);

  // No table: a btrfs on the whole disk.
  const std::string raw = dir / "raw.img";
  dmscore::testing::make_hole_image(raw, 16 * kMiB);
  std::vector<unsigned char> sb(0x22B);
  for (int i = 0; i < 16; ++i)
    sb[0x20 + static_cast<std::size_t>(i)] = static_cast<unsigned char>(0xB0 + i);
  std::memcpy(&sb[0x40], "_BHRfS_M", 8);
  set_le(sb, 0x90, 4096, 4);
  set_le(sb, 0x94, 16384, 4);
  std::memcpy(&sb[0x12B], "scratch", 7);
  put(raw, 0x10000, sb);

  FactsOptions o;
  o.root = kRoot;
  o.agent_version = "1.4.0";
  o.disks = {{"nvme0n1", gpt}, {"sdb", mbr}, {"sdc", raw}};
  const Facts f = collect(o);
  const json::object& r = f.report;
  INFO(json::serialize(r));

  // Exactly the stand-ins: the tree's disks and its volume groups are not reported.
  const json::value& disks = r.at("disks");
  REQUIRE(disks.as_array().size() == 3);
  CHECK_FALSE(has_named(disks, "vda"));
  CHECK(r.at("volume_groups").as_array().empty());

  const json::object& d0 = named(disks, "nvme0n1");
  CHECK(d0.at("partition_style") == "GPT");
  CHECK(d0.at("size") == static_cast<std::int64_t>(gpt_size));
  CHECK(d0.at("os_disk") == false);
  const json::value& p0 = d0.at("physical_volumes");
  REQUIRE(p0.as_array().size() == 2);
  CHECK(named(p0, "/dev/nvme0n1p1") ==
        json::parse(R"({"index": 1, "name": "/dev/nvme0n1p1", "size": 8388608,
                        "device_use": "NORMAL", "file_system": "ext4",
                        "uuid": "10111213-1415-1617-1819-1a1b1c1d1e1f", "inode_size": 256,
                        "inode_nums": 65536})"));
  CHECK(named(p0, "/dev/nvme0n1p3").at("file_system") == "swap");
  CHECK(named(p0, "/dev/nvme0n1p3").at("index") == 3);
  CHECK(named(p0, "/dev/nvme0n1p3").at("size") == (131038ll - 18432 + 1) * 512);

  const json::object& d1 = named(disks, "sdb");
  CHECK(d1.at("partition_style") == "MBR");
  CHECK(d1.at("os_disk") == true);  // its partition 1 is active
  CHECK(d1.at("device_use") == "BOOT");
  const json::value& p1 = d1.at("physical_volumes");
  REQUIRE(p1.as_array().size() == 3);
  CHECK(named(p1, "/dev/sdb1").at("file_system") == "xfs");
  CHECK(named(p1, "/dev/sdb5").at("file_system") == "vfat");
  CHECK(named(p1, "/dev/sdb5").at("uuid") == "1234-ABCD");
  CHECK_FALSE(named(p1, "/dev/sdb6").contains("file_system"));
  CHECK_FALSE(named(p1, "/dev/sdb6").contains("mount_point"));  // not known for an image

  // A disk without a table: MBR (what the check takes), no physical volumes.
  const json::object& d2 = named(disks, "sdc");
  CHECK(d2.at("partition_style") == "MBR");
  CHECK(d2.at("device_use") == "BTRFS");
  CHECK(d2.at("physical_volumes").as_array().empty());
  const json::array& btrfs = r.at("btrfs_list").as_array();
  REQUIRE(btrfs.size() == 1);
  CHECK(btrfs[0] == json::parse(R"({"name": "/dev/sdc", "label": "scratch",
                                    "uuid": "b0b1b2b3-b4b5-b6b7-b8b9-babbbcbdbebf",
                                    "device": "/dev/sdc", "nodesize": 16384,
                                    "sectorsize": 4096})"));

  // Where the agent reads them.
  REQUIRE(f.disks.size() == 3);
  CHECK(f.disks[0].name == "nvme0n1");
  CHECK(f.disks[0].path == gpt);
  REQUIRE(f.disks[0].partitions.size() == 2);
  CHECK(f.disks[0].partitions[0].offset == 2048 * 512);
  CHECK(f.disks[0].partitions[0].size == 16384 * 512);
  CHECK(f.disks[0].partitions[0].file_system == "ext4");
  CHECK(f.disks[0].partitions[1].index == 3);
  CHECK(f.disks[0].partitions[1].offset == 18432ull * 512);
  REQUIRE(f.disks[1].partitions.size() == 3);
  CHECK(f.disks[1].partitions[0].offset == 2048 * 512);
  CHECK(f.disks[1].partitions[0].size == 20480 * 512);
  CHECK(f.disks[1].partitions[1].index == 5);
  CHECK(f.disks[1].partitions[1].offset == 24576ull * 512);
  CHECK(f.disks[1].partitions[1].size == 16384 * 512);
  CHECK(f.disks[1].partitions[2].index == 6);
  CHECK(f.disks[1].partitions[2].offset == 43008ull * 512);
  CHECK(f.disks[1].partitions[2].size == 8192 * 512);
  CHECK(f.disks[2].partition_style == "MBR");
  CHECK(f.disks[2].file_system == "btrfs");
  CHECK(f.disks[2].partitions.empty());
  CHECK(f.disks[2].size == 16 * kMiB);

  require_accepted(r);
}

TEST_CASE("agent facts: errors name the file or option", "[agent]") {
  TempDir dir;
  FactsOptions o;
  o.root = kRoot;

  SECTION("a stand-in that does not exist") {
    o.disks = {{"data", dir / "nope.img"}};
    const auto f = collect_facts(o);
    REQUIRE(f.status().code() == Code::kInvalidArgument);
    CHECK(f.status().message() == "--disk data: " + (dir / "nope.img") + ": no such file");
  }
  SECTION("a stand-in named twice, or not a file") {
    dmscore::testing::make_hole_image(dir / "a.img", kMiB);
    o.disks = {{"data", dir / "a.img"}, {"data", dir / "a.img"}};
    auto f = collect_facts(o);
    REQUIRE(f.status().code() == Code::kInvalidArgument);
    CHECK(f.status().message() == "--disk data: given twice");
    o.disks = {{"data", dir.path()}};
    f = collect_facts(o);
    REQUIRE(f.status().code() == Code::kInvalidArgument);
    CHECK(f.status().message() ==
          "--disk data: " + dir.path() + ": not a regular file or a block device");
    o.disks = {{"a/b", dir / "a.img"}};
    f = collect_facts(o);
    REQUIRE(f.status().code() == Code::kInvalidArgument);
    CHECK(f.status().message().starts_with("--disk a/b=" + (dir / "a.img") + ": NAME must"));
  }
  SECTION("a root that does not exist") {
    o.root = dir / "nowhere";
    const auto f = collect_facts(o);
    REQUIRE(f.status().code() == Code::kInvalidArgument);
    CHECK(f.status().message() == "--root " + (dir / "nowhere") + ": no such directory");
  }
  SECTION(
      "a root without etc/os-release: the OS version cannot be named, which the service "
      "requires") {
    fs::create_directories(dir / "etc");
    dmscore::testing::write_file(dir / "etc/hostname", "bare\n");
    o.root = dir.path();
    const auto f = collect_facts(o);
    REQUIRE(f.status().code() == Code::kFailedPrecondition);
    CHECK(f.status().message() == (dir / "etc/os-release") + ": no such file (nor " +
                                      (dir / "usr/lib/os-release") +
                                      "): the OS version cannot be named");
  }
  SECTION("a GPT header that claims more entries than the image holds") {
    const std::string bad = dir / "bad.img";
    dmscore::testing::make_hole_image(bad, kMiB);
    protective_mbr(bad, kMiB / 512);
    // 100000 entries of 128 bytes from LBA 2: 12.8 MB in a 1 MiB file; the header's own CRC is
    // right, so only the bounds stop it. There is no backup header.
    put(bad, 512, gpt_header(1, kMiB / 512 - 1, kMiB / 512, 2, 100000, 0));
    o.disks = {{"bad", bad}};
    const auto f = collect_facts(o);
    REQUIRE(f.status().code() == Code::kDataLoss);
    CHECK(f.status().message() ==
          "--disk bad: " + bad +
              ": GPT: the header at LBA 1 puts 100000 partition entries of 128 bytes at LBA 2, "
              "past the end of the disk (1048576 bytes); the backup: no header at LBA 2047");
  }
  SECTION("an MBR partition past the end of the image") {
    const std::string bad = dir / "short.img";
    dmscore::testing::make_hole_image(bad, kMiB);
    put(bad, 446, mbr_entry(0x00, 0x83, 2048, 20480));
    boot_signature(bad, 0);
    o.disks = {{"short", bad}};
    const auto f = collect_facts(o);
    REQUIRE(f.status().code() == Code::kDataLoss);
    CHECK(f.status().message() == "--disk short: " + bad +
                                      ": MBR: partition 1 (LBA 2048, 20480 sectors) ends past "
                                      "the end of the disk (2048 sectors of 512 bytes)");
  }
  SECTION("--name longer than the schema's 64 characters") {
    o.name = std::string(65, 'n');
    const auto f = collect_facts(o);
    REQUIRE(f.status().code() == Code::kInvalidArgument);
    CHECK(f.status().message().starts_with("--name: "));
  }
}

TEST_CASE("agent facts: paths resolve inside the root", "[agent]") {
  // An absolute symlink in the tree means the tree's file, not this machine's.
  TempDir dir;
  const std::string root = dir / "root";
  fs::copy(kRoot, root, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::remove(root + "/etc/os-release");
  fs::create_symlink("/usr/lib/os-release", root + "/etc/os-release");
  dmscore::testing::write_file(root + "/usr/lib/os-release", "ID=contained\nVERSION_ID=3.1\n");
  FactsOptions o;
  o.root = root;
  auto f = collect_facts(o);
  INFO(f.status().to_string());
  REQUIRE(f.ok());
#ifdef SYS_openat2
  // Kernels before 5.6 (and sandboxes that refuse openat2) cannot resolve inside a root.
  const long probe = ::syscall(SYS_openat2, -1, "", nullptr, 0);
  if (probe < 0 && (errno == ENOSYS || errno == EPERM)) {
    WARN("openat2 is not available here: the containment is not tested");
    return;
  }
#endif
  CHECK(f->report.at("os_version") == "CONTAINED3_1_64BIT");

  SECTION("the absolute symlink's target missing in the tree is missing, not the host's") {
    fs::remove(root + "/usr/lib/os-release");
    const auto g = collect_facts(o);
    REQUIRE(g.status().code() == Code::kFailedPrecondition);
    CHECK(g.status().message().starts_with(root + "/etc/os-release: no such file"));
  }
}
