#pragma once
// Reading a workflow's stored request (JSON) into its typed struct: each field is checked and
// a missing or mistyped one is named in an INVALID_ARGUMENT "request.<field>: ...".

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/codec.hpp"
#include "dmscore/result.hpp"

namespace dmscore::detail::request_json {

namespace json = boost::json;

// The request as an object.
inline Result<json::object> object(std::string_view request) {
  auto v = parse_json(request);
  if (!v.ok()) return v.status();
  if (!v->is_object()) return Status::InvalidArgument("request: must be a JSON object");
  return std::move(v->as_object());
}

inline Result<std::string> string(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v || !v->is_string())
    return Status::InvalidArgument("request." + std::string(key) + ": must be a string");
  return std::string(v->as_string());
}

// An optional string: "" when absent.
inline std::string string_or_empty(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

inline Result<std::int64_t> integer(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v || !(v->is_int64() || v->is_uint64()))
    return Status::InvalidArgument("request." + std::string(key) + ": must be an integer");
  return v->to_number<std::int64_t>();
}

inline bool boolean_or(const json::object& o, std::string_view key, bool fallback) {
  const auto* v = o.if_contains(key);
  return v && v->is_bool() ? v->as_bool() : fallback;
}

}  // namespace dmscore::detail::request_json
