#pragma once
// Python's own text rules, for the faces that speak the dialect of a Python service (OpenStack
// Cinder) and must parse and print as it does.

#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dmscore::detail {

// Python's int(text): surrounding whitespace, a sign, digits with single underscores between
// them. nullopt when Python would raise ValueError (or the value does not fit 64 bits).
std::optional<std::int64_t> python_int(std::string_view text);

// repr() of the Python value json.loads makes of `v` ({'a': [1, None, True]}).
std::string python_repr(const boost::json::value& v);

// str() of it: repr, except that a string is itself.
std::string python_str(const boost::json::value& v);

}  // namespace dmscore::detail
