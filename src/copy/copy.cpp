#include "dmscore/copy.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "copy/chunk_runner.hpp"

namespace dmscore {
namespace {

using namespace detail::copy_impl;  // NOLINT: the machinery is this file's own

std::string at(const char* what, uint64_t offset) {
  return std::string(what) + " at " + std::to_string(offset);
}

// Moves [offset, offset + len) between two descriptors inside the kernel. `moved` is how far it
// got; `unsupported` tells the caller to finish with read/write. Stops early at the source's EOF.
Status copy_range(int in_fd, int out_fd, uint64_t offset, uint64_t len, uint64_t* moved,
                  bool* unsupported) {
  *moved = 0;
  *unsupported = false;
  while (*moved < len) {
    loff_t in_off = static_cast<loff_t>(offset + *moved);
    loff_t out_off = in_off;
    ssize_t n = ::copy_file_range(in_fd, &in_off, out_fd, &out_off, len - *moved, 0);
    if (n > 0) {
      *moved += static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) return Status::Ok();
    int err = errno;
    if (err == EINTR) continue;
    if (err == EXDEV || err == ENOSYS || err == EOPNOTSUPP || err == EINVAL) {
      *unsupported = true;
      return Status::Ok();
    }
    Code code = err == ENOSPC || err == EDQUOT ? Code::kResourceExhausted : Code::kInternal;
    return Status(code, std::error_code(err, std::generic_category()).message());
  }
  return Status::Ok();
}

// Bytes read to decide whether a chunk can be handed to the kernel without a full read.
constexpr uint64_t kProbeBytes = 4096;

class CopyJob {
 public:
  CopyJob(const CopyOptions& options, const BlockSource& source, BlockSink& sink, Runner& runner,
          Throttle& throttle)
      : options_(options),
        source_(source),
        sink_(sink),
        runner_(runner),
        throttle_(throttle),
        known_zeroed_(sink.known_zeroed()) {
    if (options.use_copy_file_range) {
      std::optional<int> in = source.os_fd();
      std::optional<int> out = sink.os_fd();
      if (in && out) {
        in_fd_ = *in;
        out_fd_ = *out;
        kernel_copy_.store(true);
      }
    }
  }

  Status operator()(const Job& job, WorkerBuffers& buffers) {
    if (job.kind == kHole) {
      return sink_.zero_range(job.offset, job.length).with_prefix(at("zero_range", job.offset));
    }
    throttle_.acquire(job.length, runner_, job.offset);
    if (runner_.abandon(job.offset)) return Status::Ok();

    uint64_t offset = job.offset;
    uint64_t len = job.length;
    // Without zero detection the bytes need not come to user space at all.
    if (!options_.skip_zero_chunks && kernel_copy_.load(std::memory_order_relaxed)) {
      if (Status s = kernel_copy(offset, len); !s.ok() || len == 0) return s;
    }

    if (Status s = buffers.a.ensure(options_.chunk_bytes); !s.ok()) return s;
    unsigned char* buf = buffers.a.data();
    // A chunk whose first page holds data cannot be all zero: with a kernel copy available it
    // goes straight there, and only chunks that start with a zero page are read in full to
    // look for the rest. Random or real data thus crosses user space once per page, not chunk.
    if (options_.skip_zero_chunks && kernel_copy_.load(std::memory_order_relaxed) &&
        len > kProbeBytes) {
      if (Status s = source_.read_at(offset, buf, kProbeBytes); !s.ok()) {
        return s.with_prefix(at("read", offset));
      }
      if (!all_zero(buf, kProbeBytes)) {
        // Start reading the whole chunk at once: copy_file_range alone reads a cold source
        // page by page behind a small readahead window.
        (void)::posix_fadvise(in_fd_, static_cast<off_t>(offset), static_cast<off_t>(len),
                              POSIX_FADV_WILLNEED);
        if (Status s = kernel_copy(offset, len); !s.ok() || len == 0) return s;
      }
    }
    if (Status s = source_.read_at(offset, buf, len); !s.ok()) {
      return s.with_prefix(at("read", offset));
    }
    if (runner_.abandon(job.offset)) return Status::Ok();

    if (options_.skip_zero_chunks && all_zero(buf, len)) {
      zero_bytes_.fetch_add(len, std::memory_order_relaxed);
      if (known_zeroed_) return Status::Ok();
      return sink_.zero_range(offset, len).with_prefix(at("zero_range", offset));
    }

    if (kernel_copy_.load(std::memory_order_relaxed)) {
      const uint64_t before = offset;
      if (Status s = kernel_copy(offset, len); !s.ok() || len == 0) return s;
      buf += offset - before;
    }
    if (Status s = sink_.write_at(offset, buf, len); !s.ok()) {
      return s.with_prefix(at("write", offset));
    }
    runner_.add_data_bytes(len);
    return Status::Ok();
  }

  uint64_t zero_bytes() const { return zero_bytes_.load(); }
  bool used_kernel_copy() const { return used_kernel_copy_.load(); }

 private:
  // Moves what the kernel will of [offset, offset + len) and advances both past it. A kernel
  // that cannot do it turns the fast path off for the rest of the copy; the caller carries on
  // with read and write.
  Status kernel_copy(uint64_t& offset, uint64_t& len) {
    bool unsupported = false;
    uint64_t moved = 0;
    Status s = copy_range(in_fd_, out_fd_, offset, len, &moved, &unsupported);
    if (moved > 0) {
      used_kernel_copy_.store(true, std::memory_order_relaxed);
      runner_.add_data_bytes(moved);
    }
    if (unsupported) kernel_copy_.store(false, std::memory_order_relaxed);
    offset += moved;
    len -= moved;
    return s.with_prefix(at("copy_file_range", offset));
  }

  const CopyOptions& options_;
  const BlockSource& source_;
  BlockSink& sink_;
  Runner& runner_;
  Throttle& throttle_;
  const bool known_zeroed_;
  int in_fd_ = -1;
  int out_fd_ = -1;
  // Cleared for the rest of the copy at the first sign that the kernel cannot do it.
  std::atomic<bool> kernel_copy_{false};
  std::atomic<bool> used_kernel_copy_{false};
  std::atomic<uint64_t> zero_bytes_{0};
};

class VerifyJob {
 public:
  VerifyJob(const CopyOptions& options, const BlockSource& source, const BlockSource& dest,
            Runner& runner, Throttle& throttle)
      : options_(options),
        source_(source),
        dest_(dest),
        runner_(runner),
        throttle_(throttle),
        source_size_(source.size()) {}

  Status operator()(const Job& job, WorkerBuffers& buffers) {
    // The destination is at least as large as the source (checked up front), so only the
    // source side can end inside a chunk.
    uint64_t src_len =
        job.offset >= source_size_ ? 0 : std::min(job.length, source_size_ - job.offset);
    bool src = (job.kind & kSourceData) != 0 && src_len > 0;
    bool dst = (job.kind & kDestData) != 0;
    if (src) throttle_.acquire(src_len, runner_, job.offset);
    if (runner_.abandon(job.offset)) return Status::Ok();

    unsigned char* a = nullptr;
    unsigned char* b = nullptr;
    if (src) {
      if (Status s = buffers.a.ensure(options_.chunk_bytes); !s.ok()) return s;
      a = buffers.a.data();
      if (Status s = source_.read_at(job.offset, a, src_len); !s.ok()) {
        return s.with_prefix(at("source read", job.offset));
      }
      runner_.add_data_bytes(src_len);
    }
    if (dst) {
      if (Status s = buffers.b.ensure(options_.chunk_bytes); !s.ok()) return s;
      b = buffers.b.data();
      if (Status s = dest_.read_at(job.offset, b, job.length); !s.ok()) {
        return s.with_prefix(at("destination read", job.offset));
      }
    }
    // A side without extents in the chunk reads as zero there.
    bool same;
    if (src && dst) {
      same = std::memcmp(a, b, src_len) == 0 && all_zero(b + src_len, job.length - src_len);
    } else if (src) {
      same = all_zero(a, src_len);
    } else {
      same = all_zero(b, job.length);
    }
    if (!same) {
      return Status::DataLoss("destination differs from source in chunk at offset " +
                              std::to_string(job.offset));
    }
    return Status::Ok();
  }

 private:
  const CopyOptions& options_;
  const BlockSource& source_;
  const BlockSource& dest_;
  Runner& runner_;
  Throttle& throttle_;
  const uint64_t source_size_;
};

}  // namespace

Status validate(const CopyOptions& options) {
  if (options.threads < 1 || options.threads > kMaxThreads) {
    return Status::InvalidArgument("threads: must be 1..64, got " +
                                   std::to_string(options.threads));
  }
  if (options.chunk_bytes % kBlock != 0 || options.chunk_bytes < kMinChunk ||
      options.chunk_bytes > kMaxChunk) {
    return Status::InvalidArgument(
        "chunk_bytes: must be a multiple of 4096 in 64 KiB..256 MiB, got " +
        std::to_string(options.chunk_bytes));
  }
  return Status::Ok();
}

CopyEngine::CopyEngine(CopyOptions options) : options_(std::move(options)) {}

Result<CopyStats> CopyEngine::copy(const BlockSource& source, BlockSink& sink, uint64_t start,
                                   const StopFn& stop, const ProgressFn& on_progress) const {
  try {
    if (Status s = validate(options_); !s.ok()) return s;
    const uint64_t size = source.size();
    if (sink.size() < size) {
      return Status::InvalidArgument("sink: size " + std::to_string(sink.size()) +
                                     " is smaller than the source size " + std::to_string(size));
    }
    if (start > size) {
      return Status::InvalidArgument("start: " + std::to_string(start) +
                                     " is past the source size " + std::to_string(size));
    }
    if (start % kBlock != 0 && start != size) {
      return Status::InvalidArgument("start: " + std::to_string(start) +
                                     " is not a multiple of 4096");
    }
    std::shared_ptr<Env> env = options_.env ? options_.env : Env::Default();

    auto extents = extents_of(source, start, size);
    if (!extents.ok()) return extents.status();
    uint64_t data_extent_bytes = 0;
    for (const Extent& e : *extents) data_extent_bytes += e.length;

    const bool known_zeroed = sink.known_zeroed();
    CopyPlanner planner(std::move(extents).value(), start, size, options_.chunk_bytes,
                        !known_zeroed);
    Runner::Config config;
    config.threads = options_.threads;
    config.start = start;
    config.total = size;
    config.progress_every = options_.progress_every_bytes;
    config.cancel_message = "copy cancelled";
    Runner runner(config, *env, stop, on_progress);
    Throttle throttle(options_.rate_limit_bytes_per_sec, *env);
    CopyJob job(options_, source, sink, runner, throttle);

    if (Status s = runner.run(planner, std::ref(job)); !s.ok()) return s;
    if (Status s = sink.sync(); !s.ok()) return s.with_prefix("sync");
    if (Status s = runner.report_final(); !s.ok()) return s;

    CopyStats stats;
    stats.bytes_total = size;
    stats.data_bytes_copied = runner.data_bytes();
    stats.zero_bytes_skipped = job.zero_bytes();
    stats.hole_bytes_skipped = (size - start) - data_extent_bytes;
    stats.used_copy_file_range = job.used_kernel_copy();
    stats.seconds = runner.seconds();
    return stats;
  } catch (const std::bad_alloc&) {
    return Status::Internal("copy: out of memory");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("copy: unexpected exception: ") + e.what());
  } catch (...) {
    return Status::Internal("copy: unexpected exception");
  }
}

Status CopyEngine::verify(const BlockSource& source, const BlockSource& destination,
                          const StopFn& stop, const ProgressFn& on_progress) const {
  try {
    if (Status s = validate(options_); !s.ok()) return s;
    const uint64_t src_size = source.size();
    const uint64_t dst_size = destination.size();
    if (dst_size < src_size) {
      return Status::DataLoss("destination size " + std::to_string(dst_size) +
                              " is smaller than the source size " + std::to_string(src_size));
    }
    std::shared_ptr<Env> env = options_.env ? options_.env : Env::Default();

    auto src_extents = extents_of(source, 0, src_size);
    if (!src_extents.ok()) return src_extents.status().with_prefix("source");
    auto dst_extents = extents_of(destination, 0, dst_size);
    if (!dst_extents.ok()) return dst_extents.status().with_prefix("destination");

    VerifyPlanner planner(std::move(src_extents).value(), std::move(dst_extents).value(), dst_size,
                          options_.chunk_bytes);
    Runner::Config config;
    config.threads = options_.threads;
    config.start = 0;
    config.total = dst_size;
    config.progress_every = options_.progress_every_bytes;
    config.lowest_offset_wins = true;
    config.cancel_message = "verify cancelled";
    Runner runner(config, *env, stop, on_progress);
    Throttle throttle(options_.rate_limit_bytes_per_sec, *env);
    VerifyJob job(options_, source, destination, runner, throttle);

    if (Status s = runner.run(planner, std::ref(job)); !s.ok()) return s;
    return runner.report_final();
  } catch (const std::bad_alloc&) {
    return Status::Internal("verify: out of memory");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("verify: unexpected exception: ") + e.what());
  } catch (...) {
    return Status::Internal("verify: unexpected exception");
  }
}

}  // namespace dmscore
