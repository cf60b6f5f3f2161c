#pragma once
// The schema of SMS's source registration (`POST /v3/sources`, seed 001) and the environment
// check that follows a report. Internal to the library; docs/design.md, "Source servers",
// states what is accepted per field.

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "dmscore/result.hpp"
#include "dmscore/sources.hpp"

namespace dmscore::detail {

// Checks `body` against the registration schema and answers it in canonical form: numbers
// given as strings become JSON numbers (btrfs sizes with units become bytes), numbers and
// booleans given for string fields become their text, nulls are dropped. INVALID_ARGUMENT
// "<path>: <what is wrong>" for the first field refused, e.g.
// "disks[0].physical_volumes[2].size: must be at most 9223372036854775807".
Result<boost::json::object> canonical_source_report(const boost::json::value& body);

// The environment check of a canonical report, in a fixed order with fixed ids.
std::vector<SourceCheck> check_source_environment(const boost::json::object& report);

// The disks of a canonical report.
std::vector<SourceDisk> source_disks(const boost::json::object& report);

// A string member of a canonical report (or of one of its objects), "" when absent.
std::string report_text(const boost::json::object& o, const char* key);
// An integer member of a canonical report (or of one of its objects), 0 when absent.
std::int64_t report_int(const boost::json::object& o, const char* key);

// "3.30GiB", "16384", "0.00B" (what `btrfs filesystem show` prints) in bytes; nullopt when it
// is not such a size or exceeds INT64_MAX.
std::optional<std::int64_t> parse_size_with_unit(std::string_view s);

}  // namespace dmscore::detail
