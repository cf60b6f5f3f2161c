#pragma once
// The Lightbits data path under test: LightOS emulators with their data plane, and the host side
// modelled by tests/lightos_emulator/nvme_model.py (nvme-cli's commands) over a sysfs tree and
// device nodes in a test directory. The service runs its real code: nvme-cli arguments, sysfs
// discovery, device I/O.

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "dmscore/options.hpp"
#include "lightos_emulator.hpp"
#include "test_util.hpp"

namespace dmscore::testing {

inline constexpr const char* kTestHostNqn =
    "nqn.2014-08.org.nvmexpress:uuid:5e1f0c2a-7b3d-4c9e-8f10-a1b2c3d4e5f6";

// A host as the model sees it: <dir>/sys, <dir>/dev, and <dir>/nvme, the program the service runs
// as nvme-cli.
struct ModelHost {
  std::string dir, sysfs, dev, nvme;

  explicit ModelHost(const std::string& d)
      : dir(d), sysfs(d + "/sys"), dev(d + "/dev"), nvme(d + "/nvme") {
    std::filesystem::create_directories(sysfs);
    std::filesystem::create_directories(dev);
    write_file(nvme, "#!/bin/sh\nexec /usr/bin/python3 " DMSCORE_SOURCE_DIR
                     "/tests/lightos_emulator/nvme_model.py --sysfs-root " +
                         sysfs + " --dev-root " + dev + " \"$@\"\n");
    std::filesystem::permissions(nvme, std::filesystem::perms(0755));
  }

  // The service's options for this host.
  void configure(Options& o) const {
    o.host_nqn = kTestHostNqn;
    o.nvme_cli = nvme;
    o.sysfs_root = sysfs;
    o.dev_root = dev;
  }

  // Controllers the kernel (model) has now.
  std::vector<std::string> controllers() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(sysfs + "/class/nvme", ec), end; !ec && it != end;
         it.increment(ec))
      out.push_back(it->path().filename().string());
    return out;
  }
};

inline boost::json::object emulator_state(LightosEmulator& emu) {
  return boost::json::parse(emu.control("GET", "/control/state")).as_object();
}

// Where the emulator keeps the data of volume or snapshot `id`.
inline std::string emulator_data(LightosEmulator& emu, const std::string& id) {
  auto st = emulator_state(emu);
  return std::string(st.at("data").at("dataDir").as_string()) + "/" + id + ".img";
}

// What the data path may leave on a cluster: temporary volumes, ACL entries naming the host,
// connections. Empty when there is none; else a description.
inline std::string data_path_leftovers(LightosEmulator& emu) {
  std::string out;
  auto st = emulator_state(emu);
  for (const auto& v : st.at("volumes").as_array()) {
    const auto& o = v.as_object();
    const std::string name(o.at("name").as_string());
    if (name.rfind("dms-read-", 0) == 0) out += "temporary volume " + name + "; ";
    for (const auto& a : o.at("acl").at("values").as_array())
      if (a.as_string() == kTestHostNqn) out += "ACL entry on " + name + "; ";
  }
  if (!st.at("data").at("connections").as_array().empty()) out += "a connection; ";
  return out;
}

}  // namespace dmscore::testing
