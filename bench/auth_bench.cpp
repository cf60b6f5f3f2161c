// Password verification time, login throughput and token verification throughput, at the
// default costs (scrypt N=2^17 r=8 p=1, RSA-3072 login key).
//
//   auth_bench [DIR] [THREADS]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "dmscore/auth.hpp"
#include "dmscore/identity.hpp"
#include "dmscore/store.hpp"

using namespace dmscore;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Runs `fn` on `threads` threads for about `seconds`; returns calls per second.
template <typename Fn>
double rate(int threads, double seconds, Fn fn) {
  std::atomic<long> calls{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  auto t0 = Clock::now();
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&] {
      while (!stop) {
        fn();
        ++calls;
      }
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  return calls / since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = std::string(argc > 1 ? argv[1] : "/var/tmp") + "/dmscore-auth-bench-" +
                    std::to_string(getpid());
  int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  fs::create_directories(dir);
  auto store = Store::open(dir + "/dms.db");
  auto identity = Identity::open(dir + "/identity");
  if (!store.ok() || !identity.ok()) return 1;
  AuthOptions o;  // the defaults: scrypt ln=17
  Auth auth(**store, **identity, o);
  if (!auth.create_user("alice", "bench password 1", Role::kAdmin).ok()) return 1;

  std::string stored;
  (void)(*store)->read([&](Txn& t) -> Status {
    stored = (*t.query_one("SELECT password_hash FROM users"))->text(0);
    return Status::Ok();
  });
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    if (!verify_password("bench password 1", stored)) return 1;
    ms.push_back(since(t0) * 1000);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("password verification (scrypt ln=17 r=8 p=1): median %.0f ms over 5\n", ms[2]);

  double logins = rate(threads, 5.0, [&] {
    if (!auth.login("alice", "bench password 1", "127.0.0.1").ok()) std::abort();
  });
  std::printf("login throughput, %d threads: %.1f logins/s\n", threads, logins);

  std::string token = auth.login("alice", "bench password 1", "127.0.0.1")->id_token;
  double verifies = rate(threads, 3.0, [&] {
    if (!auth.verify(token).ok()) std::abort();
  });
  std::printf(
      "token verification, token seen before (claims + user lookup), %d threads: %.0f "
      "verifications/s\n",
      threads, verifies);
  // A token's first use: every Auth starts with nothing remembered.
  double first = rate(threads, 3.0, [&] {
    Auth fresh(**store, **identity, o);
    if (!fresh.verify(token).ok()) std::abort();
  });
  std::printf(
      "token verification, first use (RS256-3072 + claims + user lookup), %d threads: %.0f "
      "verifications/s\n",
      threads, first);
  fs::remove_all(dir);
  return 0;
}
