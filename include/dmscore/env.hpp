#pragma once
// Env: the seam between libdmscore and the operating system's clocks, randomness and the
// outcome of its file writes.
//
// Everything in the library that reads the time, sleeps or draws random ids goes through an
// Env, so tests can substitute a manual clock and deterministic ids; every write and sync of a
// file the library owns asks file_fault() first, so a test can make chosen writes fail as a
// full or failing disk would (leveldb's fault-injection Env does the same). Implementations
// must be safe for concurrent use.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace dmscore {

// What a file call is about to do, for Env::file_fault.
enum class FileOp { kWrite, kSync };

class Env {
 public:
  using SystemTime = std::chrono::system_clock::time_point;
  using SteadyTime = std::chrono::steady_clock::time_point;

  virtual ~Env() = default;

  // Wall-clock time, for timestamps that users see.
  virtual SystemTime now() = 0;
  // Monotonic time, for rates, deadlines and intervals.
  virtual SteadyTime steady_now() = 0;
  // Blocks the calling thread for about `d` (a manual clock may advance instead).
  virtual void sleep_for(std::chrono::nanoseconds d) = 0;
  // Fills `buf` with `len` bytes from a cryptographically secure generator.
  virtual void random_bytes(void* buf, std::size_t len) = 0;
  // A random (version 4) UUID in lowercase canonical form.
  std::string new_uuid();

  // Asked before each write or sync of a file the library owns: the store's database and its
  // journal, volume and snapshot data, their metadata sidecars. 0 lets the call proceed; an
  // errno value (ENOSPC, EIO, ...) makes it fail with that error instead, untouched.
  // Only consulted when injects_file_faults() is true, so the default costs nothing.
  // Default: 0.
  virtual int file_fault(FileOp op, std::string_view path);
  // True when file_fault() may answer non-zero. Default: false.
  virtual bool injects_file_faults() const { return false; }

  // The process-wide Env backed by the real clocks and the OS random generator.
  static std::shared_ptr<Env> Default();
};

// An Env whose clocks only move when told to. Randomness still comes from the OS.
// Safe for concurrent use.
class ManualEnv : public Env {
 public:
  explicit ManualEnv(SystemTime start = SystemTime(std::chrono::seconds(1700000000)));
  ~ManualEnv() override;

  SystemTime now() override;
  SteadyTime steady_now() override;
  // Advances both clocks by `d` instead of blocking.
  void sleep_for(std::chrono::nanoseconds d) override;
  void random_bytes(void* buf, std::size_t len) override;

  void advance(std::chrono::nanoseconds d);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace dmscore
