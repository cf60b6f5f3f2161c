// The copy engine's data paths side by side on one image: pread/pwrite against
// copy_file_range, with the source cold (page cache dropped, as root) and warm, interleaved.
//
//   copy_variants IMAGE [--runs N] [--threads T] [--chunk-mib C]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dmscore/copy.hpp"
#include "copy/file_io.hpp"

using namespace dmscore;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s IMAGE [--runs N] [--threads T] [--chunk-mib C]\n", argv[0]);
    return 2;
  }
  std::string src_path = argv[1], dst_path = src_path + ".copy";
  int runs = 5, threads = 4, chunk_mib = 4;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--runs") runs = std::atoi(argv[i + 1]);
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    if (a == "--chunk-mib") chunk_mib = std::atoi(argv[i + 1]);
  }
  const bool can_drop = ::geteuid() == 0;
  struct Variant {
    const char* name;
    bool cfr;
    bool cold;
    std::vector<double> t;
  };
  std::vector<Variant> variants = {{"pread/pwrite, cold source", false, true, {}},
                                   {"copy_file_range, cold source", true, true, {}},
                                   {"pread/pwrite, warm source", false, false, {}},
                                   {"copy_file_range, warm source", true, false, {}}};
  for (int r = 0; r < runs; ++r) {
    for (auto& v : variants) {
      if (v.cold && !can_drop) continue;
      ::unlink(dst_path.c_str());
      std::system("sync");
      if (v.cold)
        std::system("echo 3 > /proc/sys/vm/drop_caches");
      else
        std::system(("cat " + src_path + " > /dev/null").c_str());
      auto src = detail::FileSource::open(src_path);
      if (!src.ok()) return 1;
      int fd = ::open(dst_path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || ::ftruncate(fd, static_cast<off_t>((*src)->size())) != 0) return 1;
      ::close(fd);
      auto sink = detail::FileSink::open(dst_path, true);
      CopyOptions o;
      o.threads = threads;
      o.chunk_bytes = static_cast<std::uint64_t>(chunk_mib) << 20;
      o.use_copy_file_range = v.cfr;
      auto t0 = Clock::now();
      auto stats = CopyEngine(o).copy(**src, **sink);  // ends with fsync
      if (!stats.ok()) return 1;
      v.t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  ::unlink(dst_path.c_str());
  std::printf("| data path | median s (of %d) | best s |\n|---|---|---|\n", runs);
  for (auto& v : variants) {
    if (v.t.empty()) continue;
    std::sort(v.t.begin(), v.t.end());
    std::printf("| %s | %.2f | %.2f |\n", v.name, v.t[v.t.size() / 2], v.t.front());
  }
  return 0;
}
