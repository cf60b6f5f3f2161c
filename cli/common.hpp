#pragma once
// dmsctl's stateless helpers: exit codes, failures, and the parsing every command shares.
//
// A command that cannot go on throws a Failure (fail, check); dmsctl's dispatch prints its
// message and exits with its code.

#include <boost/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "dmscore/result.hpp"

namespace dmsctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitAuth = 3;
inline constexpr int kExitNotFound = 4;
inline constexpr int kExitThrottled = 5;
inline constexpr int kExitTimeout = 6;
inline constexpr int kExitWorkflowFailed = 7;

inline constexpr const char* kExitCodes =
    "Exit codes: 0 ok, 1 error, 2 usage, 3 unauthenticated or forbidden, 4 not found,\n"
    "5 throttled (429), 6 wait timed out, 7 workflow ended FAILED or CANCELLED.";

// A failure the user must act on, with the exit code scripts see.
struct Failure {
  int code;
  std::string message;
};

int exit_code_for(const dmscore::Status& s);

[[noreturn]] void fail(int code, const std::string& message);
// "<CODE>: <message>", then `hint` on its own line; the exit code from the Status code.
[[noreturn]] void fail(const dmscore::Status& s, const std::string& hint = "");

// The value of a call, or fail() with its Status.
template <class T>
T check(dmscore::Result<T> r, const std::string& hint = "") {
  if (!r.ok()) fail(r.status(), hint);
  return std::move(r).value();
}

// The value of a typed answer (dmscore::http::*Answer::parse), or a plain error naming what
// the service's answer lacks.
template <class T>
T decoded(dmscore::Result<T> r) {
  if (!r.ok()) fail(kExitError, r.status().message());
  return std::move(r).value();
}

// The service's answer as JSON, for presentation.
boost::json::value parse_answer(const std::string& text);

// A JSON array of strings.
boost::json::array string_array(const std::vector<std::string>& items);

// "10GiB", "512M", "4096" → bytes as a decimal string; `flag` names the option in errors.
std::string parse_size(const std::string& text, const char* flag);

// $DMS_PASSWORD, else asked on /dev/tty without echo.
std::string read_password();
// The first line of standard input without its newline (--password-stdin); a usage error when
// there is none, or when it is empty and `allow_empty` is false.
std::string password_from_stdin(bool allow_empty);

// Asks on the terminal whether to cancel a workflow; false when there is no terminal.
bool ask_cancel(const std::string& workflow_id);

}  // namespace dmsctl
