#include "base/endpoint.hpp"

#include <boost/url/parse.hpp>

namespace dmscore::detail {

namespace urls = boost::urls;

std::string NetEndpoint::authority() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

Result<NetEndpoint> from_authority(urls::authority_view a, std::string scheme,
                                   std::string_view text, const std::string& field) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(field + ": " + why + " in '" + std::string(text.substr(0, 256)) +
                                   "'");
  };
  if (a.has_userinfo()) return bad("user info is not accepted");
  NetEndpoint e;
  e.scheme = std::move(scheme);
  if (a.host_type() == urls::host_type::ipv6)
    e.host = a.host_ipv6_address().to_string();
  else if (a.host_type() == urls::host_type::ipv4 || a.host_type() == urls::host_type::name)
    e.host = std::string(a.encoded_host());
  if (e.host.empty()) return bad("no host");
  if (e.host.find('%') != std::string::npos) return bad("an escaped host is not accepted");
  if (!a.has_port() || a.port().empty()) {
    e.port = e.tls() ? 443 : 80;
    return e;
  }
  const auto ps = a.port();
  if (ps.size() > 5 || ps.find_first_not_of("0123456789") != std::string_view::npos)
    return bad("bad port");
  const unsigned long p = std::stoul(std::string(ps));
  if (p == 0 || p > 65535) return bad("bad port");
  e.port = static_cast<std::uint16_t>(p);
  return e;
}

}  // namespace

Result<NetEndpoint> parse_net_endpoint(std::string_view text, std::string_view default_scheme,
                                       const std::string& field) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(field + ": " + why + " in '" + std::string(text.substr(0, 256)) +
                                   "'");
  };
  if (text.empty()) return Status::InvalidArgument(field + ": is empty");
  std::string s(text);
  if (s.find("://") == std::string::npos) s = std::string(default_scheme) + "://" + s;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  auto u = urls::parse_uri(s);
  if (!u) return bad("expected [https://]host[:port]");
  const std::string scheme(u->scheme());
  if (scheme != "https" && scheme != "http") return bad("unsupported scheme (use https:// or http://)");
  if (!u->has_authority()) return bad("no host");
  if (!u->encoded_path().empty() || u->has_query() || u->has_fragment())
    return bad("expected [https://]host[:port], nothing after it");
  return from_authority(u->authority(), scheme, text, field);
}

Result<NetEndpoint> parse_listen_address(std::string_view text, const std::string& field) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(field + ": " + why + ", got '" +
                                   std::string(text.substr(0, 256)) + "'");
  };
  auto a = urls::parse_authority(text);
  if (!a || !a->has_port() || a->port().empty()) return bad("expected ADDR:PORT");
  if (a->has_userinfo()) return bad("expected ADDR:PORT");
  NetEndpoint e;
  e.scheme = "http";
  if (a->host_type() == urls::host_type::ipv6)
    e.host = a->host_ipv6_address().to_string();
  else
    e.host = std::string(a->encoded_host());
  if (e.host.empty()) return bad("expected ADDR:PORT");
  if (a->port().size() > 5 || a->port().find_first_not_of("0123456789") != std::string_view::npos)
    return bad("bad port");
  const unsigned long p = std::stoul(std::string(a->port()));
  if (p > 65535) return bad("bad port");
  e.port = static_cast<std::uint16_t>(p);
  return e;
}

}  // namespace dmscore::detail
