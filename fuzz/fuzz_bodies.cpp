// Arbitrary JSON into each request body decoder, through the router as the server calls it.
//
// The first byte picks the route; the rest is the body, sent with the admin's token. Routes
// under a cluster name one that is not attached, so a body that decodes is refused afterwards
// without creating anything; thick clone requests are validated in full before that.

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>

#include "harness.hpp"

using dmscore::fuzz::Harness;

namespace {

struct Target {
  const char* method;
  const char* path;
  bool authenticated;
};

constexpr Target kTargets[] = {
    {"POST", "/api/v1/login", false},
    {"POST", "/api/v1/clusters", true},
    {"POST", "/api/v1/clusters/refresh", true},
    {"POST", "/api/v1/clusters/5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e/projects/default/volumes",
     true},
    {"POST", "/api/v1/clusters/5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e/projects/default/snapshots",
     true},
    {"POST", "/api/v1/volumes/thickclone", true},
    {"POST", "/api/v1/snapshots/thickclone", true},
    {"POST", "/api/v1/workflows/5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e/cancel", true},
    {"POST", "/api/v1/consistency-groups", true},
    {"PUT", "/api/v1/consistency-groups/5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e", true},
    {"POST", "/api/v1/consistency-groups/5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e/action", true},
    {"POST", "/api/v1/cg-snapshots", true},
    {"POST", "/api/v1/consistency-groups/5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e/full-copies", true},
    {"POST",
     "/api/v1/consistency-groups/5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e/full-copies/"
     "5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e/action",
     true},
    {"POST", "/api/v1/consistency-groups/thickclone", true},
    {"POST", "/api/v1/clusters/5d0c3a52-7f5e-4c1e-9d7a-0e8f1b2c3d4e/repair", true},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Harness& h = Harness::get();
  if (size < 1) return 0;
  const Target& t = kTargets[data[0] % std::size(kTargets)];
  dmscore::http::Request req;
  req.method = t.method;
  req.target = t.path;
  req.headers.emplace_back("Content-Type", "application/json");
  if (t.authenticated) req.headers.emplace_back("Authorization", "Bearer " + h.admin_token());
  req.body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  req.remote = "10.0.0.1";  // one source: failed logins are soon throttled, before scrypt
  req.request_id = "fuzz";
  dmscore::fuzz::check_response(h.router().handle(req));
  return 0;
}
