#include "backends/nvme_host.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "base/backoff.hpp"
#include "base/hook.hpp"

namespace dmscore::detail {

namespace fs = std::filesystem;

namespace {

// The first line of a small sysfs attribute, without its newline; empty when unreadable.
std::string attr(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  if (!in || !std::getline(in, line)) return {};
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == ' '))
    line.pop_back();
  return line;
}

bool valid_nqn(const std::string& nqn) {
  if (nqn.size() < 5 || nqn.size() > 223 || nqn.rfind("nqn.", 0) != 0) return false;
  return std::all_of(nqn.begin(), nqn.end(),
                     [](char c) { return c > ' ' && c < 0x7f && c != '"' && c != '\\'; });
}

// "nvme12" (a controller) and "nvme3n1" (a namespace) as the kernel names them.
bool controller_name(const std::string& n) {
  return n.size() > 4 && n.rfind("nvme", 0) == 0 &&
         n.find_first_not_of("0123456789", 4) == std::string::npos;
}
bool namespace_name(const std::string& n) {
  if (n.size() < 7 || n.rfind("nvme", 0) != 0) return false;
  auto at = n.find('n', 4);
  if (at == std::string::npos || at == 4) return false;
  const std::string a = n.substr(4, at - 4), b = n.substr(at + 1);
  auto digits = [](const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
  };
  return digits(a) && digits(b);  // "nvme0c1n1", a hidden path of a multipath head, is not one
}

std::string first_line(const std::string& text) {
  std::string s = text.substr(0, text.find('\n'));
  if (s.size() > 300) s.resize(300);
  return s;
}

}  // namespace

Result<std::string> resolve_host_nqn(const std::string& configured, const std::string& file) {
  if (!configured.empty()) {
    if (!valid_nqn(configured))
      return Status::InvalidArgument(
          "host_nqn: not an NVMe qualified name (nqn.<date>.<domain>:...)");
    return configured;
  }
  const std::string nqn = attr(file);
  if (nqn.empty())
    return Status::FailedPrecondition("this host has no NVMe host NQN: " + file +
                                      " is missing or empty (make one with `nvme gen-hostnqn > " +
                                      file + "`, or give the service --host-nqn)");
  if (!valid_nqn(nqn)) return Status::FailedPrecondition(file + " does not hold an NVMe NQN");
  return nqn;
}

std::shared_ptr<NvmeHost> NvmeHost::shared(const NvmeHostOptions& options) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<NvmeHost>> hosts;
  const std::string key =
      options.cli + '\n' + options.sysfs_root + '\n' + options.dev_root + '\n' + options.host_nqn;
  std::lock_guard lock(mu);
  if (auto h = hosts[key].lock()) return h;
  auto h = std::make_shared<NvmeHost>(options);
  hosts[key] = h;
  return h;
}

NvmeHost::NvmeHost(NvmeHostOptions options)
    : options_(std::move(options)), env_(options_.env ? options_.env : Env::Default()) {}

NvmeHost::Use::~Use() { host_->drop(nqn_); }

bool NvmeHost::connected(const std::string& nqn) const {
  std::error_code ec;
  const fs::path dir = fs::path(options_.sysfs_root) / "class" / "nvme";
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path c = it->path();
    if (!controller_name(c.filename().string())) continue;
    if (attr(c / "subsysnqn") != nqn) continue;
    const std::string host = attr(c / "hostnqn");
    if (!host.empty() && host != options_.host_nqn) continue;
    if (attr(c / "state") == "live") return true;
  }
  return false;
}

Result<std::shared_ptr<NvmeHost::Use>> NvmeHost::use(
    const std::string& nqn, const std::vector<std::string>& endpoints,
    const std::function<Status(const std::string&)>& record) {
  if (!valid_nqn(nqn)) return Status::FailedPrecondition("subsystem NQN " + nqn + " is not valid");
  std::shared_ptr<std::mutex> one;
  {
    std::lock_guard lock(mu_);
    auto& m = connect_mu_[nqn];
    if (!m) m = std::make_shared<std::mutex>();
    one = m;
    ++subs_[nqn].users;  // counted before connecting, so a concurrent drop does not disconnect
  }
  auto use = std::make_shared<Use>(shared_from_this(), nqn);
  std::lock_guard connecting(*one);
  if (connected(nqn)) return use;
  if (record) {
    if (Status s = record("nvme:" + nqn); !s.ok()) return s;
  }
  std::string why;
  bool any = false;
  for (const auto& e : endpoints) {
    const auto colon = e.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == e.size()) {
      why += (why.empty() ? "" : "; ") + e + ": not host:port";
      continue;
    }
    std::string host = e.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    std::vector<std::string> args{"connect",          "--transport=tcp",
                                  "--traddr=" + host, "--trsvcid=" + e.substr(colon + 1),
                                  "--nqn=" + nqn,     "--hostnqn=" + options_.host_nqn};
    auto run = run_program(options_.cli, args, options_.command_timeout);
    if (!run.ok()) {
      why += (why.empty() ? "" : "; ") + e + ": " + run.status().message();
      continue;
    }
    const std::string said = first_line(run->err.empty() ? run->out : run->err);
    // nvme-cli answers "already connected" (and a non-zero status) for a path that exists.
    if (run->exit_code == 0 || said.find("already connected") != std::string::npos) {
      any = true;
      continue;
    }
    why += (why.empty() ? "" : "; ") + e + ": nvme connect exited with status " +
           std::to_string(run->exit_code) + (said.empty() ? "" : ": " + said);
  }
  if (any || connected(nqn)) {
    std::lock_guard lock(mu_);
    subs_[nqn].ours = true;
    return use;
  }
  return Status::Unavailable(
      "cannot connect to NVMe subsystem " + nqn + " (" + (why.empty() ? "no NVMe endpoint" : why) +
      "); check that this host reaches the cluster's NVMe endpoints over TCP, that the nvme-tcp "
      "module is loaded (modprobe nvme-tcp) and that nvme-cli is installed");
}

Result<std::string> NvmeHost::device(const std::string& nqn, std::uint32_t nsid,
                                     const StopFn& stop) {
  const auto deadline = env_->steady_now() + options_.device_timeout;
  Backoff backoff(*env_, std::chrono::milliseconds(20), std::chrono::milliseconds(500), deadline);
  const std::string want = std::to_string(nsid);
  for (;;) {
    std::error_code ec;
    const fs::path subsystems = fs::path(options_.sysfs_root) / "class" / "nvme-subsystem";
    for (fs::directory_iterator it(subsystems, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path s = it->path();
      if (attr(s / "subsysnqn") != nqn) continue;
      // Namespaces: the multipath heads in the subsystem, else those under each controller.
      std::vector<fs::path> dirs{s};
      std::error_code ec2;
      for (fs::directory_iterator c(s, ec2), cend; !ec2 && c != cend; c.increment(ec2))
        if (controller_name(c->path().filename().string())) dirs.push_back(c->path());
      for (const auto& d : dirs) {
        std::error_code ec3;
        for (fs::directory_iterator n(d, ec3), nend; !ec3 && n != nend; n.increment(ec3)) {
          const std::string name = n->path().filename().string();
          if (!namespace_name(name) || attr(n->path() / "nsid") != want) continue;
          const fs::path node = fs::path(options_.dev_root) / name;
          if (fs::exists(node)) return node.string();
        }
      }
    }
    if (stop && stop()) return Status::Cancelled("stopped");
    if (!backoff.wait())
      return Status::NotFound("namespace " + want + " of NVMe subsystem " + nqn +
                              " did not appear on this host within " +
                              std::to_string(options_.device_timeout.count() / 1000) +
                              " s (is the volume's ACL granting host " + options_.host_nqn + "?)");
  }
}

void NvmeHost::drop(const std::string& nqn) {
  bool disconnect_now = false;
  {
    std::lock_guard lock(mu_);
    auto it = subs_.find(nqn);
    if (it == subs_.end()) return;
    if (--it->second.users <= 0) {
      disconnect_now = it->second.ours;
      subs_.erase(it);
    }
  }
  if (disconnect_now) (void)release(nqn);
}

Status NvmeHost::release(const std::string& nqn) {
  std::shared_ptr<std::mutex> one;
  {
    std::lock_guard lock(mu_);
    auto it = subs_.find(nqn);
    if (it != subs_.end() && it->second.users > 0) {
      // In use here (reused by a user that found it connected): the last user disconnects it.
      it->second.ours = true;
      return Status::Ok();
    }
    auto& m = connect_mu_[nqn];
    if (!m) m = std::make_shared<std::mutex>();
    one = m;
  }
  std::lock_guard connecting(*one);
  {
    std::lock_guard lock(mu_);
    auto it = subs_.find(nqn);
    if (it != subs_.end() && it->second.users > 0) {
      it->second.ours = true;
      return Status::Ok();
    }
  }
  if (!connected(nqn)) return Status::Ok();
  return disconnect(nqn);
}

Status NvmeHost::disconnect(const std::string& nqn) {
  auto run = run_program(options_.cli, {"disconnect", "--nqn=" + nqn}, options_.command_timeout);
  if (!run.ok()) return run.status();
  if (run->exit_code != 0)
    return Status::Unavailable("nvme disconnect from " + nqn + " exited with status " +
                               std::to_string(run->exit_code) + ": " +
                               first_line(run->err.empty() ? run->out : run->err));
  return Status::Ok();
}

}  // namespace dmscore::detail
