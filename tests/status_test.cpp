#include "dmscore/status.hpp"

#include <catch2/catch.hpp>

#include "dmscore/result.hpp"

using namespace dmscore;

TEST_CASE("Status: a default status is OK and prints as OK") {
  Status s;
  CHECK(s.ok());
  CHECK(s.code() == Code::kOk);
  CHECK(s.to_string() == "OK");
  CHECK(s.message().empty());
}

TEST_CASE("Status: factories carry their code and message") {
  Status s = Status::InvalidArgument("dst.name: must not be empty");
  CHECK_FALSE(s.ok());
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.to_string() == "INVALID_ARGUMENT: dst.name: must not be empty");
  CHECK(Status::NotFound("x").is_not_found());
  CHECK(Status::Cancelled("x").is_cancelled());
  CHECK(Status::Unauthenticated("x").code() == Code::kUnauthenticated);
}

TEST_CASE("Status: an OK status drops any message") {
  Status s(Code::kOk, "ignored");
  CHECK(s.ok());
  CHECK(s.message().empty());
}

TEST_CASE("Status: codes map to the grpc-gateway v2 HTTP statuses of the contract") {
  CHECK(http_status(Code::kOk) == 200);
  CHECK(http_status(Code::kInvalidArgument) == 400);
  CHECK(http_status(Code::kFailedPrecondition) == 400);
  CHECK(http_status(Code::kUnauthenticated) == 401);
  CHECK(http_status(Code::kPermissionDenied) == 403);
  CHECK(http_status(Code::kNotFound) == 404);
  CHECK(http_status(Code::kAlreadyExists) == 409);
  CHECK(http_status(Code::kAborted) == 409);
  CHECK(http_status(Code::kResourceExhausted) == 429);
  CHECK(http_status(Code::kUnimplemented) == 501);
  CHECK(http_status(Code::kUnavailable) == 503);
  CHECK(http_status(Code::kInternal) == 500);
  CHECK(http_status(static_cast<Code>(99)) == 500);
}

TEST_CASE("Status: code names are the canonical upper-case names") {
  CHECK(code_name(Code::kResourceExhausted) == "RESOURCE_EXHAUSTED");
  CHECK(code_name(Code::kUnauthenticated) == "UNAUTHENTICATED");
  CHECK(code_name(static_cast<Code>(42)) == "CODE_42");
  CHECK(static_cast<int>(Code::kUnauthenticated) == 16);
  CHECK(static_cast<int>(Code::kFailedPrecondition) == 9);
}

TEST_CASE("Status: only transient codes are retryable") {
  CHECK(is_retryable(Code::kUnavailable));
  CHECK(is_retryable(Code::kResourceExhausted));
  CHECK(is_retryable(Code::kAborted));
  CHECK_FALSE(is_retryable(Code::kInvalidArgument));
  CHECK_FALSE(is_retryable(Code::kNotFound));
}

TEST_CASE("Status: with_prefix adds context to errors and leaves OK alone") {
  CHECK(Status::Internal("disk").with_prefix("copy").message() == "copy: disk");
  CHECK(Status::Ok().with_prefix("copy").ok());
}

TEST_CASE("Result: holds a value or an error") {
  Result<int> good(7);
  REQUIRE(good.ok());
  CHECK(*good == 7);
  CHECK(good.status().ok());
  Result<int> bad(Status::NotFound("nope"));
  CHECK_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kNotFound);
  CHECK(bad.value_or(3) == 3);
  Result<std::string> s(std::string("abc"));
  CHECK(s->size() == 3);
  std::string moved = std::move(s).value();
  CHECK(moved == "abc");
}
