#pragma once
// NvmeHost: this machine as an NVMe/TCP host, driven the standard Linux way: nvme-cli for the
// fabric (`nvme connect`, `nvme disconnect`) and sysfs for what the kernel made of it.
//
//   use(subsysnqn, endpoints)
//     a live controller of ours to the subsystem in <sysfs>/class/nvme/*? ── yes ──► reuse it
//     │ no
//     ▼ record("nvme:<subsysnqn>"), then `nvme connect -t tcp -a <host> -s <port> -n <nqn>
//       -q <host nqn> ...` per NVMe endpoint (one live path is enough)
//   device(subsysnqn, nsid)
//     <sysfs>/class/nvme-subsystem/*/subsysnqn == nqn, its namespaces' (and its controllers')
//     nvme*n* directories, `nsid` == nsid ──► <dev>/<that name>, waited for until it appears
//   last Use released ──► `nvme disconnect -n <nqn>`, only when this process made the connection
//
// The program and both roots are options, so tests run this same code against a model of the
// kernel (tests/lightos_emulator/nvme_model.py). Controllers are the host's, not a driver's: one
// NvmeHost per (program, roots, host NQN) in the process counts every user of a subsystem.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dmscore/copy.hpp"
#include "dmscore/env.hpp"
#include "dmscore/result.hpp"

namespace dmscore::detail {

struct NvmeHostOptions {
  std::string cli = "nvme";
  std::string sysfs_root = "/sys";
  std::string dev_root = "/dev";
  // This host's NQN, as the clusters' ACLs name it. REQUIRES: not empty.
  std::string host_nqn;
  // Bound on one nvme-cli run.
  std::chrono::milliseconds command_timeout{60000};
  // Bound on waiting for a namespace's device node to appear.
  std::chrono::milliseconds device_timeout{30000};
  std::shared_ptr<Env> env;
};

// The host NQN: `configured` when set, else the first line of `file` (/etc/nvme/hostnqn).
// FAILED_PRECONDITION saying how to make one when neither gives an NQN.
Result<std::string> resolve_host_nqn(const std::string& configured, const std::string& file);

class NvmeHost : public std::enable_shared_from_this<NvmeHost> {
 public:
  static std::shared_ptr<NvmeHost> shared(const NvmeHostOptions& options);
  explicit NvmeHost(NvmeHostOptions options);

  const NvmeHostOptions& options() const { return options_; }

  // Keeps the host connected to one subsystem while it lives.
  class Use {
   public:
    Use(std::shared_ptr<NvmeHost> host, std::string nqn)
        : host_(std::move(host)), nqn_(std::move(nqn)) {}
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    const std::string& nqn() const { return nqn_; }

   private:
    std::shared_ptr<NvmeHost> host_;
    std::string nqn_;
  };

  // Connects to `nqn` through `endpoints` ("host:port") unless a live controller of this host's
  // to it exists. `record` (when given) is called with "nvme:<nqn>" before a connection is made
  // here. UNAVAILABLE naming the endpoints and nvme-cli's words when no path connects.
  Result<std::shared_ptr<Use>> use(const std::string& nqn,
                                   const std::vector<std::string>& endpoints,
                                   const std::function<Status(const std::string&)>& record);

  // The device node of namespace `nsid` of subsystem `nqn`, once it appears (within
  // device_timeout; `stop` cuts the wait short with CANCELLED). NOT_FOUND "did not appear".
  Result<std::string> device(const std::string& nqn, std::uint32_t nsid, const StopFn& stop = {});

  // True when a live controller of this host's to `nqn` exists.
  bool connected(const std::string& nqn) const;

  // Disconnects `nqn` when nothing in this process uses it; what a run before a crash left
  // connected. OK when there is nothing to do.
  Status release(const std::string& nqn);

 private:
  void drop(const std::string& nqn);
  Status disconnect(const std::string& nqn);

  NvmeHostOptions options_;
  std::shared_ptr<Env> env_;
  std::mutex mu_;
  struct Sub {
    int users = 0;
    bool ours = false;  // this process made the connection
  };
  std::map<std::string, Sub> subs_;
  std::map<std::string, std::shared_ptr<std::mutex>> connect_mu_;
};

}  // namespace dmscore::detail
