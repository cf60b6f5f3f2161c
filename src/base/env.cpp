#include "dmscore/env.hpp"

#include <openssl/rand.h>

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace dmscore {
namespace {

void os_random(void* buf, std::size_t len) {
  // RAND_bytes draws from the OS entropy source through OpenSSL's DRBG; it only fails when the
  // system has no entropy at all, which is not a state the service can run in.
  if (RAND_bytes(static_cast<unsigned char*>(buf), static_cast<int>(len)) != 1) std::abort();
}

class RealEnv final : public Env {
 public:
  SystemTime now() override { return std::chrono::system_clock::now(); }
  SteadyTime steady_now() override { return std::chrono::steady_clock::now(); }
  void sleep_for(std::chrono::nanoseconds d) override { std::this_thread::sleep_for(d); }
  void random_bytes(void* buf, std::size_t len) override { os_random(buf, len); }
};

}  // namespace

std::string Env::new_uuid() {
  std::uint8_t b[16];
  random_bytes(b, sizeof b);
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

int Env::file_fault(FileOp, std::string_view) { return 0; }

std::shared_ptr<Env> Env::Default() {
  static std::shared_ptr<Env> env = std::make_shared<RealEnv>();
  return env;
}

struct ManualEnv::State {
  std::mutex mu;
  SystemTime system;
  SteadyTime steady;
};

ManualEnv::ManualEnv(SystemTime start) : state_(std::make_unique<State>()) {
  state_->system = start;
  state_->steady = SteadyTime(std::chrono::hours(1));
}
ManualEnv::~ManualEnv() = default;

Env::SystemTime ManualEnv::now() {
  std::lock_guard lock(state_->mu);
  return state_->system;
}
Env::SteadyTime ManualEnv::steady_now() {
  std::lock_guard lock(state_->mu);
  return state_->steady;
}
void ManualEnv::sleep_for(std::chrono::nanoseconds d) { advance(d); }
void ManualEnv::random_bytes(void* buf, std::size_t len) { os_random(buf, len); }
void ManualEnv::advance(std::chrono::nanoseconds d) {
  std::lock_guard lock(state_->mu);
  state_->system += std::chrono::duration_cast<SystemTime::duration>(d);
  state_->steady += std::chrono::duration_cast<SteadyTime::duration>(d);
}

}  // namespace dmscore
