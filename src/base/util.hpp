#pragma once
// Small internal helpers shared by the library's sources.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "dmscore/env.hpp"
#include "dmscore/result.hpp"

namespace dmscore::detail {

inline std::int64_t to_millis(Env::SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline Env::SystemTime from_millis(std::int64_t ms) {
  return Env::SystemTime(std::chrono::milliseconds(ms));
}

// `bytes` random bytes from `env` as lowercase hex (2 * bytes digits).
inline std::string random_hex(Env& env, std::size_t bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string raw(bytes, '\0'), out;
  env.random_bytes(raw.data(), bytes);
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// Page tokens are "<prefix><sequence number>": opaque to clients, checked strictly here.
inline std::string make_page_token(std::string_view prefix, std::int64_t seq) {
  return std::string(prefix) + std::to_string(seq);
}

// The sequence number in `token`; 0 for an empty token; INVALID_ARGUMENT naming
// nextPageToken for anything that is not a token this prefix made.
inline Result<std::int64_t> parse_page_token(const std::string& token, std::string_view prefix) {
  auto bad = Status::InvalidArgument("nextPageToken: malformed; pass a token from a previous page");
  if (token.empty()) return std::int64_t{0};
  if (token.size() > 32 || token.compare(0, prefix.size(), prefix) != 0) return bad;
  std::string_view digits = std::string_view(token).substr(prefix.size());
  if (digits.empty() || digits.size() > 18) return bad;
  std::int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return bad;
    v = v * 10 + (c - '0');
  }
  return v;
}

// NOT_FOUND for an id the request gave in `field`: the message names the field. Other statuses
// pass unchanged.
inline Status naming(const Status& s, const std::string& field) {
  return s.code() == Code::kNotFound ? Status::NotFound(field + ": " + s.message()) : s;
}

// True when an object's labels say workflow `workflow_id` created it (kOwnerLabel): the proof a
// compensation or a resumed step needs before it deletes or adopts an object found by name,
// which another workflow or a user may have made under that name meanwhile.
template <typename Labels>
bool made_by(const Labels& labels, const std::string& workflow_id) {
  auto it = labels.find("dms.workflow");
  return it != labels.end() && it->second == workflow_id;
}

}  // namespace dmscore::detail
