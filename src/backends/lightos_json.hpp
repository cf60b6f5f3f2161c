#pragma once
// Reading LightOS REST v2 answers as the public API shapes them (proto3 JSON: 64-bit numbers as
// strings, enums as names, RFC 3339 times), field by field, keeping the first problem with the
// field's path; and the mapping of LightOS states onto the Backend's. Private to
// lightbits_backend.cpp.

#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>

#include "dmscore/backend.hpp"
#include "dmscore/env.hpp"

namespace dmscore::detail::lightos {

namespace json = boost::json;

// A field-by-field reader of one object of a cluster's answer; the first problem is kept.
class Fields {
 public:
  Fields(const json::value* v, std::string what) : what_(std::move(what)) {
    if (!v || !v->is_object()) {
      fail("", "not a JSON object");
      return;
    }
    o_ = &v->as_object();
  }
  std::string str(const char* key, bool required = true) {
    const json::value* v = get(key, required);
    if (!v) return {};
    if (!v->is_string()) {
      fail(key, "not a string");
      return {};
    }
    return std::string(v->as_string());
  }
  // A uint64 sent as a decimal string (proto3 JSON) or a number.
  std::uint64_t u64(const char* key, bool required = true) {
    const json::value* v = get(key, required);
    if (!v) return 0;
    if (v->is_uint64()) return v->as_uint64();
    if (v->is_int64() && v->as_int64() >= 0) return static_cast<std::uint64_t>(v->as_int64());
    if (v->is_string()) {
      const auto& s = v->as_string();
      std::uint64_t n = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return n;
    }
    fail(key, "not a non-negative integer");
    return 0;
  }
  int small(const char* key, int lo, int hi, int fallback) {
    const json::value* v = get(key, false);
    if (!v) return fallback;
    std::uint64_t n = u64(key, false);
    if (!ok()) return fallback;
    if (n < static_cast<std::uint64_t>(lo) || n > static_cast<std::uint64_t>(hi)) {
      fail(key, "out of range");
      return fallback;
    }
    return static_cast<int>(n);
  }
  // LightOS sends compression as "true"/"false" on volumes and as a bool on snapshots.
  bool flag(const char* key) {
    const json::value* v = get(key, false);
    if (!v) return false;
    if (v->is_bool()) return v->as_bool();
    if (v->is_string()) {
      const auto& s = v->as_string();
      if (s == "true" || s == "enable" || s == "enabled") return true;
      if (s == "false" || s == "disable" || s == "disabled" || s.empty()) return false;
    }
    fail(key, "not a boolean");
    return false;
  }
  std::vector<std::string> strings(const char* key) {
    std::vector<std::string> out;
    const json::value* v = get(key, false);
    if (!v) return out;
    if (!v->is_array()) {
      fail(key, "not an array");
      return out;
    }
    for (const auto& x : v->as_array()) {
      if (!x.is_string()) {
        fail(key, "holds a non-string");
        return {};
      }
      out.emplace_back(x.as_string());
    }
    return out;
  }
  // LightOS labels: [{"key", "value"}, ...].
  std::map<std::string, std::string> labels(const char* key) {
    std::map<std::string, std::string> out;
    const json::value* v = get(key, false);
    if (!v) return out;
    if (!v->is_array()) {
      fail(key, "not an array");
      return out;
    }
    for (const auto& l : v->as_array()) {
      const json::object* o = l.if_object();
      const json::value* k = o ? o->if_contains("key") : nullptr;
      const json::value* val = o ? o->if_contains("value") : nullptr;
      if (!k || !k->is_string() || (val && !val->is_string() && !val->is_null())) {
        fail(key, "holds a label that is not {key, value}");
        return {};
      }
      out[std::string(k->as_string())] =
          val && val->is_string() ? std::string(val->as_string()) : std::string();
    }
    return out;
  }
  const json::array* array(const char* key) {
    const json::value* v = get(key, true);
    if (!v) return nullptr;
    if (!v->is_array()) {
      fail(key, "not an array");
      return nullptr;
    }
    return &v->as_array();
  }
  bool ok() const { return problem_.empty(); }
  const std::string& problem() const { return problem_; }

 private:
  const json::value* get(const char* key, bool required) {
    if (!o_) return nullptr;
    const json::value* v = o_->if_contains(key);
    if (!v || v->is_null()) {
      if (required) fail(key, "missing");
      return nullptr;
    }
    return v;
  }
  void fail(const char* key, const std::string& why) {
    if (problem_.empty())
      problem_ = what_ + (key[0] ? std::string(" field ") + key : std::string()) + ": " + why;
  }
  const json::object* o_ = nullptr;
  std::string what_;
  std::string problem_;
};

inline Result<VolumeState> volume_state(const std::string& s) {
  if (s == "Creating") return VolumeState::kCreating;
  if (s == "Available" || s == "Migrating") return VolumeState::kAvailable;
  if (s == "Updating" || s == "Rollback") return VolumeState::kUpdating;
  if (s == "Deleting" || s == "Deleted") return VolumeState::kDeleting;
  if (s == "Failed") return VolumeState::kFailed;
  return Status::Unavailable("unknown volume state '" + s.substr(0, 64) + "'");
}

inline Result<SnapshotState> snapshot_state(const std::string& s) {
  if (s == "Creating") return SnapshotState::kCreating;
  if (s == "Available") return SnapshotState::kAvailable;
  if (s == "Deleting" || s == "Deleted") return SnapshotState::kDeleting;
  if (s == "Failed") return SnapshotState::kFailed;
  return Status::Unavailable("unknown snapshot state '" + s.substr(0, 64) + "'");
}

// RFC 3339 (as LightOS sends creationTime) to a time point; epoch when absent or unreadable.
inline Env::SystemTime parse_time(const std::string& s) {
  int y, mo, d, h, mi, sec;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6) return {};
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return Env::SystemTime(std::chrono::seconds(timegm(&tm)));
}

inline json::array labels_json(const std::map<std::string, std::string>& labels) {
  json::array a;
  for (const auto& [k, v] : labels) a.push_back(json::object{{"key", k}, {"value", v}});
  return a;
}

inline bool terminal_http(int status) {
  return status != 409 && status != 412 && status != 429 && status != 503;
}

}  // namespace dmscore::detail::lightos
