#pragma once
// Reads a workflow's JSON result (Workflow::result, e.g. {"clusterId":"…"}) with Boost.JSON.
// Free of Catch, so the crash tests' child processes use it too; the tests' checked forms are
// in test_support.hpp.

#include <boost/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace dmscore::testing {

// The string `key` of the JSON object `result`; nullopt when `result` is not a JSON object or
// has no string of that name.
inline std::optional<std::string> result_string(std::string_view result, std::string_view key) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(result, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const boost::json::value* field = v.as_object().if_contains(key);
  if (!field || !field->is_string()) return std::nullopt;
  return std::string(field->as_string());
}

}  // namespace dmscore::testing
