#include "common.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>

namespace dmsctl {

namespace json = boost::json;
using dmscore::Code;

int exit_code_for(const dmscore::Status& s) {
  switch (s.code()) {
    case Code::kUnauthenticated:
    case Code::kPermissionDenied:
      return kExitAuth;
    case Code::kNotFound:
      return kExitNotFound;
    case Code::kResourceExhausted:
      return kExitThrottled;
    case Code::kDeadlineExceeded:
      return kExitTimeout;
    default:
      return kExitError;
  }
}

void fail(int code, const std::string& message) { throw Failure{code, message}; }

void fail(const dmscore::Status& s, const std::string& hint) {
  std::string m = dmscore::code_name(s.code()) + ": " + s.message();
  if (!hint.empty()) m += "\n" + hint;
  fail(exit_code_for(s), m);
}

json::value parse_answer(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) fail(kExitError, "the service answered something that is not JSON");
  return v;
}

json::array string_array(const std::vector<std::string>& items) {
  json::array a;
  for (const auto& x : items) a.push_back(json::value(x));
  return a;
}

std::string parse_size(const std::string& text, const char* flag) {
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0 || i > 20)
    fail(kExitUsage, std::string(flag) + ": expected a size like 10GiB, got '" + text + "'");
  std::string unit = text.substr(i);
  static const std::map<std::string, int> kShift = {{"", 0},   {"B", 0},    {"K", 10}, {"KiB", 10},
                                                    {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30},
                                                    {"T", 40}, {"TiB", 40}, {"P", 50}, {"PiB", 50}};
  auto it = kShift.find(unit);
  if (it == kShift.end())
    fail(kExitUsage,
         std::string(flag) + ": unknown unit '" + unit + "' (use B, KiB, MiB, GiB, TiB, PiB)");
  std::uint64_t v = 0;
  for (std::size_t k = 0; k < i; ++k) {
    if (v > (UINT64_MAX - 9) / 10) fail(kExitUsage, std::string(flag) + ": too large");
    v = v * 10 + static_cast<unsigned>(text[k] - '0');
  }
  if (it->second > 0 && v > (UINT64_MAX >> it->second))
    fail(kExitUsage, std::string(flag) + ": too large");
  return std::to_string(v << it->second);
}

std::string password_from_stdin(bool allow_empty) {
  std::string password;
  if (!std::getline(std::cin, password)) fail(kExitUsage, "--password-stdin: no input");
  if (password.empty() && !allow_empty)
    fail(kExitUsage,
         "--password-stdin: the first line of standard input is empty; put the password on it");
  return password;
}

std::string read_password() {
  if (const char* p = std::getenv("DMS_PASSWORD"); p && *p) return p;
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    fail(kExitUsage, "no terminal to ask for the password: use --password-stdin or DMS_PASSWORD");
  termios old{};
  bool have = ::tcgetattr(fd, &old) == 0;
  if (have) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  const char prompt[] = "Password: ";
  (void)!::write(fd, prompt, sizeof prompt - 1);
  std::string pw;
  char ch;
  while (::read(fd, &ch, 1) == 1 && ch != '\n') pw += ch;
  if (have) ::tcsetattr(fd, TCSAFLUSH, &old);
  (void)!::write(fd, "\n", 1);
  ::close(fd);
  return pw;
}

bool ask_cancel(const std::string& id) {
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (!tty) return false;
  fmt::print(tty, "\nInterrupted. Cancel workflow {}? [y/N] ", id);
  std::fflush(tty);
  char buf[16] = {};
  // Another Ctrl-C at the prompt means no: let it interrupt the read (no SA_RESTART here).
  struct sigaction once {
  }, old{};
  once.sa_handler = [](int) {};
  sigemptyset(&once.sa_mask);
  sigaction(SIGINT, &once, &old);
  bool yes = std::fgets(buf, sizeof buf, tty) && (buf[0] == 'y' || buf[0] == 'Y');
  sigaction(SIGINT, &old, nullptr);
  std::fclose(tty);
  return yes;
}

}  // namespace dmsctl
