#include "workflows/volume_copy.hpp"

#include "base/util.hpp"
#include "copy/copy_options.hpp"
#include "dmscore/copy.hpp"

namespace dmscore::detail {

namespace {

// How a message names item `i`: "volume <i+1>" when there are several, nothing for one.
Status about(const Status& s, std::size_t i, std::size_t n) {
  return n > 1 ? s.with_prefix("volume " + std::to_string(i + 1)) : s;
}

}  // namespace

std::pair<std::size_t, std::uint64_t> parse_copy_checkpoint(const std::string& cp) {
  if (cp.empty()) return {0, 0};
  auto digits = [](std::string_view s) {
    return !s.empty() && s.size() <= 19 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  const auto colon = cp.find(':');
  if (colon == std::string::npos)  // "<offset>": a single-volume copy of an earlier release
    return {0, digits(cp) ? static_cast<std::uint64_t>(std::stoull(cp)) : 0};
  const std::string_view item(cp.data(), colon),
      offset(cp.data() + colon + 1, cp.size() - colon - 1);
  if (!digits(item) || !digits(offset)) return {0, 0};
  return {static_cast<std::size_t>(std::stoull(std::string(item))),
          static_cast<std::uint64_t>(std::stoull(std::string(offset)))};
}

// Makes every item's destination volume, held in Creating; `made(i, id)` records one
// durably. A resumed run adopts a held volume of the planned name it was creating.
Status VolumeCopy::create_targets(
    StepContext& c, std::vector<CopyItem>& items,
    const std::function<Status(std::size_t, const std::string&)>& made) const {
  for (std::size_t i = 0; i < items.size(); ++i) {
    CopyItem& it = items[i];
    if (c.should_stop()) return Status::Cancelled("stopped");
    c.report_progress({static_cast<int>(i * 5 / items.size()), "create", 0, 0, 0});
    if (it.dst_volume_id.empty()) {
      auto dst = deps_.backend(it.dst_cluster);
      if (!dst.ok()) return dst.status();
      const std::string mark = "creating" + std::to_string(i);
      std::string id;
      if (c.var(mark) == "1") {
        auto v = (*dst)->find_volume(it.dst_project, it.dst_name);
        // Its owner label proves this workflow made it: held in Creating, or Available on a
        // cluster whose volumes become Available by themselves (Lightbits).
        if (v.ok() && (v->state == VolumeState::kCreating || v->state == VolumeState::kAvailable) &&
            detail::made_by(v->labels, c.workflow_id()))
          id = v->id;
      }
      if (id.empty()) {
        c.set_var(mark, "1");
        if (Status s = c.save_checkpoint("create:" + std::to_string(i)); !s.ok()) return s;
        CreateVolumeRequest cv;
        cv.project_name = it.dst_project;
        cv.name = it.dst_name;
        cv.size = it.size;
        cv.replica_count = it.replica;
        cv.sector_size = it.sector_size;
        cv.compression = it.compression;
        cv.hold_in_creating = true;
        cv.labels[kOwnerLabel] = c.workflow_id();
        auto v = (*dst)->create_volume(cv);
        if (!v.ok())
          return items.size() > 1 ? v.status().with_prefix("volume " + std::to_string(i + 1) +
                                                           " (" + it.dst_name + ")")
                                  : v.status();
        id = v->id;
      }
      if (Status s = made(i, id); !s.ok()) return s;
      it.dst_volume_id = id;
    }
    if (Status s = c.add_resource("volume:" + it.dst_volume_id); !s.ok()) return s;
  }
  return Status::Ok();
}

// Deletes what create_targets made (the recorded ids, or a held volume of the planned name
// it was creating).
Status VolumeCopy::delete_targets(StepContext& c, const std::vector<CopyItem>& items) const {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const CopyItem& it = items[i];
    auto dst = deps_.backend(it.dst_cluster);
    if (!dst.ok()) {
      if (dst.status().is_not_found()) continue;
      return dst.status();
    }
    std::string id = it.dst_volume_id;
    if (id.empty()) {
      if (c.var("creating" + std::to_string(i)) != "1") continue;
      auto v = (*dst)->find_volume(it.dst_project, it.dst_name);
      if (!v.ok() || !detail::made_by(v->labels, c.workflow_id())) continue;
      id = v->id;
    }
    Status s = (*dst)->delete_volume(it.dst_project, id);
    if (!s.ok() && !s.is_not_found()) return s;
  }
  return Status::Ok();
}

DataAccess VolumeCopy::access(StepContext& c, const std::string& cluster) const {
  DataAccess a;
  a.owner = c.workflow_id();
  a.record = [&c, cluster](const std::string& resource) -> Status {
    const std::string line = cluster + "\t" + resource;
    std::string held = c.var("dataHeld");
    for (std::size_t at = 0; at < held.size();) {
      const auto end = std::min(held.find('\n', at), held.size());
      if (held.compare(at, end - at, line) == 0) return Status::Ok();
      at = end + 1;
    }
    c.set_var("dataHeld", held.empty() ? line : held + "\n" + line);
    return c.save_checkpoint(c.checkpoint());  // durable before the driver makes it
  };
  a.stop = [&c] { return c.should_stop(); };
  return a;
}

Status VolumeCopy::release_data(StepContext& c) const {
  const std::string held = c.var("dataHeld");
  if (held.empty()) return Status::Ok();
  Status first = Status::Ok();
  std::string kept;
  for (std::size_t at = 0; at < held.size();) {
    const auto end = std::min(held.find('\n', at), held.size());
    const std::string line = held.substr(at, end - at);
    at = end + 1;
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    auto b = deps_.backend(line.substr(0, tab));
    Status s = b.ok() ? (*b)->release_data(line.substr(tab + 1))
                      : (b.status().is_not_found() ? Status::Ok() : b.status());
    if (!s.ok()) {
      kept += (kept.empty() ? "" : "\n") + line;
      if (first.ok()) first = s;
    }
  }
  c.set_var("dataHeld", kept);
  return first;
}

// Copies every item from the checkpoint on. `fresh_targets`: destinations were created by
// this workflow and read as zero until copied into.
Status VolumeCopy::copy(StepContext& c, const std::vector<CopyItem>& items, bool fresh_targets,
                        const char* stage, int from_pct, int to_pct) const {
  // What a run before a crash made to reach data goes first: it is made again as needed.
  if (c.resumed()) {
    if (Status s = release_data(c); !s.ok()) return s;
  }
  auto [first, start] = parse_copy_checkpoint(c.checkpoint());
  std::uint64_t total = 0, before = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    total += items[i].size;
    if (i < first) before += items[i].size;
  }
  Status result = Status::Ok();
  for (std::size_t i = first; i < items.size() && result.ok(); ++i) {
    const std::uint64_t from = i == first ? start : 0;
    if (i == first && from > 0) c.set_var("copyResumedFrom", std::to_string(from));
    if (i != first || from == 0) {
      if (Status s = c.save_checkpoint(std::to_string(i) + ":0"); !s.ok()) return s;
    }
    const bool fresh = fresh_targets && from == 0 && !(i == first && c.resumed());
    result = copy_item(c, items[i], i, items.size(), from, fresh, before, total, stage, from_pct,
                       to_pct);
    before += items[i].size;
  }
  // However the copy ended, nothing made to reach the data stays.
  Status released = release_data(c);
  if (!result.ok()) return result;
  if (!released.ok()) return released;
  return c.save_checkpoint(std::to_string(items.size()) + ":0");
}

// One item, from `from`. A data path that fails (UNAVAILABLE: a device gone, an I/O error, a
// cluster that stopped answering) is opened again and the copy resumes from the item's last
// checkpoint, up to copy_path_retries times, pausing through Env between attempts.
Status VolumeCopy::copy_item(StepContext& c, const CopyItem& it, std::size_t i, std::size_t n,
                             std::uint64_t from, bool fresh, std::uint64_t before,
                             std::uint64_t total, const char* stage, int from_pct,
                             int to_pct) const {
  auto src = deps_.backend(it.src_cluster);
  if (!src.ok()) return src.status();
  auto dst = deps_.backend(it.dst_cluster);
  if (!dst.ok()) return dst.status();
  const int retries = deps_.options->copy_path_retries;
  auto pause = std::chrono::milliseconds(500);
  for (int attempt = 0;; ++attempt) {
    Status s = [&]() -> Status {
      auto source = it.src_snapshot_id.empty()
                        ? (*src)->open_volume_data(it.src_project, it.src_volume_id,
                                                   access(c, it.src_cluster))
                        : (*src)->open_snapshot_data(it.src_project, it.src_snapshot_id,
                                                     access(c, it.src_cluster));
      if (!source.ok()) return about(source.status(), i, n);
      auto sink = (*dst)->open_volume_sink(it.dst_project, it.dst_volume_id, fresh,
                                           access(c, it.dst_cluster));
      if (!sink.ok()) return about(sink.status(), i, n);
      CopyOptions co = service_copy_options(*deps_.options, deps_.env, (*source)->size());
      BlockSink& out = **sink;
      const auto started = deps_.env->steady_now();
      auto last_checkpoint = started;
      std::uint64_t counted = 0;
      auto stats = CopyEngine(co).copy(
          **source, out, from, [&c] { return c.should_stop(); },
          [&](const CopyProgress& p) -> Status {
            if (deps_.copy_bytes) *deps_.copy_bytes += p.data_bytes_copied - counted;
            counted = p.data_bytes_copied;
            const std::uint64_t done = before + p.bytes_done;
            const int pct =
                from_pct + (total ? static_cast<int>(done * (to_pct - from_pct) / total) : 0);
            c.report_progress({pct, stage, done, total, p.bytes_per_second});
            auto now = deps_.env->steady_now();
            if (p.watermark < p.bytes_total &&
                now - last_checkpoint >= deps_.options->copy_checkpoint_interval) {
              last_checkpoint = now;
              // The data below the watermark must be durable before it is recorded.
              if (Status s = out.sync(); !s.ok()) return s;
              return c.save_checkpoint(std::to_string(i) + ":" + std::to_string(p.watermark));
            }
            return Status::Ok();
          });
      if (!stats.ok()) {
        if (stats.status().code() == Code::kCancelled) return stats.status();
        return about(stats.status(), i, n);
      }
      // Durable before the next item's checkpoint says this one is done.
      if (Status synced = out.sync(); !synced.ok()) return synced;
      // The item's rate as a user sees it: its bytes over the copy's time, the flush included.
      const auto took = std::chrono::duration<double>(deps_.env->steady_now() - started).count();
      const std::uint64_t moved = it.size - from;
      c.report_progress(
          {from_pct +
               (total ? static_cast<int>((before + it.size) * (to_pct - from_pct) / total) : 0),
           stage, before + it.size, total,
           took > 0 ? static_cast<std::uint64_t>(static_cast<double>(moved) / took) : moved});
      return Status::Ok();
    }();
    if (s.ok() || s.code() != Code::kUnavailable || attempt >= retries || c.should_stop()) return s;
    // Resume from what is known durable: this item's last checkpoint.
    auto [item, offset] = parse_copy_checkpoint(c.checkpoint());
    from = item == i ? offset : from;
    fresh = fresh && from == 0;
    c.set_var("copyRetries", std::to_string(attempt + 1));
    c.report_progress({from_pct, stage, before + from, total, 0});
    deps_.env->sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(8000));
  }
}

Status VolumeCopy::verify(StepContext& c, const std::vector<CopyItem>& items) const {
  if (c.resumed()) {
    if (Status s = release_data(c); !s.ok()) return s;
  }
  Status s = verify_items(c, items);
  Status released = release_data(c);
  return s.ok() ? released : s;
}

Status VolumeCopy::verify_items(StepContext& c, const std::vector<CopyItem>& items) const {
  std::uint64_t total = 0, before = 0;
  for (const auto& it : items) total += it.size;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const CopyItem& it = items[i];
    auto src = deps_.backend(it.src_cluster);
    if (!src.ok()) return src.status();
    auto dst = deps_.backend(it.dst_cluster);
    if (!dst.ok()) return dst.status();
    auto a =
        (*src)->open_snapshot_data(it.src_project, it.src_snapshot_id, access(c, it.src_cluster));
    if (!a.ok()) return a.status();
    auto b = (*dst)->open_volume_data(it.dst_project, it.dst_volume_id, access(c, it.dst_cluster));
    if (!b.ok()) return b.status();
    CopyOptions co = service_copy_options(*deps_.options, deps_.env, (*a)->size(), false);
    std::uint64_t counted = 0;
    Status s = CopyEngine(co).verify(
        **a, **b, [&c] { return c.should_stop(); },
        [&](const CopyProgress& p) -> Status {
          if (deps_.verify_bytes) *deps_.verify_bytes += p.bytes_done - counted;
          counted = p.bytes_done;
          const std::uint64_t done = before + p.bytes_done;
          c.report_progress({90 + (total ? static_cast<int>(done * 9 / total) : 9), "verify", done,
                             total, p.bytes_per_second});
          return Status::Ok();
        });
    if (s.code() == Code::kDataLoss)
      return Status::DataLoss(
          "verifyClone: " + (items.size() > 1 ? "volume " + std::to_string(i + 1) + ": " : "") +
          s.message());
    if (!s.ok()) return s;
    before += it.size;
  }
  return Status::Ok();
}

Status VolumeCopy::make_available(const std::vector<CopyItem>& items) const {
  for (const auto& it : items) {
    auto dst = deps_.backend(it.dst_cluster);
    if (!dst.ok()) return dst.status();
    if (Status s = (*dst)->mark_volume_available(it.dst_project, it.dst_volume_id); !s.ok())
      return s;
  }
  return Status::Ok();
}

}  // namespace dmscore::detail
