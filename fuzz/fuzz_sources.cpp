// Arbitrary bytes as an SMS source registration body (`POST /v3/sources`, seed 001): through the
// schema check and the environment check directly, and one input in sixteen through the
// router as the server calls it (registering, when it decodes, in the harness's store).
//
// The first byte picks the path; the rest is the body.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/codec.hpp"
#include "harness.hpp"
#include "sources/source_schema.hpp"

using dmscore::fuzz::Harness;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 16 != 0) {
    auto v = dmscore::detail::parse_json(body);
    if (!v.ok()) return 0;
    auto c = dmscore::detail::canonical_source_report(*v);
    if (!c.ok()) {
      // A refusal names a field: "<path>: <what>".
      if (c.status().message().find(": ") == std::string::npos) std::abort();
      return 0;
    }
    // What was accepted is accepted again, unchanged, in its canonical form.
    auto again = dmscore::detail::canonical_source_report(boost::json::value(*c));
    if (!again.ok() || *again != *c) std::abort();
    auto checks = dmscore::detail::check_source_environment(*c);
    for (const auto& k : checks)
      if (k.result != "OK" && k.result != "ERROR") std::abort();
    (void)dmscore::detail::source_disks(*c);
    return 0;
  }
  Harness& h = Harness::get();
  dmscore::http::Request req;
  req.method = "POST";
  req.target = "/v3/sources";
  req.headers.emplace_back("Content-Type", "application/json");
  req.headers.emplace_back("X-Auth-Token", h.admin_token());
  req.body = body;
  req.remote = "10.0.0.1";
  req.request_id = "fuzz";
  dmscore::fuzz::check_response(h.router().handle(req));
  return 0;
}
