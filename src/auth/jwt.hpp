#pragma once
// The compact JWS form used for RS256 JWTs.

#include <optional>
#include <string>
#include <string_view>

#include "base/base64.hpp"

namespace dmscore::detail {

// "<b64url(header)>.<b64url(payload)>", the part a JWS signs.
std::string jws_signing_input(std::string_view header_json, std::string_view payload_json);

struct JwsParts {
  std::string header_json;
  std::string payload_json;
  std::string signing_input;
  std::string signature;
};
// Splits a compact JWS into its three decoded parts; nullopt for anything malformed.
std::optional<JwsParts> split_jws(std::string_view token);

}  // namespace dmscore::detail
