#include <boost/json.hpp>
#include <cstdlib>

#include "harness.hpp"

namespace dmscore::fuzz {

void check_response(const http::Response& r) {
  if (r.status < 200 || r.status > 599) std::abort();
  if (r.content_type != "application/json") return;
  if (r.body.empty() && r.status < 300) return;  // SMS's answer to an update or a delete
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) std::abort();
  if (r.status >= 400) {
    const auto& o = v.as_object();
    if (o.contains("error_code")) {
      // SMS's error body (and its API gateway's).
      if (!o.at("error_code").is_string() || !o.contains("error_msg") ||
          !o.at("error_msg").is_string())
        std::abort();
    } else if (o.contains("code")) {
      // The native error body.
      if (!o.at("code").is_int64() || !o.contains("message") || !o.at("message").is_string() ||
          !o.contains("details"))
        std::abort();
    } else {
      // A route of another dialect (Cinder's /v3): one key naming the fault, holding the status
      // and the message (keystonemiddleware's 401 adds a title).
      if (o.size() != 1 || !o.begin()->value().is_object()) std::abort();
      const auto& f = o.begin()->value().as_object();
      if (!f.contains("code") || !f.at("code").is_int64() || f.at("code").as_int64() != r.status ||
          !f.contains("message") || !f.at("message").is_string())
        std::abort();
    }
    // No input, however hostile, is the service's own fault: an INTERNAL answer is a finding.
    if (r.status == 500) std::abort();
  }
}

}  // namespace dmscore::fuzz
