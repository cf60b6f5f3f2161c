#pragma once
// Network endpoints as the service writes and reads them: "[scheme://]host[:port][/]", parsed
// once, with Boost.URL, for the HTTP client, the Lightbits driver, the registry and the listen
// address of `dmsctl serve`.

#include <cstdint>
#include <string>
#include <string_view>

#include "dmscore/result.hpp"

namespace dmscore::detail {

struct NetEndpoint {
  std::string scheme;  // "https" or "http"
  std::string host;    // a name, an IPv4 address, or an IPv6 address without brackets
  std::uint16_t port = 0;

  bool tls() const { return scheme == "https"; }
  // "host:port" ("[v6]:port").
  std::string authority() const;
  // "scheme://host:port".
  std::string url() const { return scheme + "://" + authority(); }
};

// `text` without a scheme is `default_scheme`; without a port, 443 (https) or 80 (http). Only
// http and https, no user info, path, query or fragment. INVALID_ARGUMENT "<field>: ..."
// quoting `text` otherwise.
Result<NetEndpoint> parse_net_endpoint(std::string_view text, std::string_view default_scheme,
                                       const std::string& field);

// "ADDR:PORT" or "[v6]:PORT" to listen on (port 0: any). INVALID_ARGUMENT "<field>: ...".
Result<NetEndpoint> parse_listen_address(std::string_view text, const std::string& field);

}  // namespace dmscore::detail
