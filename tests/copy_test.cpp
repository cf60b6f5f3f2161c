#include "dmscore/copy.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_files.hpp"
#include "test_util.hpp"

namespace dmscore {
namespace {

using testing::allocated_bytes;
using testing::file_bytes;
using testing::FileSink;
using testing::FileSource;
using testing::make_hole_image;
using testing::make_sparse_image;
using testing::random_bytes;
using testing::TempDir;
using testing::write_file_at;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * 1024;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// An image in memory whose data extents are whatever the test says.
class MemorySource : public BlockSource {
 public:
  MemorySource(std::vector<unsigned char> bytes, std::vector<Extent> extents)
      : bytes_(std::move(bytes)), extents_(std::move(extents)) {}
  // A dense image: one extent over everything.
  explicit MemorySource(std::vector<unsigned char> bytes) : bytes_(std::move(bytes)) {
    extents_.push_back({0, bytes_.size()});
  }

  std::uint64_t size() const override { return bytes_.size(); }
  Result<std::vector<Extent>> data_extents(std::uint64_t from, std::uint64_t to) const override {
    std::vector<Extent> out;
    for (const Extent& e : extents_) {
      std::uint64_t b = std::max(e.offset, from);
      std::uint64_t f = std::min(e.offset + e.length, to);
      if (b < f) out.push_back({b, f - b});
    }
    return out;
  }
  Status read_at(std::uint64_t offset, void* buf, std::size_t len) const override {
    reads.fetch_add(1);
    if (on_read) on_read(offset);
    if (offset + len > bytes_.size()) return Status::OutOfRange("read past the end");
    std::memcpy(buf, bytes_.data() + offset, len);
    return Status::Ok();
  }

  const std::vector<unsigned char>& bytes() const { return bytes_; }

  mutable std::atomic<int> reads{0};
  std::function<void(std::uint64_t offset)> on_read;

 private:
  std::vector<unsigned char> bytes_;
  std::vector<Extent> extents_;
};

// A sink in memory that counts calls and can fail a given write.
class MemorySink : public BlockSink {
 public:
  explicit MemorySink(std::uint64_t size, bool known_zeroed = true)
      : bytes_(size), known_zeroed_(known_zeroed) {}

  std::uint64_t size() const override { return bytes_.size(); }
  Status write_at(std::uint64_t offset, const void* buf, std::size_t len) override {
    int n = writes.fetch_add(1) + 1;
    if (write_delay.count() > 0) std::this_thread::sleep_for(write_delay);
    if (before_write) before_write(offset);
    if (n == fail_write) {
      writes_at_failure = writes.load();
      return Status::Unavailable("disk gone");
    }
    std::memcpy(bytes_.data() + offset, buf, len);
    std::lock_guard lock(mu_);
    written_.push_back({offset, len});
    return Status::Ok();
  }
  // True when completed writes cover [0, end).
  bool written_below(std::uint64_t end) const {
    std::lock_guard lock(mu_);
    std::vector<Extent> w = written_;
    std::sort(w.begin(), w.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
    std::uint64_t reached = 0;
    for (const Extent& e : w) {
      if (e.offset > reached) break;
      reached = std::max(reached, e.offset + e.length);
    }
    return reached >= end;
  }
  Status zero_range(std::uint64_t offset, std::uint64_t len) override {
    std::memset(bytes_.data() + offset, 0, len);
    return Status::Ok();
  }
  Status sync() override {
    syncs.fetch_add(1);
    return sync_status;
  }
  bool known_zeroed() const override { return known_zeroed_; }
  std::optional<int> os_fd() const override { return fake_fd; }

  const std::vector<unsigned char>& bytes() const { return bytes_; }

  std::atomic<int> writes{0};
  std::atomic<int> syncs{0};
  // 1-based index of the write that fails; 0 for none.
  int fail_write = 0;
  // How many writes had started when the failing one returned its error.
  std::atomic<int> writes_at_failure{-1};
  // Slows writes down so that several workers interleave.
  std::chrono::microseconds write_delay{0};
  Status sync_status;
  // A descriptor that is not this sink's storage, for the copy_file_range fallback.
  std::optional<int> fake_fd;
  std::function<void(std::uint64_t offset)> before_write;

 private:
  mutable std::mutex mu_;
  std::vector<Extent> written_;
  std::vector<unsigned char> bytes_;
  bool known_zeroed_;
};

CopyOptions small_options(int threads = 2, std::uint64_t chunk = 1 * kMiB) {
  CopyOptions o;
  o.threads = threads;
  o.chunk_bytes = chunk;
  return o;
}

void require_same_file(const std::string& a, const std::string& b) {
  std::vector<unsigned char> x = file_bytes(a);
  std::vector<unsigned char> y = file_bytes(b);
  REQUIRE(x.size() == y.size());
  REQUIRE(std::memcmp(x.data(), y.data(), x.size()) == 0);
}

TEST_CASE("CopyEngine: holes in the source stay holes in the destination") {
  const bool kernel_copy = GENERATE(true, false);
  CAPTURE(kernel_copy);
  TempDir dir;
  const std::uint64_t size = 64 * kMiB;
  auto extents = make_sparse_image(dir / "src", size, 12, 7);
  make_hole_image(dir / "dst", size);

  CopyOptions options = small_options(3, 4 * kMiB);
  options.use_copy_file_range = kernel_copy;
  CopyEngine engine(options);
  FileSource src(dir / "src", kernel_copy);
  FileSink dst(dir / "dst", /*known_zeroed=*/true, kernel_copy);
  auto stats = engine.copy(src, dst);
  REQUIRE(stats.ok());

  require_same_file(dir / "src", dir / "dst");
  CHECK(allocated_bytes(dir / "dst") <= allocated_bytes(dir / "src"));
  CHECK(stats->bytes_total == size);
  CHECK(stats->data_bytes_copied == 12 * kMiB);
  CHECK(stats->hole_bytes_skipped == size - 12 * kMiB);
  CHECK(stats->zero_bytes_skipped == 0);
  CHECK(stats->used_copy_file_range == kernel_copy);
  CHECK(dst.syncs == 1);
  CHECK(dst.zero_ranges == 0);  // a fresh sink needs no punching

  FileSource copied(dir / "dst");
  CHECK(engine.verify(src, copied).ok());
}

TEST_CASE("CopyEngine: a dense source of odd size is copied whole, last partial chunk included") {
  const bool kernel_copy = GENERATE(true, false);
  const bool skip_zero = GENERATE(true, false);
  CAPTURE(kernel_copy, skip_zero);
  TempDir dir;
  const std::uint64_t size = 5 * kMiB + 12345;
  auto data = random_bytes(size, 11);
  make_hole_image(dir / "src", size);
  write_file_at(dir / "src", 0, data.data(), data.size());
  make_hole_image(dir / "dst", size);

  CopyOptions options = small_options(3, 1 * kMiB);
  options.use_copy_file_range = kernel_copy;
  options.skip_zero_chunks = skip_zero;
  FileSource src(dir / "src");
  FileSink dst(dir / "dst", true);
  auto stats = CopyEngine(options).copy(src, dst);
  REQUIRE(stats.ok());
  require_same_file(dir / "src", dir / "dst");
  CHECK(stats->data_bytes_copied == size);
  CHECK(stats->used_copy_file_range == kernel_copy);
}

TEST_CASE("CopyEngine: a source that is all hole leaves a fresh destination unallocated") {
  TempDir dir;
  const std::uint64_t size = 32 * kMiB;
  make_hole_image(dir / "src", size);
  make_hole_image(dir / "dst", size);
  FileSource src(dir / "src");
  FileSink dst(dir / "dst", true);
  auto stats = CopyEngine(small_options()).copy(src, dst);
  REQUIRE(stats.ok());
  CHECK(allocated_bytes(dir / "dst") == 0);
  CHECK(dst.writes == 0);
  CHECK(stats->data_bytes_copied == 0);
  CHECK(stats->hole_bytes_skipped == size);
  CHECK(file_bytes(dir / "dst") == std::vector<unsigned char>(size, 0));
}

TEST_CASE("CopyEngine: written zeros in the source are not allocated in the destination") {
  const bool kernel_copy = GENERATE(true, false);
  CAPTURE(kernel_copy);
  TempDir dir;
  const std::uint64_t size = 8 * kMiB;
  make_hole_image(dir / "src", size);
  std::vector<unsigned char> zeros(4 * kMiB, 0);
  auto data = random_bytes(1 * kMiB, 3);
  write_file_at(dir / "src", 0, zeros.data(), zeros.size());
  write_file_at(dir / "src", 4 * kMiB, data.data(), data.size());
  REQUIRE(allocated_bytes(dir / "src") >= 5 * kMiB);
  make_hole_image(dir / "dst", size);

  CopyOptions options = small_options(2, 1 * kMiB);
  options.use_copy_file_range = kernel_copy;
  FileSource src(dir / "src");
  FileSink dst(dir / "dst", true);
  auto stats = CopyEngine(options).copy(src, dst);
  REQUIRE(stats.ok());
  require_same_file(dir / "src", dir / "dst");
  CHECK(allocated_bytes(dir / "dst") <= 1 * kMiB);
  CHECK(stats->zero_bytes_skipped == 4 * kMiB);
  CHECK(stats->data_bytes_copied == 1 * kMiB);
}

TEST_CASE("CopyEngine: a sink not known to be zero gets its zero chunks and holes punched") {
  TempDir dir;
  const std::uint64_t size = 8 * kMiB;
  make_hole_image(dir / "src", size);
  std::vector<unsigned char> zeros(2 * kMiB, 0);
  auto data = random_bytes(1 * kMiB, 4);
  write_file_at(dir / "src", 1 * kMiB, zeros.data(), zeros.size());
  write_file_at(dir / "src", 5 * kMiB, data.data(), data.size());
  // The destination starts full of garbage, as a reused volume would.
  make_hole_image(dir / "dst", size);
  auto garbage = random_bytes(size, 5);
  write_file_at(dir / "dst", 0, garbage.data(), garbage.size());

  FileSource src(dir / "src");
  FileSink dst(dir / "dst", /*known_zeroed=*/false);
  auto stats = CopyEngine(small_options(2, 1 * kMiB)).copy(src, dst);
  REQUIRE(stats.ok());
  require_same_file(dir / "src", dir / "dst");
  CHECK(allocated_bytes(dir / "dst") <= 1 * kMiB);
  CHECK(stats->zero_bytes_skipped == 2 * kMiB);
}

TEST_CASE("CopyEngine: a larger sink keeps its zero tail and verifies against the source") {
  TempDir dir;
  const std::uint64_t size = 16 * kMiB;
  make_sparse_image(dir / "src", size, 6, 21);
  make_hole_image(dir / "dst", 2 * size);
  FileSource src(dir / "src");
  FileSink dst(dir / "dst", true);
  CopyEngine engine(small_options());
  REQUIRE(engine.copy(src, dst).ok());

  std::vector<unsigned char> out = file_bytes(dir / "dst");
  std::vector<unsigned char> in = file_bytes(dir / "src");
  REQUIRE(out.size() == 2 * size);
  CHECK(std::memcmp(out.data(), in.data(), size) == 0);
  CHECK(std::all_of(out.begin() + static_cast<std::ptrdiff_t>(size), out.end(),
                    [](unsigned char c) { return c == 0; }));
  FileSource copied(dir / "dst");
  CHECK(engine.verify(src, copied).ok());
}

TEST_CASE("CopyEngine: a copy stopped midway resumes from its last watermark and ends identical") {
  const bool corrupt = GENERATE(false, true);
  CAPTURE(corrupt);
  TempDir dir;
  const std::uint64_t size = 32 * kMiB;
  auto extents = make_sparse_image(dir / "src", size, 20, 33);
  make_hole_image(dir / "dst", size);

  // One thread: a progress report always comes between two chunks, so the stop below is sure to
  // land mid-copy (with more threads the copy may legitimately finish before any report).
  CopyOptions options = small_options(1, 1 * kMiB);
  options.progress_every_bytes = 1 * kMiB;
  CopyEngine engine(options);
  FileSource src(dir / "src");

  std::uint64_t watermark = 0;
  {
    FileSink dst(dir / "dst", true);
    // Stops at the first chunk after a checkpoint, whenever that comes.
    std::atomic<std::uint64_t> checkpoint{0};
    auto stop = [&] { return checkpoint.load() > 0; };
    auto progress = [&](const CopyProgress& p) {
      checkpoint = p.watermark;
      return Status::Ok();
    };
    auto stats = engine.copy(src, dst, 0, stop, progress);
    REQUIRE(stats.status().code() == Code::kCancelled);
    watermark = checkpoint.load();
  }
  REQUIRE(watermark > 0);
  REQUIRE(watermark < size);
  REQUIRE(watermark % options.chunk_bytes == 0);

  // Everything below the reported watermark is already in the sink.
  std::vector<unsigned char> in = file_bytes(dir / "src");
  std::vector<unsigned char> out = file_bytes(dir / "dst");
  REQUIRE(std::memcmp(in.data(), out.data(), watermark) == 0);

  if (corrupt) {
    // Torn or stray writes above the watermark, over data and over holes alike.
    auto garbage = random_bytes(size - watermark, 99);
    write_file_at(dir / "dst", watermark, garbage.data(), garbage.size());
  }

  // A sink that was written before is not known to be zero.
  FileSink dst(dir / "dst", /*known_zeroed=*/false);
  std::uint64_t first_report = 0;
  std::uint64_t last_report = 0;
  auto progress = [&](const CopyProgress& p) {
    if (first_report == 0) first_report = p.watermark;
    last_report = p.watermark;
    return Status::Ok();
  };
  auto stats = engine.copy(src, dst, watermark, {}, progress);
  REQUIRE(stats.ok());
  require_same_file(dir / "src", dir / "dst");
  CHECK(first_report > watermark);
  CHECK(last_report == size);
  CHECK(stats->data_bytes_copied < 20 * kMiB);
  CHECK(stats->data_bytes_copied + stats->hole_bytes_skipped + stats->zero_bytes_skipped ==
        size - watermark);
  FileSource copied(dir / "dst");
  CHECK(engine.verify(src, copied).ok());
}

TEST_CASE("CopyEngine: stop cancels the copy within one chunk per thread") {
  const int threads = GENERATE(1, 4);
  CAPTURE(threads);
  const std::uint64_t chunk = 64 * kKiB;
  MemorySource src(random_bytes(64 * chunk, 8));
  MemorySink dst(src.size());
  std::atomic<int> writes_at_stop{-1};
  auto stop = [&] {
    int w = dst.writes.load();
    if (w < 8) return false;
    int expected = -1;
    writes_at_stop.compare_exchange_strong(expected, w);
    return true;
  };
  auto stats = CopyEngine(small_options(threads, chunk)).copy(src, dst, 0, stop);
  REQUIRE(stats.status().code() == Code::kCancelled);
  CHECK(stats.status().message() == "copy cancelled");
  REQUIRE(writes_at_stop >= 8);
  CHECK(dst.writes - writes_at_stop <= threads);
  CHECK(dst.syncs == 0);
}

TEST_CASE("CopyEngine: a rate limit sleeps on the env's clock for about bytes over rate") {
  auto env = std::make_shared<ManualEnv>();
  const std::uint64_t chunk = 1 * kMiB;
  // 8 MiB of data in a 64 MiB image: holes are not read, so they are not throttled.
  std::vector<unsigned char> bytes(64 * kMiB, 0);
  std::vector<Extent> extents;
  for (int i = 0; i < 8; ++i) {
    std::uint64_t off = static_cast<std::uint64_t>(i) * 8 * kMiB;
    auto data = random_bytes(chunk, static_cast<std::uint64_t>(i));
    std::memcpy(bytes.data() + off, data.data(), chunk);
    extents.push_back({off, chunk});
  }
  MemorySource src(std::move(bytes), extents);

  SECTION("limited") {
    MemorySink dst(src.size());
    CopyOptions options = small_options(4, chunk);
    options.env = env;
    options.rate_limit_bytes_per_sec = 2 * kMiB;
    auto before = env->steady_now();
    auto stats = CopyEngine(options).copy(src, dst);
    REQUIRE(stats.ok());
    double slept = std::chrono::duration<double>(env->steady_now() - before).count();
    CHECK(slept == Approx(4.0).margin(0.05));
    CHECK(stats->seconds == Approx(4.0).margin(0.05));
    CHECK(dst.bytes() == src.bytes());
  }
  SECTION("unlimited") {
    MemorySink dst(src.size());
    CopyOptions options = small_options(4, chunk);
    options.env = env;
    auto before = env->steady_now();
    REQUIRE(CopyEngine(options).copy(src, dst).ok());
    CHECK(env->steady_now() == before);
  }
}

TEST_CASE("CopyEngine: verify passes on identical images and names the lowest differing chunk") {
  TempDir dir;
  const std::uint64_t size = 32 * kMiB;
  auto extents = make_sparse_image(dir / "src", size, 10, 44);
  make_hole_image(dir / "dst", size);
  CopyEngine engine(small_options(4, 1 * kMiB));
  {
    FileSource src(dir / "src");
    FileSink dst(dir / "dst", true);
    REQUIRE(engine.copy(src, dst).ok());
  }
  FileSource src(dir / "src");
  {
    FileSource dst(dir / "dst");
    REQUIRE(engine.verify(src, dst).ok());
  }

  SECTION("a flipped byte in data") {
    // Two flips: the lower one must be named whichever worker finds which first.
    std::vector<unsigned char> out = file_bytes(dir / "dst");
    std::uint64_t low = extents[3].offset + 777;
    std::uint64_t high = extents[8].offset + 5;
    unsigned char a = static_cast<unsigned char>(out[low] ^ 0x01);
    unsigned char b = static_cast<unsigned char>(out[high] ^ 0x80);
    write_file_at(dir / "dst", low, &a, 1);
    write_file_at(dir / "dst", high, &b, 1);
    FileSource dst(dir / "dst");
    Status s = engine.verify(src, dst);
    CHECK(s.code() == Code::kDataLoss);
    CHECK(s.message() == "destination differs from source in chunk at offset " +
                             std::to_string(extents[3].offset));
  }
  SECTION("a stray byte where the source has a hole") {
    std::uint64_t hole = 0;
    while (std::any_of(extents.begin(), extents.end(),
                       [&](const Extent& e) { return e.offset == hole; })) {
      hole += kMiB;
    }
    unsigned char x = 0x42;
    write_file_at(dir / "dst", hole + 4096 * 3 + 1, &x, 1);
    FileSource dst(dir / "dst");
    Status s = engine.verify(src, dst);
    CHECK(s.code() == Code::kDataLoss);
    CHECK(contains(s.message(), "chunk at offset " + std::to_string(hole)));
  }
}

TEST_CASE("CopyEngine: verify finds non-zero bytes in the tail of a larger destination") {
  TempDir dir;
  const std::uint64_t size = 8 * kMiB + 100;
  make_sparse_image(dir / "src", size, 3, 55);
  make_hole_image(dir / "dst", 3 * size);
  CopyEngine engine(small_options(2, 1 * kMiB));
  {
    FileSource src(dir / "src");
    FileSink dst(dir / "dst", true);
    REQUIRE(engine.copy(src, dst).ok());
  }
  FileSource src(dir / "src");
  {
    FileSource dst(dir / "dst");
    REQUIRE(engine.verify(src, dst).ok());
  }
  SECTION("just past the source's end, inside its last chunk") {
    unsigned char x = 1;
    write_file_at(dir / "dst", size + 3, &x, 1);
    FileSource dst(dir / "dst");
    Status s = engine.verify(src, dst);
    CHECK(s.code() == Code::kDataLoss);
    CHECK(contains(s.message(), "chunk at offset " + std::to_string(8 * kMiB)));
  }
  SECTION("far into the tail") {
    unsigned char x = 1;
    write_file_at(dir / "dst", 2 * size, &x, 1);
    FileSource dst(dir / "dst");
    Status s = engine.verify(src, dst);
    CHECK(s.code() == Code::kDataLoss);
    CHECK(contains(s.message(), "chunk at offset " + std::to_string(2 * size / kMiB * kMiB)));
  }
  SECTION("a destination smaller than the source") {
    make_hole_image(dir / "small", size - 1);
    FileSource dst(dir / "small");
    CHECK(engine.verify(src, dst).code() == Code::kDataLoss);
  }
}

TEST_CASE("CopyEngine: verify reads only chunks where either side has data") {
  const std::uint64_t chunk = 64 * kKiB;
  std::vector<unsigned char> bytes(64 * chunk, 0);
  std::memset(bytes.data() + 10 * chunk, 7, chunk);
  MemorySource src(bytes, {{10 * chunk, chunk}});
  // The destination says it has data in one more chunk, which reads as zero.
  MemorySource dst(bytes, {{10 * chunk, chunk}, {40 * chunk + 5, 10}});
  CHECK(CopyEngine(small_options(3, chunk)).verify(src, dst).ok());
  CHECK(src.reads == 1);
  CHECK(dst.reads == 2);
}

TEST_CASE("CopyEngine: an I/O error from the sink is returned with its offset and stops the copy") {
  const std::uint64_t chunk = 64 * kKiB;
  MemorySource src(random_bytes(32 * chunk, 9));

  SECTION("one thread") {
    MemorySink dst(src.size());
    dst.fail_write = 3;
    auto stats = CopyEngine(small_options(1, chunk)).copy(src, dst);
    CHECK(stats.status().code() == Code::kUnavailable);
    CHECK(stats.status().message() == "write at " + std::to_string(2 * chunk) + ": disk gone");
    CHECK(dst.writes == 3);
    CHECK(dst.syncs == 0);
  }
  SECTION("four threads") {
    MemorySink dst(src.size());
    dst.fail_write = 3;
    // Writes that take a while, as a disk's do, so that "stops" means within the chunks already
    // in flight rather than racing a memcpy.
    dst.write_delay = std::chrono::milliseconds(2);
    auto stats = CopyEngine(small_options(4, chunk)).copy(src, dst);
    CHECK(stats.status().code() == Code::kUnavailable);
    CHECK(contains(stats.status().message(), ": disk gone"));
    // Once the failing write has returned, each of the other three threads may still have one
    // write that it began before it saw the failure, and none starts another. (How many they
    // write while the failing write sleeps depends on the scheduler, so that is not counted.)
    // An engine that did not stop would write all 32 chunks.
    REQUIRE(dst.writes_at_failure >= 3);
    CHECK(dst.writes - dst.writes_at_failure <= 3);
    CHECK(dst.writes < 32);
    CHECK(dst.syncs == 0);
  }
  SECTION("a failing sync") {
    MemorySink dst(src.size());
    dst.sync_status = Status::Unavailable("fsync failed");
    int reports = 0;
    auto progress = [&](const CopyProgress& p) {
      if (p.watermark == src.size()) ++reports;
      return Status::Ok();
    };
    auto stats = CopyEngine(small_options(2, chunk)).copy(src, dst, 0, {}, progress);
    CHECK(stats.status().code() == Code::kUnavailable);
    CHECK(contains(stats.status().message(), "fsync failed"));
    CHECK(reports == 0);  // the end is only reported once durable
  }
}

TEST_CASE("CopyEngine: copy_file_range that cannot be used falls back to read and write") {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  TempDir dir;
  const std::uint64_t size = 4 * kMiB + 4096;
  auto data = random_bytes(size, 12);
  make_hole_image(dir / "src", size);
  write_file_at(dir / "src", 0, data.data(), data.size());
  FileSource src(dir / "src");
  MemorySink dst(size);
  // copy_file_range into a pipe fails with EINVAL; the bytes must still arrive via write_at.
  dst.fake_fd = pipe_fds[1];
  CopyOptions options = small_options(2, 1 * kMiB);
  options.skip_zero_chunks = GENERATE(true, false);
  auto stats = CopyEngine(options).copy(src, dst);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  REQUIRE(stats.ok());
  CHECK_FALSE(stats->used_copy_file_range);
  CHECK(dst.bytes() == data);
}

TEST_CASE("CopyEngine: bad options and bad sizes are rejected naming the field") {
  auto field_error = [](const Status& s, const std::string& field) {
    return s.code() == Code::kInvalidArgument && s.message().rfind(field + ":", 0) == 0;
  };
  CopyOptions o;
  CHECK(validate(o).ok());
  o.threads = 0;
  CHECK(field_error(validate(o), "threads"));
  o.threads = 65;
  CHECK(field_error(validate(o), "threads"));
  o.threads = 64;
  CHECK(validate(o).ok());
  o.chunk_bytes = 32 * kKiB;
  CHECK(field_error(validate(o), "chunk_bytes"));
  o.chunk_bytes = 64 * kKiB + 512;
  CHECK(field_error(validate(o), "chunk_bytes"));
  o.chunk_bytes = 512 * kMiB;
  CHECK(field_error(validate(o), "chunk_bytes"));
  o.chunk_bytes = 256 * kMiB;
  CHECK(validate(o).ok());

  MemorySource src(random_bytes(1 * kMiB + 5000, 1));
  CopyOptions bad;
  bad.threads = 0;
  MemorySink sink(src.size());
  CHECK(field_error(CopyEngine(bad).copy(src, sink).status(), "threads"));
  CHECK(field_error(CopyEngine(bad).verify(src, src), "threads"));

  CopyEngine engine(small_options());
  MemorySink small(src.size() - 1);
  CHECK(field_error(engine.copy(src, small).status(), "sink"));
  CHECK(field_error(engine.copy(src, sink, src.size() + 4096).status(), "start"));
  CHECK(field_error(engine.copy(src, sink, 1000).status(), "start"));
  CHECK(sink.writes == 0);
  // The end of the source is a valid watermark even when it is not block-aligned.
  auto at_end = engine.copy(src, sink, src.size());
  REQUIRE(at_end.ok());
  CHECK(at_end->data_bytes_copied == 0);
}

TEST_CASE("CopyEngine: progress reports a monotonic watermark and ends at the source size") {
  const std::uint64_t chunk = 64 * kKiB;
  const std::uint64_t size = 200 * chunk + 1000;
  std::vector<unsigned char> bytes = random_bytes(size, 77);
  // A hole in the middle, then data to the end.
  std::memset(bytes.data() + 50 * chunk, 0, 30 * chunk);
  MemorySource src(bytes, {{0, 50 * chunk}, {80 * chunk, size - 80 * chunk}});
  const int threads = GENERATE(1, 4);
  CAPTURE(threads);
  MemorySink dst(size);
  dst.write_delay = std::chrono::microseconds(threads > 1 ? 300 : 0);
  CopyOptions options = small_options(threads, chunk);
  options.progress_every_bytes = 8 * chunk;

  std::mutex mu;
  std::vector<CopyProgress> reports;
  std::vector<int> syncs_seen;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  auto progress = [&](const CopyProgress& p) {
    if (inside.fetch_add(1) != 0) overlapped = true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    {
      std::lock_guard lock(mu);
      reports.push_back(p);
      syncs_seen.push_back(dst.syncs.load());
    }
    inside.fetch_sub(1);
    return Status::Ok();
  };
  auto stats = CopyEngine(options).copy(src, dst, 0, {}, progress);
  REQUIRE(stats.ok());
  CHECK(dst.bytes() == bytes);
  CHECK_FALSE(overlapped);
  // Chunks finish out of order on several threads, so only one thread guarantees a count.
  REQUIRE(reports.size() >= (threads == 1 ? 10u : 1u));
  for (std::size_t i = 0; i < reports.size(); ++i) {
    CAPTURE(i);
    CHECK(reports[i].bytes_total == size);
    CHECK(reports[i].bytes_done == reports[i].watermark);
    CHECK(reports[i].data_bytes_copied <= size - 30 * chunk);
    if (i > 0) {
      CHECK(reports[i].watermark > reports[i - 1].watermark);
      if (i + 1 < reports.size()) {
        CHECK(reports[i].watermark - reports[i - 1].watermark >= options.progress_every_bytes);
      }
    }
    // Only the final report comes after the sink is durable.
    CHECK(syncs_seen[i] == (i + 1 == reports.size() ? 1 : 0));
  }
  CHECK(reports.back().watermark == size);
  CHECK(reports.back().data_bytes_copied == size - 30 * chunk);
  if (threads == 1) {
    // The hole counts as done as soon as the chunk before it is.
    CHECK(std::any_of(reports.begin(), reports.end(),
                      [&](const CopyProgress& p) { return p.watermark == 80 * chunk; }));
  }
  CHECK(std::count_if(reports.begin(), reports.end(),
                      [&](const CopyProgress& p) { return p.watermark == size; }) == 1);
}

TEST_CASE("CopyEngine: the watermark never passes a chunk that is still being written") {
  const std::uint64_t chunk = 64 * kKiB;
  MemorySource src(random_bytes(32 * chunk, 15));
  MemorySink dst(src.size());
  // Chunk 2 is held back until later chunks are written, so chunks finish out of order.
  dst.before_write = [&](std::uint64_t offset) {
    if (offset != 2 * chunk) return;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (dst.writes < 12 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  CopyOptions options = small_options(4, chunk);
  options.progress_every_bytes = 0;
  std::vector<std::uint64_t> marks;
  bool all_written = true;
  auto progress = [&](const CopyProgress& p) {
    marks.push_back(p.watermark);
    if (!dst.written_below(p.watermark)) all_written = false;
    return Status::Ok();
  };
  REQUIRE(CopyEngine(options).copy(src, dst, 0, {}, progress).ok());
  CHECK(all_written);
  CHECK(dst.bytes() == src.bytes());
  REQUIRE(marks.size() >= 2);
  CHECK(marks.back() == src.size());
}

TEST_CASE(
    "CopyEngine: verify names the lowest differing chunk even when a later one is found first") {
  const std::uint64_t chunk = 64 * kKiB;
  std::vector<unsigned char> bytes = random_bytes(16 * chunk, 16);
  MemorySource src(bytes);
  bytes[3 * chunk + 10] ^= 1;
  bytes[5 * chunk + 20] ^= 1;
  MemorySource dst(bytes);
  dst.on_read = [&](std::uint64_t offset) {
    if (offset == 3 * chunk) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  };
  Status s = CopyEngine(small_options(4, chunk)).verify(src, dst);
  CHECK(s.to_string() == "DATA_LOSS: destination differs from source in chunk at offset " +
                             std::to_string(3 * chunk));
}

TEST_CASE("CopyEngine: a failing progress callback stops the copy with its status") {
  const std::uint64_t chunk = 64 * kKiB;
  MemorySource src(random_bytes(64 * chunk, 5));
  MemorySink dst(src.size());
  // One thread, so the first checkpoint is due after exactly four chunks.
  CopyOptions options = small_options(1, chunk);
  options.progress_every_bytes = 4 * chunk;
  int calls = 0;
  auto progress = [&](const CopyProgress&) {
    ++calls;
    return Status::Aborted("checkpoint failed");
  };
  auto stats = CopyEngine(options).copy(src, dst, 0, {}, progress);
  CHECK(stats.status().to_string() == "ABORTED: checkpoint failed");
  CHECK(calls == 1);
  CHECK(dst.writes == 4);
  CHECK(dst.syncs == 0);
}

TEST_CASE("CopyEngine: exceptions from callbacks come back as INTERNAL") {
  MemorySource src(random_bytes(4 * 64 * kKiB, 6));
  MemorySink dst(src.size());
  auto stop = []() -> bool { throw std::runtime_error("boom"); };
  auto stats = CopyEngine(small_options(2, 64 * kKiB)).copy(src, dst, 0, stop);
  CHECK(stats.status().code() == Code::kInternal);
  CHECK(contains(stats.status().message(), "boom"));
}

TEST_CASE("CopyEngine: verify can be cancelled") {
  const std::uint64_t chunk = 64 * kKiB;
  MemorySource src(random_bytes(64 * chunk, 10));
  int asked = 0;
  Status s = CopyEngine(small_options(2, chunk)).verify(src, src, [&] { return ++asked > 3; });
  CHECK(s.to_string() == "CANCELLED: verify cancelled");
  CHECK(src.reads < 2 * 64);
}

}  // namespace
}  // namespace dmscore
