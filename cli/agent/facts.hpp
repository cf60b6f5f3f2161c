#pragma once
// The fact collector of the migration agent (`dmsctl agent`): what a running Linux system is, as
// the body of SMS's source registration (`POST /v3/sources`, checked by the service in
// src/sources/source_schema.cpp), and where the agent finds the disks it reports.
//
// Every system fact is read from files below FactsOptions::root (procfs, sysfs, /etc, /boot,
// /dev), so a copy of those files stands for a machine in tests and a mounted system can be
// described from outside; no child process is run. Paths are resolved as if `root` were "/"
// (openat2 RESOLVE_IN_ROOT), so an absolute symlink inside the tree stays inside it. The only
// files read outside `root` are the --disk stand-ins.
//
// What the service requires of a report (an OS version, a name, a network with a MAC address,
// an IPv4 or IPv6 address) fails the collection when the tree cannot tell it, with the file that
// was missing or wrong in the message; every other fact that cannot be read is left out of the
// report (or, for the flags the seed calls mandatory on Linux, reported as absent: has_rsync
// false, raw_devices ""). The schema's bounds on arrays are kept: more than 50 disks, or more
// than 50 partitions on one disk, fail the collection (those are what the agent migrates);
// networks, volume groups and logical volumes past 50 are left out.
//
// The report holds no figure that moves with the load (used bytes, read latency): collecting
// twice from an unchanged system gives the same report, so a changed report means changed facts.

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "dmscore/result.hpp"

namespace dmsctl::agent {

// `--disk NAME=PATH`: report the image or device at PATH as the disk NAME.
struct DiskStandIn {
  std::string name;
  std::string path;
};

struct FactsOptions {
  // --root DIR: read every system fact below DIR.
  std::string root = "/";
  // When not empty: exactly these disks are reported, in this order, and the tree's storage
  // (sys/block, device mapper, btrfs, mounts) is not: it describes other disks.
  std::vector<DiskStandIn> disks;
  // Reported as agent_version.
  std::string agent_version;
  // When not empty, the source's name; else the hostname.
  std::string name;
};

// A partition of a collected disk, where the agent finds it on the disk.
struct CollectedPartition {
  int index = 0;             // as in physical_volumes[].index: GPT slot + 1; MBR 1..4, logical 5..
  std::string name;          // as in physical_volumes[].name: "/dev/vda1", "/dev/nvme0n1p1"
  std::uint64_t offset = 0;  // bytes from the start of the disk
  std::uint64_t size = 0;    // bytes
  std::string file_system;   // "" when not recognised
};

struct CollectedDisk {
  std::string name;        // as in the report's disks[].name ("sda", or the stand-in's NAME)
  std::string path;        // what the agent reads: /dev/<name> under root, or the stand-in file
  std::uint64_t size = 0;  // bytes
  // As reported: "GPT", or "MBR" (also for a disk without a partition table, as SMS's own agent
  // reports a whole-disk LVM physical volume).
  std::string partition_style;
  // The file system (or LVM2_member, crypto_LUKS) found on a disk without partitions; "" when
  // none was recognised or the disk is partitioned.
  std::string file_system;
  std::vector<CollectedPartition> partitions;  // in index order
};

struct Facts {
  boost::json::object report;        // the POST /v3/sources body
  std::vector<CollectedDisk> disks;  // in report order
};

// The registration report of the system below options.root. INVALID_ARGUMENT for options that
// are wrong ("--disk data: /x/y: no such file", "--root /x: no such directory"),
// FAILED_PRECONDITION when the tree cannot tell what the service requires
// ("/etc/os-release: no such file (nor /usr/lib/os-release): the OS version cannot be named"),
// PERMISSION_DENIED for a stand-in that cannot be opened, DATA_LOSS for one whose partition table
// is broken ("--disk data: /x/y: GPT: ...").
dmscore::Result<Facts> collect_facts(const FactsOptions& options);

}  // namespace dmsctl::agent
