#pragma once
// The OpenAPI document (docs/openapi.json), compiled in (cmake/openapi.cpp.in).

#include <string_view>

namespace dmscore::http::detail {

std::string_view openapi_document();

}  // namespace dmscore::http::detail
