#include "dmscore/status.hpp"

#include <array>

namespace dmscore {
namespace {

constexpr std::array<std::string_view, 17> kNames = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

}  // namespace

std::string code_name(Code code) {
  auto n = static_cast<int>(code);
  if (n >= 0 && n < static_cast<int>(kNames.size())) return std::string(kNames[n]);
  return "CODE_" + std::to_string(n);
}

int http_status(Code code) {
  // grpc-gateway v2 runtime.HTTPStatusFromCode.
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kCancelled:
      return 499;
    case Code::kUnknown:
      return 500;
    case Code::kInvalidArgument:
      return 400;
    case Code::kDeadlineExceeded:
      return 504;
    case Code::kNotFound:
      return 404;
    case Code::kAlreadyExists:
      return 409;
    case Code::kPermissionDenied:
      return 403;
    case Code::kUnauthenticated:
      return 401;
    case Code::kResourceExhausted:
      return 429;
    case Code::kFailedPrecondition:
      return 400;
    case Code::kAborted:
      return 409;
    case Code::kOutOfRange:
      return 400;
    case Code::kUnimplemented:
      return 501;
    case Code::kInternal:
      return 500;
    case Code::kUnavailable:
      return 503;
    case Code::kDataLoss:
      return 500;
  }
  return 500;
}

bool is_retryable(Code code) {
  return code == Code::kUnavailable || code == Code::kResourceExhausted || code == Code::kAborted ||
         code == Code::kDeadlineExceeded;
}

Status::Status(Code code, std::string message) : code_(code), message_(std::move(message)) {
  if (code_ == Code::kOk) message_.clear();
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  std::string s = code_name(code_);
  if (!message_.empty()) {
    s += ": ";
    s += message_;
  }
  return s;
}

Status Status::with_prefix(std::string_view prefix) const {
  if (ok()) return *this;
  std::string m(prefix);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

std::int64_t retry_after_seconds(const Status& status) {
  const std::string& m = status.message();
  auto p = m.rfind("retry in ");
  if (p == std::string::npos) return 1;
  std::int64_t n = 0;
  for (std::size_t i = p + 9; i < m.size() && m[i] >= '0' && m[i] <= '9' && n < 1000000; ++i)
    n = n * 10 + (m[i] - '0');
  return n < 1 ? 1 : n;
}

}  // namespace dmscore
