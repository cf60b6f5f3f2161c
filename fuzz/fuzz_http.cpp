// Arbitrary bytes through the HTTP/1.1 request parser (the server's limits) and the router.
//
// The first byte picks the credentials added to a request that parses: none (as sent), the
// admin's token or a viewer's, so that inputs reach past authentication into every handler.

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>

#include "harness.hpp"

namespace bhttp = boost::beast::http;
using dmscore::fuzz::Harness;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Harness& h = Harness::get();
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  boost::asio::const_buffer buf(data + 1, size - 1);

  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(8 * 1024);
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::beast::error_code ec;
  while (!parser.is_done()) {
    std::size_t n = parser.put(buf, ec);
    buf += n;
    if (ec && ec != bhttp::error::need_more) return 0;
    ec = {};
    // All the bytes there are have been offered: what the parser still wants never comes.
    if (n == 0 || buf.size() == 0) {
      if (!parser.is_done() && parser.got_some()) parser.put_eof(ec);
      break;
    }
  }
  if (ec || !parser.is_done()) return 0;

  auto& msg = parser.get();
  dmscore::http::Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  for (const auto& f : msg) {
    if ((mode & 3) != 0 && boost::beast::iequals(f.name_string(), "Authorization")) continue;
    req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  }
  if ((mode & 3) == 1) req.headers.emplace_back("Authorization", "Bearer " + h.admin_token());
  if ((mode & 3) == 2) req.headers.emplace_back("Authorization", "Bearer " + h.viewer_token());
  req.body = std::move(msg.body());
  req.remote = "127.0.0.1";
  req.request_id = "fuzz";

  dmscore::http::Response res = h.router().handle(req);
  dmscore::fuzz::check_response(res);
  if (res.route == "/api/v1/logout" && res.status == 200) h.renew_tokens();
  return 0;
}
