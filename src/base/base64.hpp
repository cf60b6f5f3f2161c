#pragma once
// Base64 (RFC 4648 §4) and base64url (§5, unpadded, as JWTs use it), over OpenSSL's EVP block
// coder. Decoding is strict: only the alphabet's characters, the right length, no stray bits.

#include <optional>
#include <string>
#include <string_view>

namespace dmscore::detail {

std::string base64_encode(std::string_view data);
std::string base64url_encode(std::string_view data);
// nullopt for anything that is not the canonical encoding of some bytes.
std::optional<std::string> base64_decode(std::string_view text);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace dmscore::detail
