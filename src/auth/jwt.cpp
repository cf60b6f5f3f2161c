#include "auth/jwt.hpp"


namespace dmscore::detail {

std::string jws_signing_input(std::string_view header_json, std::string_view payload_json) {
  return base64url_encode(header_json) + "." + base64url_encode(payload_json);
}

std::optional<JwsParts> split_jws(std::string_view token) {
  auto d1 = token.find('.');
  if (d1 == std::string_view::npos) return std::nullopt;
  auto d2 = token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return std::nullopt;
  auto h = base64url_decode(token.substr(0, d1));
  auto p = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
  auto s = base64url_decode(token.substr(d2 + 1));
  if (!h || !p || !s || h->empty() || p->empty() || s->empty()) return std::nullopt;
  return JwsParts{*h, *p, std::string(token.substr(0, d2)), *s};
}

}  // namespace dmscore::detail
