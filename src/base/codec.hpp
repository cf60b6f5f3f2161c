#pragma once
// JSON encoding and strict decoding of the contract's request bodies, shared by the core
// (workflow requests are stored in their API shape) and the HTTP façade.
//
// Decoding is strict: unknown fields, wrong types and out-of-range values are INVALID_ARGUMENT
// with a message that starts with the field path ("dst.size: ...").

#include <boost/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dmscore/clone.hpp"
#include "dmscore/cluster.hpp"
#include "dmscore/status.hpp"

namespace dmscore::detail {

namespace json = boost::json;

// Reads the fields of one JSON object and remembers which were read, so that the rest can be
// reported as unknown.
class ObjectReader {
 public:
  ObjectReader(const json::value& v, std::string path);

  Status status() const { return status_; }
  // Each getter leaves the output alone when the field is absent (or null).
  void string(const char* key, std::string& out, bool required = false);
  void boolean(const char* key, bool& out);
  void boolean(const char* key, std::optional<bool>& out);
  void integer(const char* key, std::optional<int>& out);
  // A size: a decimal string (the contract's form) or a non-negative integer.
  void size(const char* key, std::optional<std::uint64_t>& out, bool required = false);
  void string(const char* key, std::optional<std::string>& out);
  // An array of at most `max_items` strings.
  void strings(const char* key, std::vector<std::string>& out, std::size_t max_items,
               bool required = false);
  // An array of at most `max_items` integers (int32).
  void integers(const char* key, std::vector<int>& out, std::size_t max_items);
  // A nested object; nullptr when absent (and an error when required).
  const json::value* object(const char* key, bool required = false);
  // Any value, for the caller to check; nullptr when absent (or null).
  const json::value* any(const char* key) { return field(key); }
  // INVALID_ARGUMENT for the first field not read. Call after all getters.
  Status finish();

  std::string path(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  const json::value* field(const char* key);
  void fail(const char* key, const std::string& what);

  const json::object* obj_ = nullptr;
  std::string path_;
  std::set<std::string> read_;
  Status status_;
};

// Parses `text` as JSON; INVALID_ARGUMENT "body: ..." when it is not.
Result<json::value> parse_json(std::string_view text);

json::object to_json(const ThickCloneRequest& r);
Result<ThickCloneRequest> thick_clone_request_from_json(const json::value& v);

json::object to_json(const AttachClusterRequest& r);
Result<AttachClusterRequest> attach_cluster_request_from_json(const json::value& v);

// True for a lowercase or uppercase canonical UUID.
bool is_uuid(std::string_view s);

}  // namespace dmscore::detail
