#pragma once
// How the service's workflows set up the copy engine: one place for thick clones, group full
// copies and restores.

#include <algorithm>
#include <cstdint>
#include <memory>

#include "dmscore/copy.hpp"
#include "dmscore/options.hpp"

namespace dmscore::detail {

// The service's copy settings for an image of `size` bytes: threads, chunk size and (for
// copies, not for verification reads) the rate limit from `options`; progress about every 1% of
// the image, between 1 and 64 MiB.
inline CopyOptions service_copy_options(const Options& options, std::shared_ptr<Env> env,
                                        std::uint64_t size, bool rate_limited = true) {
  CopyOptions co;
  co.threads = options.copy_threads;
  co.chunk_bytes = options.copy_chunk_bytes;
  if (rate_limited) co.rate_limit_bytes_per_sec = options.copy_rate_limit_bytes_per_sec;
  co.progress_every_bytes = std::clamp<std::uint64_t>(size / 100, 1 << 20, 64 << 20);
  co.env = std::move(env);
  return co;
}

}  // namespace dmscore::detail
