#pragma once
// The machinery under CopyEngine (copy.cpp): chunk planning over a source's data extents
// (CopyPlanner, VerifyPlanner), the pool that keeps `threads` chunks in flight and reports a
// watermark (Runner), aligned per-worker buffers and the byte-rate throttle that waits through
// Env. Private to copy.cpp.

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

#include "dmscore/copy.hpp"

namespace dmscore::detail::copy_impl {

using std::uint64_t;

inline constexpr uint64_t kBlock = 4096;
inline constexpr uint64_t kMinChunk = 64u << 10;
inline constexpr uint64_t kMaxChunk = 256u << 20;
inline constexpr int kMaxThreads = 64;
// A punch is one cheap call whatever its length, so holes are zeroed in runs of many chunks; the
// run still bounds how much a resumed copy redoes and how long a cancel waits.
inline constexpr uint64_t kHoleRunChunks = 256;
// Throttled waits are sliced so that a stop request is seen while a worker is waiting.
inline constexpr std::chrono::milliseconds kMaxSleepSlice{100};

alignas(kBlock) inline const unsigned char kZeroBlock[kBlock] = {};

// memcmp against a zero page runs at memory bandwidth and leaves early at the first non-zero page.
inline bool all_zero(const unsigned char* p, std::size_t n) {
  for (; n >= kBlock; p += kBlock, n -= kBlock) {
    if (std::memcmp(p, kZeroBlock, kBlock) != 0) return false;
  }
  return n == 0 || std::memcmp(p, kZeroBlock, n) == 0;
}

inline uint64_t end_of(const Extent& e) { return e.offset + e.length; }

// The next multiple of `unit` strictly above `offset`, capped at `limit`.
inline uint64_t next_boundary(uint64_t offset, uint64_t unit, uint64_t limit) {
  return std::min(limit, (offset / unit + 1) * unit);
}

// Sources are told to return sorted, disjoint extents; clamping and merging anyway costs nothing
// and keeps a sloppy source from making the planner copy a byte twice or skip one.
inline std::vector<Extent> normalize(std::vector<Extent> in, uint64_t from, uint64_t to) {
  std::vector<Extent> out;
  out.reserve(in.size());
  for (const Extent& e : in) {
    uint64_t b = std::max(e.offset, from);
    uint64_t f = e.length > to - std::min(e.offset, to) ? to : e.offset + e.length;
    if (b < f) out.push_back({b, f - b});
  }
  std::sort(out.begin(), out.end(),
            [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
  std::vector<Extent> merged;
  merged.reserve(out.size());
  for (const Extent& e : out) {
    if (!merged.empty() && e.offset <= end_of(merged.back())) {
      merged.back().length = std::max(end_of(merged.back()), end_of(e)) - merged.back().offset;
    } else {
      merged.push_back(e);
    }
  }
  return merged;
}

inline Result<std::vector<Extent>> extents_of(const BlockSource& source, uint64_t from,
                                              uint64_t to) {
  if (from >= to) return std::vector<Extent>{};
  auto r = source.data_extents(from, to);
  if (!r.ok()) return r.status().with_prefix("data_extents");
  return normalize(std::move(r).value(), from, to);
}

// A page-aligned buffer, allocated on first use so a worker that never needs the bytes in user
// space (copy_file_range without zero detection) does not hold chunk_bytes of memory.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  Status ensure(std::size_t bytes) {
    if (data_ != nullptr) return Status::Ok();
    void* p = nullptr;
    if (posix_memalign(&p, kBlock, bytes) != 0) {
      return Status::Internal("cannot allocate a " + std::to_string(bytes) + "-byte buffer");
    }
    data_ = static_cast<unsigned char*>(p);
    return Status::Ok();
  }
  unsigned char* data() const { return data_; }

 private:
  unsigned char* data_ = nullptr;
};

struct WorkerBuffers {
  AlignedBuffer a;
  AlignedBuffer b;
};

// copy() jobs: a range of data, or a hole to zero in a sink that is not known to be zero.
inline constexpr unsigned kData = 1;
inline constexpr unsigned kHole = 2;
// verify() jobs: which sides have data in the chunk.
inline constexpr unsigned kSourceData = 1;
inline constexpr unsigned kDestData = 2;

struct Job {
  uint64_t offset = 0;
  uint64_t length = 0;
  unsigned kind = 0;
};

// Hands out jobs in increasing offset order. frontier() is where the next job starts: every
// byte below it that is in no job handed out needs no work, which is what lets holes count as
// done as soon as the watermark passes them.
class Planner {
 public:
  virtual ~Planner() = default;
  virtual std::optional<Job> next() = 0;
  virtual uint64_t frontier() const = 0;
};

class CopyPlanner final : public Planner {
 public:
  CopyPlanner(std::vector<Extent> extents, uint64_t start, uint64_t end, uint64_t chunk,
              bool zero_holes)
      : extents_(std::move(extents)),
        pos_(start),
        end_(end),
        chunk_(chunk),
        zero_holes_(zero_holes) {
    skip_hole();
  }

  std::optional<Job> next() override {
    if (pos_ >= end_) return std::nullopt;
    Job job;
    if (in_extent()) {
      uint64_t e = end_of(extents_[idx_]);
      // Chunks are aligned to chunk_bytes so that a resumed copy cuts the same chunks.
      uint64_t stop = next_boundary(pos_, chunk_, e);
      job = {pos_, stop - pos_, kData};
      pos_ = stop;
      if (pos_ == e) ++idx_;
    } else {
      uint64_t hole_end = idx_ < extents_.size() ? extents_[idx_].offset : end_;
      uint64_t stop = next_boundary(pos_, chunk_ * kHoleRunChunks, hole_end);
      job = {pos_, stop - pos_, kHole};
      pos_ = stop;
    }
    skip_hole();
    return job;
  }

  uint64_t frontier() const override { return pos_; }

 private:
  bool in_extent() const { return idx_ < extents_.size() && pos_ >= extents_[idx_].offset; }

  void skip_hole() {
    if (zero_holes_ || pos_ >= end_ || in_extent()) return;
    pos_ = idx_ < extents_.size() ? extents_[idx_].offset : end_;
  }

  std::vector<Extent> extents_;
  std::size_t idx_ = 0;
  uint64_t pos_;
  uint64_t end_;
  uint64_t chunk_;
  bool zero_holes_;
};

// Chunk windows of [0, end) where at least one side has a data extent; the rest reads as zero
// on both sides and needs no reading.
class VerifyPlanner final : public Planner {
 public:
  VerifyPlanner(std::vector<Extent> src, std::vector<Extent> dst, uint64_t end, uint64_t chunk)
      : src_(std::move(src)), dst_(std::move(dst)), end_(end), chunk_(chunk) {
    settle();
  }

  std::optional<Job> next() override {
    if (pos_ >= end_) return std::nullopt;
    uint64_t stop = next_boundary(pos_, chunk_, end_);
    Job job{pos_, stop - pos_, kind_};
    pos_ = stop;
    settle();
    return job;
  }

  uint64_t frontier() const override { return pos_; }

 private:
  // Moves pos_ to the first chunk window, at or after it, that overlaps an extent of either side.
  void settle() {
    while (pos_ < end_) {
      uint64_t stop = next_boundary(pos_, chunk_, end_);
      while (si_ < src_.size() && end_of(src_[si_]) <= pos_) ++si_;
      while (di_ < dst_.size() && end_of(dst_[di_]) <= pos_) ++di_;
      kind_ = 0;
      if (si_ < src_.size() && src_[si_].offset < stop) kind_ |= kSourceData;
      if (di_ < dst_.size() && dst_[di_].offset < stop) kind_ |= kDestData;
      if (kind_ != 0) return;
      uint64_t next_data = end_;
      if (si_ < src_.size()) next_data = std::min(next_data, src_[si_].offset);
      if (di_ < dst_.size()) next_data = std::min(next_data, dst_[di_].offset);
      pos_ = next_data >= end_ ? end_ : next_data / chunk_ * chunk_;
    }
  }

  std::vector<Extent> src_;
  std::vector<Extent> dst_;
  std::size_t si_ = 0;
  std::size_t di_ = 0;
  uint64_t pos_ = 0;
  uint64_t end_;
  uint64_t chunk_;
  unsigned kind_ = 0;
};

// Runs a planner's jobs on a pool of threads owned by one call, and keeps the watermark, the
// progress reports, the stop checks and the first failure.
class Runner {
 public:
  using Work = std::function<Status(const Job&, WorkerBuffers&)>;

  struct Config {
    int threads = 1;
    uint64_t start = 0;
    uint64_t total = 0;
    uint64_t progress_every = 0;
    // verify() must name the lowest differing chunk, whichever worker finds it first; copy()
    // returns the first error in time.
    bool lowest_offset_wins = false;
    const char* cancel_message = "cancelled";
  };

  Runner(Config config, Env& env, const StopFn& stop, const ProgressFn& on_progress)
      : config_(config),
        env_(env),
        stop_(stop),
        on_progress_(on_progress),
        started_(env.steady_now()),
        last_reported_(config.start) {}

  Status run(Planner& planner, const Work& work) {
    planner_ = &planner;
    if (planner.frontier() >= config_.total) return Status::Ok();
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(config_.threads));
    try {
      for (int i = 0; i < config_.threads; ++i) pool.emplace_back([this, &work] { worker(work); });
    } catch (const std::exception& e) {
      fail(Status::Internal(std::string("cannot start a copy thread: ") + e.what()), 0);
    }
    for (std::thread& t : pool) t.join();
    std::lock_guard lock(mu_);
    return failure_;
  }

  // The last report, with the watermark at the end; called once everything is done (and durable).
  Status report_final() {
    if (!on_progress_) return Status::Ok();
    return call_progress(config_.total);
  }

  // True once the run failed or was cancelled.
  bool aborted() const { return aborted_.load(std::memory_order_relaxed); }

  // True when the job at `offset` can no longer change the outcome. When the lowest offset wins,
  // jobs below the failure must still finish: one of them may fail lower.
  bool abandon(uint64_t offset) const {
    if (!aborted()) return false;
    return !config_.lowest_offset_wins || offset >= failure_rank_.load(std::memory_order_relaxed);
  }

  // Asks the caller's stop function, one call at a time since it may not be thread-safe.
  bool stop_requested(uint64_t offset) {
    if (abandon(offset)) return true;
    if (!stop_) return false;
    bool stop;
    {
      std::lock_guard lock(stop_mu_);
      stop = stop_();
    }
    if (stop) fail(Status::Cancelled(config_.cancel_message), offset);
    return stop;
  }

  void fail(Status status, uint64_t offset) {
    std::lock_guard lock(mu_);
    uint64_t rank = config_.lowest_offset_wins ? offset : 0;
    if (failure_.ok() || rank < failure_rank_.load(std::memory_order_relaxed)) {
      failure_ = std::move(status);
      failure_rank_.store(rank, std::memory_order_relaxed);
    }
    aborted_.store(true, std::memory_order_relaxed);
  }

  void add_data_bytes(uint64_t n) { data_bytes_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t data_bytes() const { return data_bytes_.load(std::memory_order_relaxed); }
  double seconds() const {
    return std::chrono::duration<double>(env_.steady_now() - started_).count();
  }

 private:
  void worker(const Work& work) {
    WorkerBuffers buffers;
    uint64_t offset = 0;
    try {
      while (!aborted()) {
        std::optional<Job> job = pull();
        if (!job) return;
        offset = job->offset;
        if (stop_requested(offset)) return;
        Status s = work(*job, buffers);
        if (!s.ok()) {
          fail(std::move(s), offset);
          return;
        }
        // A job cut short by another worker's failure is not done; nobody reads the watermark
        // after a failure anyway.
        if (abandon(offset)) return;
        complete(*job);
      }
    } catch (const std::bad_alloc&) {
      fail(Status::Internal("out of memory"), offset);
    } catch (const std::exception& e) {
      fail(Status::Internal(std::string("unexpected exception: ") + e.what()), offset);
    } catch (...) {
      fail(Status::Internal("unexpected exception"), offset);
    }
  }

  std::optional<Job> pull() {
    std::lock_guard lock(mu_);
    std::optional<Job> job = planner_->next();
    if (job) in_flight_.push_back(job->offset);
    return job;
  }

  void complete(const Job& job) {
    uint64_t mark;
    {
      std::lock_guard lock(mu_);
      auto it = std::find(in_flight_.begin(), in_flight_.end(), job.offset);
      *it = in_flight_.back();
      in_flight_.pop_back();
      mark = watermark_locked();
    }
    maybe_report(mark);
  }

  // Jobs are handed out in offset order, so everything below the lowest one in flight (or below
  // the planner's frontier when none is) is done.
  uint64_t watermark_locked() const {
    if (in_flight_.empty()) return planner_->frontier();
    return *std::min_element(in_flight_.begin(), in_flight_.end());
  }

  void maybe_report(uint64_t mark) {
    if (!on_progress_ || !due(mark)) return;
    std::lock_guard progress_lock(progress_mu_);
    {
      // Another worker may have reported a later watermark while this one waited.
      std::lock_guard lock(mu_);
      mark = watermark_locked();
    }
    if (!due(mark) || aborted()) return;
    Status s = call_progress(mark);
    if (!s.ok()) fail(std::move(s), 0);
  }

  // The end is reported only by report_final(), after the sink is durable.
  bool due(uint64_t mark) const {
    uint64_t last = last_reported_.load(std::memory_order_relaxed);
    return mark < config_.total && mark > last && mark - last >= config_.progress_every;
  }

  Status call_progress(uint64_t mark) {
    last_reported_.store(mark, std::memory_order_relaxed);
    CopyProgress p;
    p.watermark = mark;
    p.bytes_done = mark;
    p.bytes_total = config_.total;
    p.data_bytes_copied = data_bytes();
    double secs = seconds();
    if (secs > 0) p.bytes_per_second = static_cast<uint64_t>((mark - config_.start) / secs);
    return on_progress_(p);
  }

  const Config config_;
  Env& env_;
  const StopFn& stop_;
  const ProgressFn& on_progress_;
  const Env::SteadyTime started_;
  Planner* planner_ = nullptr;

  std::mutex stop_mu_;
  // Serializes on_progress calls.
  std::mutex progress_mu_;
  std::atomic<uint64_t> last_reported_;

  std::mutex mu_;
  std::vector<uint64_t> in_flight_;
  Status failure_;
  std::atomic<uint64_t> failure_rank_{0};
  std::atomic<bool> aborted_{false};
  std::atomic<uint64_t> data_bytes_{0};
};

// A token bucket over the Env's clock, shared by all workers of one call. The waiting worker
// holds the lock while it sleeps so that waits queue instead of overlapping: the others' sleeps
// would otherwise add up on a manual clock, and they cannot go sooner anyway.
class Throttle {
 public:
  Throttle(uint64_t bytes_per_sec, Env& env) : rate_(bytes_per_sec), env_(env) {
    next_ = env.steady_now();
  }

  // Waits until `bytes` more may be read. Returns early when the runner stops.
  void acquire(uint64_t bytes, Runner& runner, uint64_t offset) {
    if (rate_ == 0) return;
    std::lock_guard lock(mu_);
    // Charged before the read, so a copy of N bytes takes at least N / rate.
    // Whole seconds and the remainder apart, so nothing overflows 64 bits.
    auto cost = std::chrono::seconds(bytes / rate_) +
                std::chrono::nanoseconds(static_cast<std::int64_t>(
                    static_cast<double>(bytes % rate_) * 1e9 / static_cast<double>(rate_)));
    next_ = std::max(next_, env_.steady_now()) +
            std::chrono::duration_cast<Env::SteadyTime::duration>(cost);
    while (!runner.stop_requested(offset)) {
      Env::SteadyTime now = env_.steady_now();
      if (now >= next_) return;
      env_.sleep_for(std::min<std::chrono::nanoseconds>(next_ - now, kMaxSleepSlice));
    }
  }

 private:
  const uint64_t rate_;
  Env& env_;
  std::mutex mu_;
  Env::SteadyTime next_;
};

}  // namespace dmscore::detail::copy_impl
