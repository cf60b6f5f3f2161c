#include "base/pytext.hpp"

#include <boost/json.hpp>
#include <cctype>

namespace dmscore::detail {

namespace json = boost::json;

std::optional<std::int64_t> python_int(std::string_view t) {
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  bool negative = false;
  if (!t.empty() && (t.front() == '+' || t.front() == '-')) {
    negative = t.front() == '-';
    t.remove_prefix(1);
  }
  if (t.empty() || t.front() == '_' || t.back() == '_') return std::nullopt;
  std::int64_t v = 0;
  char prev = 0;
  for (char c : t) {
    if (c == '_') {
      if (prev == '_') return std::nullopt;
    } else if (c >= '0' && c <= '9') {
      if (v > (INT64_MAX - (c - '0')) / 10) return std::nullopt;
      v = v * 10 + (c - '0');
    } else {
      return std::nullopt;
    }
    prev = c;
  }
  return negative ? -v : v;
}

std::string python_repr(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "None";
    case json::kind::bool_:
      return v.get_bool() ? "True" : "False";
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_:
      return json::serialize(v);
    case json::kind::string: {
      const std::string s(v.get_string());
      const char q =
          s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
      std::string out(1, q);
      for (char c : s) {
        if (c == '\\' || c == q) out += '\\';
        out += c;
      }
      return out + q;
    }
    case json::kind::array: {
      std::string out = "[";
      for (const auto& e : v.get_array()) out += (out.size() > 1 ? ", " : "") + python_repr(e);
      return out + "]";
    }
    case json::kind::object: {
      std::string out = "{";
      for (const auto& [k, e] : v.get_object())
        out += (out.size() > 1 ? ", " : "") + python_repr(json::string(k)) + ": " + python_repr(e);
      return out + "}";
    }
  }
  return "None";
}

std::string python_str(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : python_repr(v);
}

}  // namespace dmscore::detail
