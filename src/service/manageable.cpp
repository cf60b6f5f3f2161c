// Adopting what exists: Cinder's sorting and paging of manageable lists, and the Volumes
// requests that list, adopt (MANAGE_VOLUME) and give back.

#include "dmscore/manageable.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

#include "base/codec.hpp"
#include "service/service_impl.hpp"
#include "workflows/manage_volume.hpp"

namespace dmscore {

namespace json = boost::json;

namespace {

constexpr std::int64_t kMaxLimit = 1000;        // Cinder's osapi_max_limit default
constexpr std::int64_t kDbMaxInt = 0x7FFFFFFF;  // Cinder's constants.DB_MAX_INT

// Python's int(text): surrounding whitespace, a sign, digits with single underscores between
// them. nullopt when Python would raise ValueError (or the value does not fit).
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

// Python's repr of a JSON value, as Cinder's messages print a parsed marker.
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

Status bad(const char* param, const std::string& cinder_message) {
  return Status::InvalidArgument(std::string(param) + ": " + cinder_message);
}

}  // namespace

std::uint64_t size_in_gib(std::uint64_t bytes) {
  constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
  return bytes / kGiB + (bytes % kGiB != 0);
}

Result<std::vector<ManageableObject>> paginate_manageable(std::vector<ManageableObject> all,
                                                          const ManageableQuery& q) {
  // get_pagination_params: limit, marker, offset.
  std::int64_t limit = kMaxLimit, offset = 0;
  if (q.limit) {
    auto l = python_int(*q.limit);
    if (!l) return bad("limit", "limit param must be an integer");
    if (*l < 0) return bad("limit", "limit param must be positive");
    limit = std::min(*l, kMaxLimit);
  }
  if (q.offset) {
    auto o = python_int(*q.offset);
    if (!o) return bad("offset", "offset must be an integer");
    if (*o < 0) return bad("offset", "offset must be >= 0");
    if (*o > kDbMaxInt) return bad("offset", "offset must be <= " + std::to_string(kDbMaxInt));
    offset = *o;
  }
  // get_sort_params, default key reference, default dir desc.
  if (q.sort && (q.sort_key || q.sort_dir))
    return bad("sort",
               "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with "
               "the 'sort' parameter.");
  auto strip = [](std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
  };
  std::vector<std::string> keys, dirs;
  if (q.sort) {
    std::string rest = strip(*q.sort);
    for (;;) {
      const auto comma = rest.find(',');
      const std::string item = rest.substr(0, comma);
      const auto colon = item.find(':');
      std::string dir = colon == std::string::npos ? "" : item.substr(colon + 1);
      keys.push_back(strip(item.substr(0, colon)));
      dirs.push_back(strip(dir.empty() ? "desc" : dir));
      if (comma == std::string::npos) break;
      rest = rest.substr(comma + 1);
    }
  } else {
    keys.push_back(strip(q.sort_key.value_or("reference")));
    dirs.push_back(strip(q.sort_dir.value_or("desc")));
  }
  std::string invalid;
  for (const auto& k : keys)
    if (k != "reference" && k != "size") invalid += (invalid.empty() ? "" : ", ") + k;
  if (!invalid.empty()) return bad("sort", "Invalid sort keys passed: " + invalid);
  for (const auto& d : dirs)
    if (d != "asc" && d != "desc") invalid += (invalid.empty() ? "" : ", ") + d;
  if (!invalid.empty()) return bad("sort", "Invalid sort dirs passed: " + invalid);

  std::stable_sort(all.begin(), all.end(),
                   [&](const ManageableObject& a, const ManageableObject& b) {
                     for (std::size_t i = 0; i < keys.size(); ++i) {
                       int c = 0;
                       if (keys[i] == "reference") {
                         c = a.reference.compare(b.reference);
                       } else {
                         const auto sa = size_in_gib(a.size), sb = size_in_gib(b.size);
                         c = sa == sb ? 0 : (sa < sb ? -1 : 1);
                       }
                       if (c == 0) continue;
                       return dirs[i] == "asc" ? c < 0 : c > 0;
                     }
                     return false;
                   });

  std::int64_t start = 0;
  if (q.marker && !q.marker->empty()) {
    boost::system::error_code ec;
    json::value m = json::parse(*q.marker, ec);
    if (ec)
      return bad("marker",
                 "marker " + *q.marker + " can not be analysed, please use json like format");
    start = -1;
    for (std::size_t i = 0; i < all.size(); ++i) {
      const json::object ref{{"source-name", all[i].reference}};
      if (m.is_object() && m.as_object() == ref) {
        start = static_cast<std::int64_t>(i) + 1;
        break;
      }
    }
    if (start < 0) return bad("marker", "marker not found: " + python_repr(m));
  }
  // sorted_entries[start + offset : start + limit + offset]
  const auto n = static_cast<std::int64_t>(all.size());
  const std::int64_t from = std::min(start + offset, n), to = std::min(start + limit + offset, n);
  std::vector<ManageableObject> page;
  for (std::int64_t i = from; i < to; ++i)
    page.push_back(std::move(all[static_cast<std::size_t>(i)]));
  return page;
}

// ---- Volumes: adopting and giving back ----

Result<std::vector<ManageableObject>> Volumes::list_manageable(const ClusterId& cluster,
                                                               const ManageableQuery& query) const {
  auto scope = impl_->caller();
  auto b = impl_->backend_locked(cluster.str());
  if (!b.ok()) return b.status();
  auto all = (*b)->list_manageable_volumes();
  if (!all.ok()) return all.status();
  return paginate_manageable(std::move(all).value(), query);
}

Result<ManageStarted> Volumes::manage(const ClusterId& cluster, const ManageRequest& request) {
  auto scope = impl_->caller();
  if (request.reference.empty()) return Status::InvalidArgument("ref: is required");
  if (request.reference.size() > 4096)
    return Status::InvalidArgument("ref: longer than 4096 bytes");
  if (Status s = validate_object_name(request.project_name, "projectName"); !s.ok()) return s;
  std::string name = request.name;
  if (name.empty()) {
    name = request.reference.substr(request.reference.rfind('/') + 1);
    if (!validate_object_name(name, "name").ok())
      return Status::InvalidArgument("name: is required (" + request.reference +
                                     " is not a valid volume name)");
  }
  if (Status s = validate_object_name(name, "name"); !s.ok()) return s;
  auto b = impl_->backend_locked(cluster.str());
  if (!b.ok()) return b.status();
  // The candidate as it is now: it must exist and be safe, and the workflow refuses it if it
  // changes before it is taken.
  auto all = (*b)->list_manageable_volumes();
  if (!all.ok()) return all.status();
  auto it = std::find_if(all->begin(), all->end(), [&](const ManageableObject& m) {
    return m.reference == request.reference;
  });
  if (it == all->end())
    return Status::InvalidArgument("ref: no manageable volume " + request.reference +
                                   " on cluster " + cluster.str());
  if (!it->safe_to_manage)
    return Status::InvalidArgument("ref: " + request.reference +
                                   " is not safe to manage: " + it->reason_not_safe);
  if ((*b)->find_volume(request.project_name, name).ok())
    return Status::AlreadyExists("name: a volume named " + name + " already exists in project " +
                                 request.project_name);
  detail::ManageWork w;
  w.cluster_id = cluster.str();
  w.reference = request.reference;
  w.project_name = request.project_name;
  w.name = name;
  w.volume_id = impl_->env->new_uuid();
  w.fingerprint = it->fingerprint;
  auto id = impl_->engine->submit(kManageVolume, w.to_json(),
                                  {"cluster:" + w.cluster_id, "volume:" + w.volume_id});
  if (!id.ok()) return id.status();
  return ManageStarted{*id, w.volume_id};
}

Result<std::string> Volumes::unmanage(const VolumeRef& ref) {
  const std::string& cid = ref.cluster.str();
  return impl_->claimed_call<Result<std::string>>(
      cid, "volume:" + ref.id, "unmanaged",
      [&](Backend& b) { return b.get_volume(ref.project, ref.id).status(); },
      [&] { return impl_->groups->check_volume_free(cid, ref.id); },
      [&](Backend& b) { return b.unmanage_volume(ref.project, ref.id); });
}

}  // namespace dmscore
