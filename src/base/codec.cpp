#include "base/codec.hpp"

#include <charconv>

namespace dmscore::detail {

ObjectReader::ObjectReader(const json::value& v, std::string path) : path_(std::move(path)) {
  obj_ = v.if_object();
  if (!obj_)
    status_ = Status::InvalidArgument((path_.empty() ? "body" : path_) + ": must be an object");
}

const json::value* ObjectReader::field(const char* key) {
  if (!obj_ || !status_.ok()) return nullptr;
  read_.insert(key);
  const json::value* v = obj_->if_contains(key);
  if (v && v->is_null()) return nullptr;
  return v;
}

void ObjectReader::fail(const char* key, const std::string& what) {
  if (status_.ok()) status_ = Status::InvalidArgument(path(key) + ": " + what);
}

void ObjectReader::string(const char* key, std::string& out, bool required) {
  const json::value* v = field(key);
  if (!v) {
    if (required) fail(key, "is required");
    return;
  }
  if (!v->is_string()) return fail(key, "must be a string");
  out = std::string(v->as_string());
}

void ObjectReader::string(const char* key, std::optional<std::string>& out) {
  std::string v;
  const bool present = field(key) != nullptr;
  string(key, v, false);
  if (present && status_.ok()) out = std::move(v);
}

void ObjectReader::strings(const char* key, std::vector<std::string>& out, std::size_t max_items,
                           bool required) {
  const json::value* v = field(key);
  if (!v) {
    if (required) fail(key, "is required");
    return;
  }
  if (!v->is_array()) return fail(key, "must be an array of strings");
  const auto& a = v->as_array();
  if (a.size() > max_items)
    return fail(key, "must hold at most " + std::to_string(max_items) + " items");
  std::vector<std::string> items;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_string())
      return fail((std::string(key) + "[" + std::to_string(i) + "]").c_str(), "must be a string");
    items.emplace_back(a[i].as_string());
  }
  out = std::move(items);
}

void ObjectReader::integers(const char* key, std::vector<int>& out, std::size_t max_items) {
  const json::value* v = field(key);
  if (!v) return;
  if (!v->is_array()) return fail(key, "must be an array of integers");
  const auto& a = v->as_array();
  if (a.size() > max_items)
    return fail(key, "must hold at most " + std::to_string(max_items) + " items");
  std::vector<int> items;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].is_int64() && a[i].as_int64() >= INT32_MIN && a[i].as_int64() <= INT32_MAX) {
      items.push_back(static_cast<int>(a[i].as_int64()));
    } else if (a[i].is_uint64() && a[i].as_uint64() <= INT32_MAX) {
      items.push_back(static_cast<int>(a[i].as_uint64()));
    } else {
      return fail((std::string(key) + "[" + std::to_string(i) + "]").c_str(), "must be an integer");
    }
  }
  out = std::move(items);
}

void ObjectReader::boolean(const char* key, bool& out) {
  std::optional<bool> b;
  boolean(key, b);
  if (b) out = *b;
}

void ObjectReader::boolean(const char* key, std::optional<bool>& out) {
  const json::value* v = field(key);
  if (!v) return;
  if (!v->is_bool()) return fail(key, "must be true or false");
  out = v->as_bool();
}

void ObjectReader::integer(const char* key, std::optional<int>& out) {
  const json::value* v = field(key);
  if (!v) return;
  if (v->is_int64() && v->as_int64() >= INT32_MIN && v->as_int64() <= INT32_MAX) {
    out = static_cast<int>(v->as_int64());
  } else if (v->is_uint64() && v->as_uint64() <= INT32_MAX) {
    out = static_cast<int>(v->as_uint64());
  } else if (v->is_string()) {  // proto3 JSON allows integers as strings
    const auto& s = v->as_string();
    int n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty())
      return fail(key, "must be an integer");
    out = n;
  } else {
    fail(key, "must be an integer");
  }
}

void ObjectReader::size(const char* key, std::optional<std::uint64_t>& out, bool required) {
  const json::value* v = field(key);
  if (!v) {
    if (required) fail(key, "is required");
    return;
  }
  if (v->is_string()) {
    const auto& s = v->as_string();
    std::uint64_t n = 0;
    if (s.empty() || s.size() > 20) return fail(key, "must be a byte count as a decimal string");
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p != s.data() + s.size())
      return fail(key, "must be a byte count as a decimal string");
    out = n;
  } else if (v->is_uint64()) {
    out = v->as_uint64();
  } else if (v->is_int64() && v->as_int64() >= 0) {
    out = static_cast<std::uint64_t>(v->as_int64());
  } else {
    fail(key, "must be a byte count as a decimal string");
  }
}

const json::value* ObjectReader::object(const char* key, bool required) {
  const json::value* v = field(key);
  if (!v) {
    if (required) fail(key, "is required");
    return nullptr;
  }
  if (!v->is_object()) {
    fail(key, "must be an object");
    return nullptr;
  }
  return v;
}

Status ObjectReader::finish() {
  if (!status_.ok() || !obj_) return status_;
  for (const auto& [k, v] : *obj_) {
    if (!read_.count(std::string(k))) {
      std::string name(k);
      if (name.size() > 64) name = name.substr(0, 64) + "...";
      // Only printable ASCII is echoed back.
      for (char& c : name)
        if (c < 0x20 || c > 0x7e) c = '?';
      return Status::InvalidArgument(path(name.c_str()) + ": unknown field");
    }
  }
  return status_;
}

Result<json::value> parse_json(std::string_view text) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 32;
  json::value v = json::parse(text, ec, {}, opts);
  if (ec) return Status::InvalidArgument("body: malformed JSON (" + ec.message() + ")");
  return v;
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

json::object to_json(const ThickCloneRequest& r) {
  json::object src{{"snapId", r.src.snap_id},
                   {"projectName", r.src.project_name},
                   {"clusterId", r.src.cluster_id}};
  json::object dst{{"name", r.dst.name}, {"clusterId", r.dst.cluster_id}};
  if (!r.dst.project_name.empty()) dst["projectName"] = r.dst.project_name;
  if (r.dst.size) dst["size"] = std::to_string(*r.dst.size);
  if (r.dst.replica) dst["replica"] = *r.dst.replica;
  if (r.dst.sector_size) dst["sectorSize"] = *r.dst.sector_size;
  if (r.dst.compression) dst["compression"] = *r.dst.compression;
  if (!r.dst.qos_policy_name.empty()) dst["qosPolicyName"] = r.dst.qos_policy_name;
  if (!r.dst.description.empty()) dst["description"] = r.dst.description;
  return {{"src", std::move(src)}, {"dst", std::move(dst)}, {"verifyClone", r.verify_clone}};
}

Result<ThickCloneRequest> thick_clone_request_from_json(const json::value& v) {
  ThickCloneRequest r;
  ObjectReader top(v, "");
  const json::value* src = top.object("src", true);
  const json::value* dst = top.object("dst", true);
  top.boolean("verifyClone", r.verify_clone);
  if (Status s = top.finish(); !s.ok()) return s;
  ObjectReader s(*src, "src");
  s.string("snapId", r.src.snap_id, true);
  s.string("projectName", r.src.project_name, true);
  s.string("clusterId", r.src.cluster_id, true);
  if (Status st = s.finish(); !st.ok()) return st;
  ObjectReader d(*dst, "dst");
  d.string("name", r.dst.name, true);
  d.string("projectName", r.dst.project_name);
  d.string("clusterId", r.dst.cluster_id, true);
  d.size("size", r.dst.size);
  d.integer("replica", r.dst.replica);
  d.integer("sectorSize", r.dst.sector_size);
  d.boolean("compression", r.dst.compression);
  d.string("qosPolicyName", r.dst.qos_policy_name);
  d.string("description", r.dst.description);
  if (Status st = d.finish(); !st.ok()) return st;
  return r;
}

json::object to_json(const AttachClusterRequest& r) {
  json::object o{{"apiEndpoint", r.api_endpoint}};
  if (!r.name.empty()) o["name"] = r.name;
  return o;
}

Result<AttachClusterRequest> attach_cluster_request_from_json(const json::value& v) {
  AttachClusterRequest r;
  ObjectReader o(v, "");
  o.string("apiEndpoint", r.api_endpoint, true);
  o.string("name", r.name);
  if (Status s = o.finish(); !s.ok()) return s;
  return r;
}

}  // namespace dmscore::detail
