#pragma once
// The store's schema history. Migrations are append-only: a released version's SQL never
// changes; a new need is a new version.

#include <vector>

#include "dmscore/store.hpp"

namespace dmscore::detail {
const std::vector<Migration>& schema_migrations();
}  // namespace dmscore::detail
