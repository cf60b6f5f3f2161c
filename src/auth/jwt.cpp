#include "jwt.hpp"

#include <array>
#include <cstdint>

namespace dmscore::detail {
namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(std::string_view data, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(data[k]));
  };
  for (; i + 3 <= data.size(); i += 3) {
    std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    out += alphabet[v >> 6 & 63];
    out += alphabet[v & 63];
  }
  std::size_t rest = data.size() - i;
  if (rest == 1) {
    std::uint32_t v = byte(i) << 16;
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    out += alphabet[v >> 6 & 63];
    if (pad) out += '=';
  }
  return out;
}

}  // namespace

std::string base64_encode(std::string_view data) { return encode(data, kStd, true); }
std::string base64url_encode(std::string_view data) { return encode(data, kUrl, false); }

std::optional<std::string> base64url_decode(std::string_view text) {
  static const std::array<int, 256> kRev = [] {
    std::array<int, 256> r{};
    r.fill(-1);
    for (int i = 0; i < 64; ++i) r[static_cast<unsigned char>(kUrl[i])] = i;
    return r;
  }();
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = kRev[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

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
