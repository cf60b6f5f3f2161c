#pragma once
// How dmsctl prints what the service answered: -o table|wide|json|yaml|name.
//
// json and yaml print the answer with exactly the API's keys; table and wide pick columns per
// kind of object; name prints kind/id lines for scripts. Presentation only: no rule of the
// service lives here.

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace dmsctl {

enum class Format { kTable, kWide, kJson, kYaml, kName };

// Parses the -o value; false for an unknown one.
bool parse_format(const std::string& text, Format& out);

// `kind` is the object kind in the answer: "cluster", "volume", "snapshot", "workflow",
// "service-credentials"; `answer` the body ({"cluster": {...}} or {"clusters": [...], ...}).
std::string render(const boost::json::value& answer, const std::string& kind, Format format);

// YAML 1.2 text of a JSON value (block style, strings quoted when they would read otherwise).
std::string to_yaml(const boost::json::value& v);

// "1.5 GiB" for a byte count.
std::string human_bytes(double bytes);

}  // namespace dmsctl
