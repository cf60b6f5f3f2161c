#pragma once
// Options for a Service under test: small keys and cheap password hashes (the production
// defaults are tested on their own in identity_test and auth_test) and a silent log.

#include <string>
#include <string_view>

#include "dmscore/options.hpp"

namespace dmscore::testing {

inline Options test_options(const std::string& data_dir, Options o = {}) {
  o.data_dir = data_dir;
  o.rsa_bits = 2048;
  o.scrypt_log2_n = 10;
  if (!o.log) o.log = [](std::string_view) {};
  return o;
}

}  // namespace dmscore::testing
