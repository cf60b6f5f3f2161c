#pragma once
// CopyEngine: a sparse-aware, parallel, checkpointed, throttled and cancellable block copy.
//
// The engine copies the data extents of a BlockSource into a BlockSink. Holes in the source
// stay holes in the destination, and so do all-zero blocks inside data extents (the sink is
// told to punch them when it is not known to be zero already). Several chunks are in flight on
// a small thread pool. Between two file descriptors copy_file_range(2) can move the data
// without a round trip through user space (CopyOptions::use_copy_file_range).
//
// Progress is the logical offset reached: a hole counts as copied once passed. The engine
// reports a "watermark" below which every byte is in the sink, so a copy interrupted at any
// point resumes from the last checkpointed watermark and still ends byte-identical.
//
// CopyEngine is stateless between calls and safe for concurrent use; one copy() call uses its
// own threads.
//
//   source ──extents()──► planner ──chunks──► pool ──read/zero-check──► sink.write / punch
//                                                 └─► watermark ─► on_progress (checkpoint)
//   end: sink.sync() (fsync) ─► OK

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "dmscore/env.hpp"
#include "dmscore/result.hpp"
#include "dmscore/status.hpp"

namespace dmscore {

// A byte range [offset, offset + length).
struct Extent {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  friend bool operator==(const Extent&, const Extent&) = default;
};

// Read access to an immutable image (a snapshot). Safe for concurrent reads.
class BlockSource {
 public:
  virtual ~BlockSource() = default;
  // Logical size in bytes.
  virtual std::uint64_t size() const = 0;
  // The extents within [from, to) that may hold data, in order and disjoint. Bytes outside
  // them read as zero. A source that cannot tell returns the whole range.
  virtual Result<std::vector<Extent>> data_extents(std::uint64_t from, std::uint64_t to) const = 0;
  // Reads exactly `len` bytes at `offset` (zero-filled past the end of data).
  virtual Status read_at(std::uint64_t offset, void* buf, std::size_t len) const = 0;
  // An OS descriptor that supports pread(2) on the same bytes (a regular file or a block
  // device), when there is one. Enables copy_file_range(2). Default: none.
  virtual std::optional<int> os_fd() const { return std::nullopt; }
};

// Write access to a destination image. Safe for concurrent writes to disjoint ranges.
class BlockSink {
 public:
  virtual ~BlockSink() = default;
  virtual std::uint64_t size() const = 0;
  // Writes exactly `len` bytes at `offset`.
  virtual Status write_at(std::uint64_t offset, const void* buf, std::size_t len) = 0;
  // Makes [offset, offset+len) read as zeros, releasing its space where possible.
  virtual Status zero_range(std::uint64_t offset, std::uint64_t len) = 0;
  // Makes every completed write durable (fsync).
  virtual Status sync() = 0;
  // True when every byte not yet written reads as zero (a freshly created image), so zero
  // ranges need no zero_range() call. Default: false.
  virtual bool known_zeroed() const { return false; }
  // See BlockSource::os_fd. Default: none.
  virtual std::optional<int> os_fd() const { return std::nullopt; }
};

struct CopyOptions {
  // Chunks in flight. Default: 4. REQUIRES: 1..64.
  int threads = 4;
  // Bytes per chunk; also the unit of cancellation and zero detection.
  // Default: 4 MiB. REQUIRES: a multiple of 4096 in 64 KiB..256 MiB.
  std::uint64_t chunk_bytes = 4u << 20;
  // Source bytes read per second at most; 0 means unlimited. Default: 0.
  std::uint64_t rate_limit_bytes_per_sec = 0;
  // Leave all-zero chunks inside data extents unwritten (or zero_range them). Default: true.
  bool skip_zero_chunks = true;
  // Use copy_file_range(2) when both sides have an os_fd and it works. Off by default: on XFS
  // or Btrfs the kernel may satisfy it with a reflink, which would make a thick clone share
  // blocks with its source, and on ext4 here it showed no consistent gain over pread/pwrite
  // (docs/benchmarks.md). Default: false.
  bool use_copy_file_range = false;
  // Minimum logical bytes between two on_progress calls (the final one always comes).
  // Default: 64 MiB.
  std::uint64_t progress_every_bytes = 64u << 20;
  // Clocks for rate measurement and throttling. Default: Env::Default().
  std::shared_ptr<Env> env;
};

struct CopyProgress {
  // Every byte below this offset is in the sink (not yet necessarily durable).
  std::uint64_t watermark = 0;
  // Logical bytes passed, holes included, counting from offset 0.
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  // Source bytes actually read and written (data, not holes), this call only.
  std::uint64_t data_bytes_copied = 0;
  // Logical bytes per second since this call started.
  std::uint64_t bytes_per_second = 0;
};

struct CopyStats {
  std::uint64_t bytes_total = 0;
  std::uint64_t data_bytes_copied = 0;
  std::uint64_t zero_bytes_skipped = 0;
  std::uint64_t hole_bytes_skipped = 0;
  bool used_copy_file_range = false;
  double seconds = 0;
};

// Asked before each chunk; returning true stops the copy with CANCELLED.
using StopFn = std::function<bool()>;
// Called from the engine's threads, one call at a time, with the watermark advancing. A non-OK
// return stops the copy with that status.
using ProgressFn = std::function<Status(const CopyProgress&)>;

class CopyEngine {
 public:
  explicit CopyEngine(CopyOptions options = {});

  // Copies source bytes [start, source.size()) into `sink`, then sync()s the sink.
  // REQUIRES: sink.size() >= source.size(); `start` a previously reported watermark or 0.
  // Bytes of the sink past source.size() are left as they are (zero for a fresh sink).
  // Returns OK when every byte is in the sink and durable; CANCELLED when `stop` said so
  // (within one chunk); INVALID_ARGUMENT for bad options or sizes; the first I/O error.
  Result<CopyStats> copy(const BlockSource& source, BlockSink& sink, std::uint64_t start = 0,
                         const StopFn& stop = {}, const ProgressFn& on_progress = {}) const;

  // Reads both sides chunk by chunk and compares checksums (holes included). The destination
  // may be larger than the source; its tail must read as zero.
  // Returns OK when identical; DATA_LOSS naming the first differing chunk's offset; CANCELLED.
  Status verify(const BlockSource& source, const BlockSource& destination, const StopFn& stop = {},
                const ProgressFn& on_progress = {}) const;

  const CopyOptions& options() const { return options_; }

 private:
  CopyOptions options_;
};

// Checks a CopyOptions against its REQUIRES clauses; INVALID_ARGUMENT names the field.
Status validate(const CopyOptions& options);

}  // namespace dmscore
