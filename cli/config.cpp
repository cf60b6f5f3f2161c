#include "config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace dmsctl {

namespace json = boost::json;
namespace fs = std::filesystem;
using dmscore::Status;

std::string config_path() {
  if (const char* p = std::getenv("DMSCTL_CONFIG"); p && *p) return p;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x)
    return std::string(x) + "/dmsctl/config.json";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.config/dmsctl/config.json";
}

dmscore::Result<Config> Config::load() {
  Config c;
  c.path = config_path();
  struct stat st {};
  if (::stat(c.path.c_str(), &st) != 0) {
    if (errno == ENOENT) return c;
    return Status::Unavailable("config " + c.path + ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::FailedPrecondition("config " + c.path + " is mode " + mode +
                                      " but holds tokens; run: chmod 600 " + c.path);
  }
  std::ifstream in(c.path);
  std::stringstream ss;
  ss << in.rdbuf();
  boost::system::error_code ec;
  json::value v = json::parse(ss.str(), ec);
  if (ec || !v.is_object())
    return Status::InvalidArgument("config " + c.path + ": not a JSON object");
  const auto& o = v.as_object();
  if (auto* cur = o.if_contains("currentContext"); cur && cur->is_string())
    c.current_context = std::string(cur->as_string());
  if (auto* ctxs = o.if_contains("contexts"); ctxs && ctxs->is_object()) {
    for (const auto& [name, x] : ctxs->as_object()) {
      if (!x.is_object())
        return Status::InvalidArgument("config " + c.path + ": contexts." + std::string(name) +
                                       ": not an object");
      SavedContext ctx;
      const auto& xo = x.as_object();
      auto s = [&](const char* k, std::string& out) {
        if (auto* f = xo.if_contains(k); f && f->is_string()) out = std::string(f->as_string());
      };
      s("endpoint", ctx.endpoint);
      s("caCert", ctx.ca_cert);
      s("username", ctx.username);
      s("token", ctx.token);
      if (auto* f = xo.if_contains("insecure"); f && f->is_bool()) ctx.insecure = f->as_bool();
      c.contexts[std::string(name)] = ctx;
    }
  }
  return c;
}

Status Config::save() const {
  json::object ctxs;
  for (const auto& [name, ctx] : contexts) {
    json::object x{{"endpoint", ctx.endpoint}};
    if (!ctx.ca_cert.empty()) x["caCert"] = ctx.ca_cert;
    if (ctx.insecure) x["insecure"] = true;
    if (!ctx.username.empty()) x["username"] = ctx.username;
    if (!ctx.token.empty()) x["token"] = ctx.token;
    ctxs[name] = std::move(x);
  }
  std::string text =
      json::serialize(json::object{{"currentContext", current_context}, {"contexts", ctxs}}) + "\n";
  fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) {
    fs::create_directories(p.parent_path(), ec);
    ::chmod(p.parent_path().c_str(), 0700);
  }
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Unavailable("config " + tmp + ": " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::Unavailable("config " + path + ": cannot write: " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace dmsctl
