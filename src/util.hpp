#pragma once
// Small internal helpers shared by the library's sources.

#include <chrono>
#include <cstdint>

#include "dmscore/env.hpp"

namespace dmscore::detail {

inline std::int64_t to_millis(Env::SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline Env::SystemTime from_millis(std::int64_t ms) {
  return Env::SystemTime(std::chrono::milliseconds(ms));
}

}  // namespace dmscore::detail
