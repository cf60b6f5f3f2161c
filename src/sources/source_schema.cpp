#include "sources/source_schema.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

namespace dmscore {

const std::vector<std::string>& source_states() {
  static const auto& v = *new std::vector<std::string>{
      "unavailable",  "waiting",     "initialize",  "replicate", "syncing",
      "stopping",     "stopped",     "skipping",    "deleting",  "clearing",
      "cleared",      "clearfailed", "premigready", "premiging", "premiged",
      "premigfailed", "cloning",     "cutovering",  "finished",  "error"};
  return v;
}

const std::vector<std::string>& source_migration_cycles() {
  static const auto& v = *new std::vector<std::string>{"cutovering", "cutovered",   "checking",
                                                       "setting",    "replicating", "syncing"};
  return v;
}

}  // namespace dmscore

namespace dmscore::detail {

namespace json = boost::json;

namespace {

constexpr std::int64_t kI32 = 2147483647;
constexpr std::int64_t kI64 = std::numeric_limits<std::int64_t>::max();

enum class Kind {
  kString,
  kInteger,  // Integer (int32) and Long (int64) alike, bounded by min/max
  kSize,     // a Long that may also be given with a unit ("3.30GiB")
  kDouble,
  kBool,
  kObjects,  // an array of objects of `element`
  kIpv4,
  kIpv6,
};

struct Type;

struct Field {
  const char* name;
  Kind kind;
  bool required = false;
  std::int64_t min = 0;  // length, value or item count
  std::int64_t max = 255;
  const std::vector<std::string>* values = nullptr;  // an enumeration
  const Type* element = nullptr;
};

struct Type {
  const char* name;
  std::vector<Field> fields;
};

// The enumerations, whose lists the seed document lost; as Huawei's SDK models spell them.
const std::vector<std::string> kOsTypes = {"WINDOWS", "LINUX"};
const std::vector<std::string> kFirmwares = {"BIOS", "UEFI"};
const std::vector<std::string> kPlatforms = {"hw",      "ali",    "aws",    "azure", "gcp",
                                             "tencent", "vmware", "hyperv", "other", "default"};

Field str(const char* n, std::int64_t max = 255, std::int64_t min = 0, bool req = false) {
  return Field{n, Kind::kString, req, min, max};
}
Field integer(const char* n, std::int64_t max) { return Field{n, Kind::kInteger, false, 0, max}; }
Field boolean(const char* n) { return Field{n, Kind::kBool}; }
Field objects(const char* n, const Type& t, std::int64_t max, std::int64_t min = 0,
              bool req = false) {
  return Field{n, Kind::kObjects, req, min, max, nullptr, &t};
}
Field one_of(const char* n, const std::vector<std::string>& v) {
  return Field{n, Kind::kString, false, 0, 255, &v};
}

const Type kSubvolume{"BtrfsSubvolumn",
                      {str("uuid"), str("is_snapshot"), str("subvol_id"), str("parent_id"),
                       str("subvol_name"), str("subvol_mount_path")}};

const Type kBtrfs{
    "BtrfsFileSystem",
    {str("name"), str("label"), str("uuid"), str("device"),
     Field{"size", Kind::kSize, false, 0, kI64}, integer("nodesize", kI64),
     integer("sectorsize", kI32), str("data_profile"), str("system_profile"),
     str("metadata_profile"), str("global_reserve1"), integer("g_vol_used_size", kI64),
     str("default_subvolid"), str("default_subvol_name"), str("default_subvol_mountpath"),
     objects("subvolumn", kSubvolume, 65535)}};

const Type kPhysicalVolume{
    "PhysicalVolume",
    {str("device_use"), str("file_system"), integer("index", kI32), str("mount_point"), str("name"),
     integer("size", kI64), integer("used_size", kI64), integer("inode_size", kI32),
     integer("inode_nums", kI64), str("uuid"), integer("size_per_cluster", kI32)}};

const Type kDisk{"ServerDisk",
                 {str("name"), str("partition_style"), str("device_use"), integer("size", kI64),
                  integer("used_size", kI64), objects("physical_volumes", kPhysicalVolume, 50),
                  boolean("os_disk"), str("relation_name"), integer("inode_size", kI32)}};

const Type kNetwork{"NetWork",
                    {str("name"), str("ip"), str("ipv6"), str("netmask"), str("gateway"),
                     integer("mtu", kI32), str("mac", 255, 0, true), str("id")}};

const Type kLogicalVolume{
    "LogicalVolumes",
    {integer("block_count", kI32), integer("block_size", 1048576), str("file_system"),
     integer("inode_size", kI32), integer("inode_nums", kI64), str("device_use"),
     str("mount_point", 256), str("name", 1024), integer("size", kI64), integer("used_size", kI64),
     integer("free_size", kI64)}};

const Type kVolumeGroup{
    "VolumeGroups",
    {str("components"), integer("free_size", kI64), objects("logical_volumes", kLogicalVolume, 50),
     str("name"), integer("size", kI64)}};

const Type kSource{"PostSourceServerBody",
                   {str("id"),
                    Field{"ip", Kind::kIpv4},
                    Field{"ipv6", Kind::kIpv6},
                    str("name", 64, 1, true),
                    str("hostname", 64, 1),
                    Field{"os_type", Kind::kString, true, 0, 255, &kOsTypes},
                    str("os_version", 255, 0, true),
                    str("linux_block_check"),
                    one_of("firmware", kFirmwares),
                    integer("cpu_quantity", 65535),
                    integer("memory", kI64),
                    objects("disks", kDisk, 50),
                    objects("btrfs_list", kBtrfs, 65535),
                    objects("networks", kNetwork, 50, 1, true),
                    str("domain_id"),
                    boolean("has_rsync"),
                    boolean("paravirtualization"),
                    str("raw_devices"),
                    boolean("driver_files"),
                    boolean("system_services"),
                    boolean("account_rights"),
                    str("boot_loader"),
                    str("system_dir"),
                    objects("volume_groups", kVolumeGroup, 50),
                    str("agent_version", 255, 0, true),
                    str("kernel_version"),
                    one_of("migration_cycle", source_migration_cycles()),
                    one_of("state", source_states()),
                    boolean("oem_system"),
                    str("start_type"),
                    Field{"io_read_wait", Kind::kDouble, false, 0, 10000},
                    boolean("has_tc"),
                    one_of("platform", kPlatforms)}};

// Code points of well-formed UTF-8 (the parser has checked it).
std::int64_t length(std::string_view s) {
  std::int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

class Checker {
 public:
  Status status;

  json::object object(const json::object& in, const Type& type, const std::string& path) {
    json::object out;
    for (const auto& [key, value] : in) {
      bool known = false;
      for (const auto& f : type.fields) known |= key == f.name;
      if (!known) {
        std::string name(key.substr(0, 64));
        for (char& c : name)
          if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
        fail(at(path, name), "unknown field of " + std::string(type.name));
        return out;
      }
    }
    for (const auto& f : type.fields) {
      const json::value* v = in.if_contains(f.name);
      const std::string p = at(path, f.name);
      if (!v || v->is_null()) {
        if (f.required) fail(p, "required");
        if (!status.ok()) return out;
        continue;
      }
      json::value c = field(*v, f, p);
      if (!status.ok()) return out;
      out.emplace(f.name, std::move(c));
    }
    return out;
  }

 private:
  static std::string at(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  void fail(const std::string& path, const std::string& what) {
    if (status.ok()) status = Status::InvalidArgument(path + ": " + what);
  }

  json::value field(const json::value& v, const Field& f, const std::string& p) {
    switch (f.kind) {
      case Kind::kString:
      case Kind::kIpv4:
      case Kind::kIpv6:
        return string(v, f, p);
      case Kind::kInteger:
      case Kind::kSize:
        return integer(v, f, p);
      case Kind::kDouble:
        return real(v, f, p);
      case Kind::kBool:
        return boolean(v, p);
      case Kind::kObjects:
        return array(v, f, p);
    }
    return nullptr;
  }

  json::value string(const json::value& v, const Field& f, const std::string& p) {
    std::string s;
    if (v.is_string()) {
      s = std::string(v.get_string());
    } else if (v.is_int64() || v.is_uint64() || v.is_double() || v.is_bool()) {
      s = json::serialize(v);  // as SMS's JSON binding coerces a scalar into a String field
    } else {
      fail(p, "must be a string");
      return nullptr;
    }
    const std::int64_t n = length(s);
    if (f.kind == Kind::kIpv4 || f.kind == Kind::kIpv6) {
      if (n > f.max) {
        fail(p, "must be at most " + std::to_string(f.max) + " characters");
        return nullptr;
      }
      unsigned char buf[16];
      const bool v6 = f.kind == Kind::kIpv6;
      if (!s.empty() && inet_pton(v6 ? AF_INET6 : AF_INET, s.c_str(), buf) != 1) {
        fail(p, v6 ? "must be an IPv6 address in standard form (2001:db8::1)"
                   : "must be an IPv4 address in dotted-decimal form (192.168.0.1)");
        return nullptr;
      }
      return json::value(s);
    }
    if (f.values) {
      for (const auto& allowed : *f.values)
        if (allowed == s) return json::value(s);
      std::string list;
      for (const auto& allowed : *f.values) list += (list.empty() ? "" : ", ") + allowed;
      fail(p, "must be one of " + list);
      return nullptr;
    }
    if (n < f.min) {
      fail(p, f.min == 1 ? std::string("must not be empty")
                         : "must be at least " + std::to_string(f.min) + " characters");
      return nullptr;
    }
    if (n > f.max) {
      fail(p, "must be at most " + std::to_string(f.max) + " characters");
      return nullptr;
    }
    return json::value(s);
  }

  json::value integer(const json::value& v, const Field& f, const std::string& p) {
    const std::string range =
        "an integer " + std::to_string(f.min) + ".." + std::to_string(f.max) +
        (f.kind == Kind::kSize ? " (bytes, or a size with a unit such as 3.30GiB)" : "");
    std::optional<std::int64_t> n;
    bool too_big = false;
    if (v.is_int64()) {
      n = v.get_int64();
    } else if (v.is_uint64()) {
      too_big = true;
    } else if (v.is_string()) {
      std::string_view s = v.get_string();
      std::int64_t x = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (!s.empty() && ptr == s.data() + s.size() && ec == std::errc()) {
        n = x;
      } else if (!s.empty() && ptr == s.data() + s.size() && ec == std::errc::result_out_of_range) {
        too_big = s.front() != '-';
        if (!too_big) {
          fail(p, "must be at least " + std::to_string(f.min));
          return nullptr;
        }
      } else if (f.kind == Kind::kSize) {
        n = parse_size_with_unit(s);
      }
    }
    if (too_big || (n && *n > f.max)) {
      fail(p, "must be at most " + std::to_string(f.max));
      return nullptr;
    }
    if (!n) {
      fail(p, "must be " + range);
      return nullptr;
    }
    if (*n < f.min) {
      fail(p, "must be at least " + std::to_string(f.min));
      return nullptr;
    }
    return json::value(*n);
  }

  json::value real(const json::value& v, const Field& f, const std::string& p) {
    std::optional<double> d;
    if (v.is_double() || v.is_int64() || v.is_uint64()) {
      d = v.to_number<double>();
    } else if (v.is_string()) {
      std::string_view s = v.get_string();
      double x = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (!s.empty() && ptr == s.data() + s.size() && ec == std::errc()) d = x;
    }
    if (!d || !std::isfinite(*d)) {
      fail(p, "must be a number " + std::to_string(f.min) + ".0.." + std::to_string(f.max) + ".0");
      return nullptr;
    }
    if (*d < static_cast<double>(f.min)) {
      fail(p, "must be at least " + std::to_string(f.min) + ".0");
      return nullptr;
    }
    if (*d > static_cast<double>(f.max)) {
      fail(p, "must be at most " + std::to_string(f.max) + ".0");
      return nullptr;
    }
    return json::value(*d);
  }

  json::value boolean(const json::value& v, const std::string& p) {
    if (v.is_bool()) return v;
    if (v.is_string() && (v.get_string() == "true" || v.get_string() == "false"))
      return json::value(v.get_string() == "true");
    fail(p, "must be true or false");
    return nullptr;
  }

  json::value array(const json::value& v, const Field& f, const std::string& p) {
    const json::array* a = v.if_array();
    if (!a) {
      fail(p, std::string("must be an array of ") + f.element->name + " objects");
      return nullptr;
    }
    const auto n = static_cast<std::int64_t>(a->size());
    if (n < f.min) {
      fail(p, "must hold at least " + std::to_string(f.min) + " item" + (f.min == 1 ? "" : "s"));
      return nullptr;
    }
    if (n > f.max) {
      fail(p, "must hold at most " + std::to_string(f.max) + " items");
      return nullptr;
    }
    json::array out;
    out.reserve(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
      const std::string ip = p + "[" + std::to_string(i) + "]";
      const json::object* o = (*a)[i].if_object();
      if (!o) {
        fail(ip, std::string("must be a ") + f.element->name + " object");
        return nullptr;
      }
      out.push_back(object(*o, *f.element, ip));
      if (!status.ok()) return nullptr;
    }
    return out;
  }
};

const json::value* get(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && !v->is_null() ? v : nullptr;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string report_text(const json::object& o, const char* key) {
  const json::value* v = get(o, key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::int64_t report_int(const json::object& o, const char* key) {
  const json::value* v = get(o, key);
  return v && v->is_int64() ? v->get_int64() : 0;
}

std::optional<std::int64_t> parse_size_with_unit(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) return std::nullopt;
  std::size_t j = i;
  if (j < s.size() && s[j] == '.') {
    ++j;
    const std::size_t frac = j;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == frac) return std::nullopt;
  }
  const std::string number(s.substr(0, j));
  std::string_view unit = s.substr(j);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  static const std::pair<const char*, long double> kUnits[] = {{"", 1.0L},
                                                               {"B", 1.0L},
                                                               {"KiB", 1024.0L},
                                                               {"MiB", 1048576.0L},
                                                               {"GiB", 1073741824.0L},
                                                               {"TiB", 1099511627776.0L},
                                                               {"PiB", 1125899906842624.0L},
                                                               {"EiB", 1152921504606846976.0L},
                                                               {"KB", 1e3L},
                                                               {"MB", 1e6L},
                                                               {"GB", 1e9L},
                                                               {"TB", 1e12L},
                                                               {"PB", 1e15L},
                                                               {"EB", 1e18L}};
  for (const auto& [name, factor] : kUnits) {
    if (unit != name) continue;
    if (unit.empty() && number.find('.') != std::string::npos) return std::nullopt;
    const long double bytes = std::strtold(number.c_str(), nullptr) * factor;
    if (!(bytes < 9223372036854775807.0L)) return std::nullopt;
    return static_cast<std::int64_t>(bytes);
  }
  return std::nullopt;
}

Result<json::object> canonical_source_report(const json::value& body) {
  const json::object* o = body.if_object();
  if (!o) return Status::InvalidArgument("body: must be a JSON object");
  Checker c;
  json::object out = c.object(*o, kSource, "");
  if (!c.status.ok()) return c.status;
  // Either address, in its standard form.
  if (report_text(out, "ip").empty() && report_text(out, "ipv6").empty())
    return Status::InvalidArgument("ip: ip or ipv6 is required");
  const json::array& nets = out.at("networks").as_array();
  if (report_text(nets[0].as_object(), "mac").empty())
    return Status::InvalidArgument("networks[0].mac: the first network's mac must not be empty");
  return out;
}

std::vector<SourceDisk> source_disks(const json::object& report) {
  std::vector<SourceDisk> out;
  const json::value* disks = get(report, "disks");
  if (!disks) return out;
  for (const auto& d : disks->as_array()) {
    const json::object& o = d.as_object();
    SourceDisk disk;
    disk.name = report_text(o, "name");
    disk.device_use = report_text(o, "device_use");
    disk.partition_style = report_text(o, "partition_style");
    disk.size = static_cast<std::uint64_t>(report_int(o, "size"));
    disk.used_size = static_cast<std::uint64_t>(report_int(o, "used_size"));
    const json::value* os = get(o, "os_disk");
    disk.os_disk = os && os->is_bool() && os->get_bool();
    out.push_back(std::move(disk));
  }
  return out;
}

std::vector<SourceCheck> check_source_environment(const json::object& r) {
  std::vector<SourceCheck> out;
  auto add = [&](const char* name, bool ok, const char* code, std::string message,
                 std::vector<std::string> params = {}) {
    SourceCheck c;
    c.id = static_cast<std::int64_t>(out.size()) + 1;
    c.name = name;
    c.result = ok ? "OK" : "ERROR";
    if (!ok) {
      c.error_code = code;
      c.message = std::move(message);
      c.params = std::move(params);
    }
    out.push_back(std::move(c));
  };
  const std::string os_type = report_text(r, "os_type");
  const std::string version = upper(report_text(r, "os_version"));
  const bool linux = os_type == "LINUX";

  // 1. The OS: a 64-bit Linux or Windows with a version named.
  {
    std::string why;
    if (version.empty())
      why = "os_version is empty: the agent must name the OS version";
    else if (version.find("32BIT") != std::string::npos)
      why = "32-bit systems cannot be migrated: " + report_text(r, "os_version");
    add("os_version", why.empty(), "SMS.2206", why, {"os_version"});
  }
  // 2. The architecture the agent saw (linux_block_check's JSON), when it says.
  {
    std::string arch;
    if (auto lbc = report_text(r, "linux_block_check"); !lbc.empty()) {
      boost::system::error_code ec;
      json::value v = json::parse(lbc, ec);
      if (!ec && v.is_object()) arch = report_text(v.as_object(), "architecture");
    }
    const bool ok = arch.empty() || arch == "x86_64" || arch == "aarch64";
    add("architecture", ok, "SMS.0206",
        "only x86_64 and aarch64 sources can be migrated, not " + arch, {"linux_block_check"});
  }
  // 3. The fields the seed marks mandatory for the OS (the check fails without them).
  {
    std::vector<std::string> missing;
    const std::vector<const char*> need =
        linux ? std::vector<const char*>{"btrfs_list",  "has_rsync",   "paravirtualization",
                                         "raw_devices", "boot_loader", "volume_groups",
                                         "has_tc"}
              : std::vector<const char*>{"driver_files", "system_services", "account_rights",
                                         "system_dir"};
    for (const char* f : need)
      if (!get(r, f)) missing.push_back(f);
    if (linux) {
      const auto& nets = r.at("networks").as_array();
      for (std::size_t i = 0; i < nets.size(); ++i)
        if (!get(nets[i].as_object(), "mtu"))
          missing.push_back("networks[" + std::to_string(i) + "].mtu");
    }
    if (const json::value* disks = get(r, "disks")) {
      const auto& a = disks->as_array();
      for (std::size_t i = 0; i < a.size(); ++i)
        if (report_text(a[i].as_object(), "partition_style").empty())
          missing.push_back("disks[" + std::to_string(i) + "].partition_style");
    }
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    add("mandatory_fields", missing.empty(), "DMS.3001",
        "the agent did not report what a " + std::string(linux ? "Linux" : "Windows") +
            " source must: " + list,
        missing);
  }
  // 4. The boot loader (Linux: GRUB only) and the firmware (BIOS or UEFI, reported).
  if (linux) {
    const std::string bl = report_text(r, "boot_loader");
    add("boot_loader", bl.empty() || upper(bl) == "GRUB", "DMS.3002",
        "only GRUB can be migrated, not the boot loader " + bl, {"boot_loader"});
  }
  add("firmware", get(r, "firmware") != nullptr, "DMS.3003",
      "the firmware (BIOS or UEFI) was not reported: the target cannot be made bootable",
      {"firmware"});
  // 5. Something to migrate: at least one disk with a size, and known partition tables.
  {
    const auto disks = source_disks(r);
    bool any = false;
    std::vector<std::string> bad;
    for (const auto& d : disks) {
      any |= d.size > 0;
      if (!d.partition_style.empty() && d.partition_style != "MBR" && d.partition_style != "GPT")
        bad.push_back(d.name);
    }
    add("disks", any, "DMS.3004", "no disk with a size was reported", {"disks"});
    std::string list;
    for (const auto& b : bad) list += (list.empty() ? "" : ", ") + b;
    add("partition_style", bad.empty(), "DMS.3005",
        "only MBR and GPT partition tables can be migrated; not those of " + list, bad);
  }
  // 6. Windows: driver files present, no abnormal services, the agent's rights sufficient.
  if (!linux) {
    std::vector<std::string> bad;
    auto flag = [&](const char* k) {
      const json::value* v = get(r, k);
      return v && v->is_bool() ? std::optional<bool>(v->get_bool()) : std::nullopt;
    };
    if (flag("driver_files").value_or(false)) bad.push_back("driver_files");
    if (flag("system_services").value_or(false)) bad.push_back("system_services");
    if (!flag("account_rights").value_or(true)) bad.push_back("account_rights");
    std::string list;
    for (const auto& b : bad) list += (list.empty() ? "" : ", ") + b;
    add("windows_environment", bad.empty(), "DMS.3006",
        "the Windows environment is not ready: " + list, bad);
  }
  return out;
}

}  // namespace dmscore::detail
