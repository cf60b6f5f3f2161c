#pragma once
// Status: the outcome of an operation, as a canonical (gRPC) code plus a message.
//
// Cheap when OK (no allocation). Codes are the canonical set used by the REST contract, so the
// HTTP status, the CLI exit code and "should I retry?" all follow from the code alone.
// A Status is a value: safe to copy and to read from several threads; not synchronised for
// concurrent mutation.

#include <cstdint>
#include <string>
#include <string_view>

namespace dmscore {

// Canonical codes. The numbers are part of the wire contract (the `code` of an error body).
enum class Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "INVALID_ARGUMENT" and so on; "CODE_<n>" for a number outside the canonical set.
std::string code_name(Code code);

// The HTTP status grpc-gateway v2 answers for `code` (INVALID_ARGUMENT → 400, NOT_FOUND → 404,
// RESOURCE_EXHAUSTED → 429, ...). Unknown codes map to 500.
int http_status(Code code);

// True for codes a client may retry unchanged after a pause (UNAVAILABLE, RESOURCE_EXHAUSTED,
// ABORTED, DEADLINE_EXCEEDED).
bool is_retryable(Code code);

class Status;

// Seconds a caller should wait before retrying after a retryable status: the N of the
// "retry in N s" its message ends with (the library says so whenever it knows: a login throttle,
// a cluster refusing calls for a while), else 1. At least 1.
std::int64_t retry_after_seconds(const Status& status);

class [[nodiscard]] Status {
 public:
  // An OK status.
  Status() noexcept = default;
  Status(Code code, std::string message);

  static Status Ok() { return Status(); }
  static Status Cancelled(std::string msg) { return {Code::kCancelled, std::move(msg)}; }
  static Status InvalidArgument(std::string msg) {
    return {Code::kInvalidArgument, std::move(msg)};
  }
  static Status DeadlineExceeded(std::string msg) {
    return {Code::kDeadlineExceeded, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {Code::kAlreadyExists, std::move(msg)}; }
  static Status PermissionDenied(std::string msg) {
    return {Code::kPermissionDenied, std::move(msg)};
  }
  static Status ResourceExhausted(std::string msg) {
    return {Code::kResourceExhausted, std::move(msg)};
  }
  static Status FailedPrecondition(std::string msg) {
    return {Code::kFailedPrecondition, std::move(msg)};
  }
  static Status Aborted(std::string msg) { return {Code::kAborted, std::move(msg)}; }
  static Status OutOfRange(std::string msg) { return {Code::kOutOfRange, std::move(msg)}; }
  static Status Unimplemented(std::string msg) { return {Code::kUnimplemented, std::move(msg)}; }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status DataLoss(std::string msg) { return {Code::kDataLoss, std::move(msg)}; }
  static Status Unauthenticated(std::string msg) {
    return {Code::kUnauthenticated, std::move(msg)};
  }

  bool ok() const noexcept { return code_ == Code::kOk; }
  Code code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  bool is_not_found() const noexcept { return code_ == Code::kNotFound; }
  bool is_cancelled() const noexcept { return code_ == Code::kCancelled; }

  // "OK", or "<CODE_NAME>: <message>".
  std::string to_string() const;

  // A copy whose message is "<prefix>: <message>"; OK stays OK.
  Status with_prefix(std::string_view prefix) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace dmscore
