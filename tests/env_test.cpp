#include "dmscore/env.hpp"

#include <catch2/catch.hpp>
#include <set>

using namespace dmscore;
using namespace std::chrono_literals;

TEST_CASE("Env: new_uuid gives distinct lowercase version-4 UUIDs") {
  auto env = Env::Default();
  // Lowercase hex in 8-4-4-4-12 groups, version nibble 4, variant 10xx.
  auto is_v4 = [](const std::string& u) {
    if (u.size() != 36) return false;
    for (std::size_t i = 0; i < u.size(); ++i) {
      char c = u[i];
      bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return u[14] == '4' && (u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b');
  };
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto u = env->new_uuid();
    CHECK(is_v4(u));
    seen.insert(u);
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("Env: the default clocks move forward") {
  auto env = Env::Default();
  auto a = env->steady_now();
  env->sleep_for(2ms);
  CHECK(env->steady_now() > a);
  CHECK(env->now().time_since_epoch().count() > 0);
}

TEST_CASE("ManualEnv: time moves only when advanced or slept") {
  ManualEnv env;
  auto t0 = env.now();
  auto s0 = env.steady_now();
  CHECK(env.now() == t0);
  env.advance(5s);
  CHECK(env.now() - t0 == 5s);
  env.sleep_for(250ms);
  CHECK(env.steady_now() - s0 == 5250ms);
}

TEST_CASE("ManualEnv: random bytes are not all zero") {
  ManualEnv env;
  unsigned char buf[64] = {};
  env.random_bytes(buf, sizeof buf);
  int nonzero = 0;
  for (auto b : buf) nonzero += b != 0;
  CHECK(nonzero > 0);
}
