#pragma once
// The contract's JSON shapes of the core's values (camelCase, sizes as decimal strings,
// RFC 3339 UTC timestamps, unset timestamps left out).

#include <boost/json.hpp>
#include <string>

#include "dmscore/auth.hpp"
#include "dmscore/backend.hpp"
#include "dmscore/cluster.hpp"
#include "dmscore/full_copy.hpp"
#include "dmscore/group.hpp"
#include "dmscore/identity.hpp"
#include "dmscore/workflow.hpp"

namespace dmscore::http::detail {

namespace json = boost::json;

// "2026-11-22T09:30:00.123Z"
std::string rfc3339(Env::SystemTime t);

json::object to_json(const Cluster& c);
json::object to_json(const Volume& v);
json::object to_json(const Snapshot& s);
json::object to_json(const Workflow& w);
json::object to_json(const ServiceCredentials& c);
json::object to_json(const LoginResult& r);
json::object to_json(const ConsistencyGroup& g);
// Without its members (GET .../members lists them).
json::object to_json(const CgSnapshot& c);
json::object to_json(const CgSnapshotMember& m);
json::object to_json(const CopySet& c);
json::object to_json(const CopySetWork& w);

}  // namespace dmscore::http::detail
