#include "output.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace dmsctl {

namespace json = boost::json;

bool parse_format(const std::string& text, Format& out) {
  if (text == "table")
    out = Format::kTable;
  else if (text == "wide")
    out = Format::kWide;
  else if (text == "json")
    out = Format::kJson;
  else if (text == "yaml")
    out = Format::kYaml;
  else if (text == "name")
    out = Format::kName;
  else
    return false;
  return true;
}

std::string human_bytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  if (u == 0) return fmt::format("{:.0f} B", bytes);
  return fmt::format("{:.1f} {}", bytes, kUnits[u]);
}

namespace {

void pretty(const json::value& v, std::string& out, int indent) {
  const std::string pad(indent, ' ');
  switch (v.kind()) {
    case json::kind::object: {
      const auto& o = v.as_object();
      if (o.empty()) {
        out += "{}";
        return;
      }
      out += "{\n";
      bool first = true;
      for (const auto& [k, x] : o) {
        if (!first) out += ",\n";
        first = false;
        out += pad + "  " + json::serialize(json::string(k)) + ": ";
        pretty(x, out, indent + 2);
      }
      out += "\n" + pad + "}";
      return;
    }
    case json::kind::array: {
      const auto& a = v.as_array();
      if (a.empty()) {
        out += "[]";
        return;
      }
      out += "[\n";
      for (std::size_t i = 0; i < a.size(); ++i) {
        out += pad + "  ";
        pretty(a[i], out, indent + 2);
        out += i + 1 < a.size() ? ",\n" : "\n";
      }
      out += pad + "]";
      return;
    }
    default:
      out += json::serialize(v);
  }
}

bool plain_scalar_ok(std::string_view s) {
  if (s.empty()) return false;
  static const char* kReserved[] = {"true", "false", "null", "~",    "yes",  "no",    "on",  "off",
                                    "True", "False", "Null", "NULL", "TRUE", "FALSE", "Yes", "No",
                                    "On",   "Off",   "YES",  "NO",   "ON",   "OFF",   "y",   "n"};
  for (const char* r : kReserved)
    if (s == r) return false;
  // Anything a YAML reader could take for a number.
  bool numeric = std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E' ||
           c == '_' || c == 'x' || c == 'o';
  });
  if (numeric) return false;
  // Timestamps and versions (2026-11-22T09:30:00Z, 1.2) would be read as other types by
  // YAML 1.1 readers.
  if (s.front() >= '0' && s.front() <= '9') return false;
  if (s.front() == ' ' || s.back() == ' ') return false;
  if (std::string_view("-?:,[]{}#&*!|>'\"%@`").find(s.front()) != std::string_view::npos)
    return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == ':' && (i + 1 == s.size() || s[i + 1] == ' ')) return false;
    if (c == '#' && i > 0 && s[i - 1] == ' ') return false;
  }
  return true;
}

std::string yaml_scalar(const json::value& v) {
  if (v.is_string()) {
    std::string_view s = v.as_string();
    // JSON's double-quoted form is valid YAML.
    return plain_scalar_ok(s) ? std::string(s) : json::serialize(v);
  }
  return json::serialize(v);
}

bool is_collection(const json::value& v) {
  return (v.is_object() && !v.as_object().empty()) || (v.is_array() && !v.as_array().empty());
}

void yaml(const json::value& v, std::string& out, int indent) {
  const std::string pad(indent, ' ');
  if (v.is_object()) {
    for (const auto& [k, x] : v.as_object()) {
      out += pad + yaml_scalar(json::string(k)) + ":";
      if (is_collection(x)) {
        out += "\n";
        yaml(x, out, x.is_array() ? indent : indent + 2);
      } else {
        out += " " +
               (x.is_object()  ? std::string("{}")
                : x.is_array() ? "[]"
                               : yaml_scalar(x)) +
               "\n";
      }
    }
  } else if (v.is_array()) {
    for (const auto& x : v.as_array()) {
      if (is_collection(x)) {
        // "- " then the first line of the nested block on the same line.
        std::string inner;
        yaml(x, inner, indent + 2);
        out += pad + "- " + inner.substr(indent + 2);
      } else {
        out += pad + "- " +
               (x.is_object()  ? std::string("{}")
                : x.is_array() ? "[]"
                               : yaml_scalar(x)) +
               "\n";
      }
    }
  } else {
    out += pad + yaml_scalar(v) + "\n";
  }
}

std::string str(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return "";
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

std::string size_col(const json::object& o, const char* key) {
  std::string s = str(o, key);
  if (s.empty()) return "";
  try {
    return human_bytes(static_cast<double>(std::stoull(s)));
  } catch (...) {
    return s;
  }
}

// Rows (the first one the titles): three spaces between columns, no trailing blanks.
std::string aligned(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

struct Column {
  const char* title;
  bool wide_only;
  std::function<std::string(const json::object&)> get;
};

std::vector<Column> columns(const std::string& kind) {
  auto f = [](const char* key) { return [key](const json::object& o) { return str(o, key); }; };
  if (kind == "cluster")
    return {{"ID", false, f("id")},
            {"NAME", false, f("name")},
            {"KIND", false, f("kind")},
            {"ACCESS", false,
             [](const json::object& o) {
               auto* s = o.if_contains("clusterConnectionStatus");
               return s && s->is_object() ? str(s->as_object(), "accessConnectionStatus") : "";
             }},
            {"DATA", false,
             [](const json::object& o) {
               auto* s = o.if_contains("clusterConnectionStatus");
               return s && s->is_object() ? str(s->as_object(), "dataConnectionStatus") : "";
             }},
            {"VERSION", true, f("version")},
            {"ENDPOINTS", true,
             [](const json::object& o) {
               std::string out;
               if (auto* a = o.if_contains("apiEndpoints"); a && a->is_array())
                 for (auto& e : a->as_array())
                   out +=
                       (out.empty() ? "" : ",") + std::string(e.is_string() ? e.as_string() : "");
               return out;
             }},
            {"ATTACHED", true, f("attachedAt")},
            {"REFRESHED", true, f("refreshedAt")}};
  if (kind == "volume")
    return {{"ID", false, f("id")},
            {"NAME", false, f("name")},
            {"PROJECT", true, f("projectName")},
            {"SIZE", false, [](const json::object& o) { return size_col(o, "size"); }},
            {"STATE", false, f("state")},
            {"REPLICAS", true, f("replicaCount")},
            {"SECTOR", true, f("sectorSize")},
            {"COMPRESSION", true, f("compression")},
            {"SOURCE-SNAPSHOT", true, f("sourceSnapshotId")},
            {"CREATED", false, f("createdAt")},
            {"DEVICE", true, f("devicePath")}};
  if (kind == "manageableVolume") {
    auto ref = [](const json::object& o) {
      auto* r = o.if_contains("reference");
      return r && r->is_object() ? str(r->as_object(), "source-name") : "";
    };
    return {{"REFERENCE", false, ref},
            {"SIZE", false, [](const json::object& o) { return str(o, "size") + "GiB"; }},
            {"SAFE", false, f("safeToManage")},
            {"REASON", false, f("reasonNotSafe")},
            {"VOLUME-ID", true, f("volumeId")},
            {"EXTRA", true, f("extraInfo")}};
  }
  if (kind == "snapshot")
    return {{"ID", false, f("id")},
            {"NAME", false, f("name")},
            {"PROJECT", true, f("projectName")},
            {"SIZE", false, [](const json::object& o) { return size_col(o, "size"); }},
            {"STATE", false, f("state")},
            {"SOURCE-VOLUME", false, f("sourceVolumeId")},
            {"DESCRIPTION", true, f("description")},
            {"CREATED", false, f("createdAt")}};
  if (kind == "workflow")
    return {{"ID", false, f("id")},
            {"TYPE", false, f("type")},
            {"STATE", false, f("state")},
            {"PROGRESS", false,
             [](const json::object& o) {
               auto* p = o.if_contains("progress");
               return p && p->is_object() ? str(p->as_object(), "percent") + "%" : "";
             }},
            {"STAGE", true,
             [](const json::object& o) {
               auto* p = o.if_contains("progress");
               return p && p->is_object() ? str(p->as_object(), "stage") : "";
             }},
            {"CREATED", false, f("createdAt")},
            {"ENDED", true, f("endedAt")},
            {"MESSAGE", true, f("msg")}};
  if (kind == "consistencyGroup")
    return {{"ID", false, f("id")},
            {"NAME", false, f("name")},
            {"STATUS", false, f("status")},
            {"MEMBERS", false,
             [](const json::object& o) {
               auto* a = o.if_contains("volumeIds");
               return a && a->is_array() ? std::to_string(a->as_array().size()) : "";
             }},
            {"CLUSTER", true, f("clusterId")},
            {"PROJECT", true, f("projectName")},
            {"DESCRIPTION", true, f("description")},
            {"CREATED", false, f("createdAt")}};
  if (kind == "cgSnapshot")
    return {{"ID", false, f("id")},
            {"NAME", false, f("name")},
            {"GROUP", false, f("consistencyGroupId")},
            {"STATUS", false, f("status")},
            {"WORKFLOW", true, f("workflowId")},
            {"MESSAGE", true, f("message")},
            {"CREATED", false, f("createdAt")}};
  if (kind == "copySet")
    return {{"ID", false, f("id")},
            {"NAME", false, f("name")},
            {"GROUP", true, f("consistencyGroupId")},
            {"COPIES", false,
             // "1:synchronized 2:error ..."
             [](const json::object& o) {
               std::string out;
               if (auto* a = o.if_contains("copies"); a && a->is_array())
                 for (const auto& c : a->as_array())
                   if (c.is_object())
                     out += (out.empty() ? "" : " ") + str(c.as_object(), "index") + ":" +
                            str(c.as_object(), "status");
               return out;
             }},
            {"CLUSTER", true, f("clusterId")},
            {"PROJECT", true, f("projectName")},
            {"CREATED", false, f("createdAt")}};
  if (kind == "member")
    return {{"VOLUME", false, f("volumeId")},
            {"SNAPSHOT", false, f("snapshotId")},
            {"SIZE", false, [](const json::object& o) { return size_col(o, "size"); }}};
  if (kind == "instance")
    return {{"ID", false, f("id")},
            {"ADDRESS", false, f("address")},
            {"ALIVE", false, f("alive")},
            {"RUNNING", false, f("runningWorkflows")},
            {"HEARTBEAT", false, f("heartbeatAt")},
            {"LEASE-UNTIL", true, f("leaseUntil")},
            {"STARTED", true, f("startedAt")}};
  if (kind == "user")
    return {{"USERNAME", false, f("username")},
            {"ROLE", false, f("role")},
            {"CREATED", false, f("createdAt")},
            {"PASSWORD-CHANGED", true, f("passwordChangedAt")}};
  if (kind == "sourceServer")
    return {{"ID", false, f("id")},
            {"NAME", false, f("name")},
            {"HOSTNAME", true, f("hostname")},
            {"IP", false,
             [](const json::object& o) {
               std::string ip = str(o, "ip");
               return ip.empty() ? str(o, "ipv6") : ip;
             }},
            {"OS", false, f("osType")},
            {"OS-VERSION", true, f("osVersion")},
            {"AGENT", true, f("agentVersion")},
            {"STATE", false, f("state")},
            {"CYCLE", false, f("migrationCycle")},
            {"CONNECTED", false, f("connected")},
            {"DISKS", true,
             [](const json::object& o) {
               const auto* d = o.if_contains("disks");
               return d && d->is_array() ? std::to_string(d->as_array().size()) : "";
             }},
            {"SIZE", true, [](const json::object& o) { return size_col(o, "totalSize"); }},
            {"ADDED", true, f("addedAt")},
            {"LAST-VISIT", false, f("lastVisitAt")}};
  // A source server's environment checks.
  if (kind == "check")
    return {{"FAILED-CHECK", false, f("name")},
            {"RESULT", false, f("result")},
            {"CODE", false, f("errorCode")},
            {"MESSAGE", false, f("message")}};
  if (kind == "service-credentials")
    return {{"PUBKEYID", false, f("pubKeyId")},
            {"HOSTNQN", false, f("hostNqn")},
            {"PUBKEY", true, f("pubKey")}};
  return {{"ID", false, f("id")}};
}

// The objects in an answer: [obj] for {"cluster": obj}, the array for {"clusters": [...]},
// the answer itself otherwise.
std::vector<json::object> objects(const json::value& answer, const std::string& kind) {
  std::vector<json::object> out;
  if (!answer.is_object()) return out;
  const auto& o = answer.as_object();
  if (auto* one = o.if_contains(kind); one && one->is_object()) {
    out.push_back(one->as_object());
  } else if (auto* many = o.if_contains(kind + "s"); many && many->is_array()) {
    for (auto& x : many->as_array())
      if (x.is_object()) out.push_back(x.as_object());
  } else {
    out.push_back(o);
  }
  return out;
}

}  // namespace

std::string to_yaml(const json::value& v) {
  std::string out;
  if (!is_collection(v)) return yaml_scalar(v.is_object() ? json::value("{}") : v) + "\n";
  yaml(v, out, 0);
  return out;
}

std::string render(const json::value& answer, const std::string& kind, Format format) {
  switch (format) {
    case Format::kJson: {
      std::string out;
      pretty(answer, out, 0);
      return out + "\n";
    }
    case Format::kYaml:
      return to_yaml(answer);
    case Format::kName: {
      std::string out;
      for (const auto& o : objects(answer, kind)) {
        std::string id = str(o, kind == "service-credentials" ? "pubKeyId"
                                : kind == "user"              ? "username"
                                                              : "id");
        if (!id.empty()) out += kind + "/" + id + "\n";
      }
      return out;
    }
    case Format::kTable:
    case Format::kWide: {
      const bool wide = format == Format::kWide;
      std::vector<Column> cols;
      for (auto& c : columns(kind))
        if (wide || !c.wide_only) cols.push_back(c);
      std::vector<std::vector<std::string>> rows;
      rows.emplace_back();
      for (auto& c : cols) rows.back().push_back(c.title);
      for (const auto& o : objects(answer, kind)) {
        rows.emplace_back();
        for (auto& c : cols) rows.back().push_back(c.get(o));
      }
      return aligned(rows);
    }
  }
  return {};
}

}  // namespace dmsctl
