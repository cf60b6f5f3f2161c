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
  // Fed as the server's read (Beast's read_some_op) feeds it: everything received so far; after
  // need_more, more bytes must arrive before the next put, and here no more ever do, so the
  // stream ends. Offering the same bytes again after need_more is something the server never
  // does, and Beast 1.81 asserts on it wrongly in one chunked case ("n >= 5" in
  // parse_chunk_header, boostorg/beast#2861, fixed in Boost 1.86; the code after it is right).
  boost::beast::error_code ec;
  while (!parser.is_done()) {
    std::size_t n = parser.put(buf, ec);
    buf += n;
    if (ec == bhttp::error::need_more || (!ec && n == 0)) {
      ec = {};
      if (parser.got_some()) parser.put_eof(ec);
      break;
    }
    if (ec) return 0;
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
