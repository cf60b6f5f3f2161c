// Migrations: starting and steering a source's migration, and the agent's side of it (its
// commands and the data stream of its disks) (migrations.hpp, migration_impl.hpp).
#define XXH_INLINE_ALL
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstring>
#include <set>

#include "catalog/migration_catalog.hpp"
#include "catalog/rows.hpp"
#include "catalog/source_catalog.hpp"
#include "engine/engine_txn.hpp"
#include "migrations/migration_impl.hpp"
#include "service/service_impl.hpp"

namespace dmscore {

namespace json = boost::json;
using detail::MigrationCatalog;
using detail::SourceCatalog;

std::string chunk_checksum(std::string_view data) {
  const XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  std::string out(detail::kChecksumBytes, '\0');
  for (int i = 0; i < 8; ++i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(h.high64 >> (56 - 8 * i));
    out[static_cast<std::size_t>(8 + i)] = static_cast<char>(h.low64 >> (56 - 8 * i));
  }
  return out;
}

namespace {

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

std::uint64_t get_le(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

std::string chunk_header(std::uint64_t offset, std::uint32_t length, std::uint32_t flags,
                         std::string_view checksum) {
  std::string h = "DMSC";
  put_le(h, flags, 4);
  put_le(h, offset, 8);
  put_le(h, length, 4);
  put_le(h, 0, 4);
  h.append(checksum.substr(0, detail::kChecksumBytes));
  h.resize(kChunkHeaderBytes, '\0');
  return h;
}

namespace detail {

std::string sums_dir(const std::string& data_dir, const std::string& migration_id) {
  return data_dir + "/migrations/" + migration_id;
}

std::string sums_path(const std::string& data_dir, const std::string& migration_id,
                      std::size_t disk) {
  return sums_dir(data_dir, migration_id) + "/" + std::to_string(disk) + ".sums";
}

Status set_source_stage(ServiceImpl& im, Txn& t, const std::string& source_id,
                        const std::string& state, const std::string& cycle) {
  auto r = SourceCatalog::by_id(t, source_id);
  if (!r.ok()) return r.status();
  if (!*r) return Status::NotFound("source " + source_id + " not found");
  SourceCatalog::Stored st = **r;
  const std::int64_t now = im.now_ms();
  if (!state.empty() && st.state != state) {
    st.state = state;
    st.state_action_time = now;
  }
  if (!cycle.empty() && st.migration_cycle != cycle) {
    st.migration_cycle = cycle;
    st.stage_action_time = now;
  }
  return SourceCatalog::update(t, st);
}

}  // namespace detail

namespace {

constexpr std::uint64_t kChunkBytes = 1u << 20;
// Unacknowledged payload a disk's stream may have (what a crash may cost), and the payload of
// one request.
constexpr std::uint64_t kWindowBytes = 32u << 20;
constexpr std::uint64_t kBatchBytes = 8u << 20;
const std::string kZeroSum(detail::kChecksumBytes, '\0');
const std::string kUnknownSum(detail::kChecksumBytes, '\xff');

// Object names on a cluster: [A-Za-z0-9._-], the rest becomes '-'.
std::string object_name(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
    out.push_back(ok ? ch : '-');
  }
  return out;
}

// Streaming goes on in these stages, unless stopped or in error.
bool streaming_stage(const std::string& stage) {
  return stage == "replicating" || stage == "syncing" || stage == "cutovering";
}

bool ended(const SourceMigration& m) { return m.finished; }

bool pass_done(const SourceMigration& m) {
  for (const auto& d : m.disks)
    if (d.pass != m.pass || d.acked < d.size) return false;
  return true;
}

// Fills the pace of the current pass.
void add_pace(SourceMigration& m, std::int64_t now_ms) {
  std::uint64_t sent = 0, left = 0;
  for (const auto& d : m.disks) {
    sent += d.pass_bytes;
    left += d.size - std::min(d.acked, d.size);
  }
  const std::int64_t ms = now_ms - m.pass_started;
  if (ms > 0 && m.replicate_size > 0) {
    m.migrate_speed = sent * 1000 / static_cast<std::uint64_t>(ms);
    const std::uint64_t offset_rate = m.replicate_size * 1000 / static_cast<std::uint64_t>(ms);
    if (offset_rate > 0) m.remain_seconds = static_cast<std::int64_t>(left / offset_rate);
  }
  if (left == 0) m.remain_seconds = 0;
}

Status read_full(int fd, char* buf, std::size_t len, std::uint64_t off, const std::string& what) {
  while (len > 0) {
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return detail::errno_status(what);
    if (n == 0) return Status::DataLoss(what + ": shorter than expected");
    buf += n;
    len -= static_cast<std::size_t>(n);
    off += static_cast<std::uint64_t>(n);
  }
  return Status::Ok();
}

Status write_full(int fd, const char* buf, std::size_t len, std::uint64_t off,
                  const std::string& what) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, buf, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return detail::errno_status(what);
    buf += n;
    len -= static_cast<std::size_t>(n);
    off += static_cast<std::uint64_t>(n);
  }
  return Status::Ok();
}

Status datasync(int fd, const std::string& what) {
  if (::fdatasync(fd) != 0) return detail::errno_status(what);
  return Status::Ok();
}

// One parsed chunk of a window.
struct Frame {
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
  bool zero = false;
  std::string_view payload;
  std::string_view sum;
};

// Parses and checks every frame before anything is written.
Result<std::vector<Frame>> parse_frames(std::string_view body, std::uint64_t from, std::uint64_t to,
                                        std::uint64_t size, std::uint64_t chunk,
                                        std::uint64_t window) {
  std::vector<Frame> frames;
  std::uint64_t payload = 0;
  std::size_t pos = 0;
  std::uint64_t next = from;
  while (pos < body.size()) {
    const std::string where = "frames[" + std::to_string(frames.size()) + "]";
    if (body.size() - pos < kChunkHeaderBytes)
      return Status::InvalidArgument(where + ": truncated header");
    const char* h = body.data() + pos;
    if (std::memcmp(h, "DMSC", 4) != 0) return Status::InvalidArgument(where + ": bad magic");
    Frame f;
    const std::uint64_t flags = get_le(h + 4, 4);
    f.offset = get_le(h + 8, 8);
    f.length = static_cast<std::uint32_t>(get_le(h + 16, 4));
    f.sum = std::string_view(h + 24, detail::kChecksumBytes);
    if ((flags & ~std::uint64_t{kChunkZero}) != 0 || get_le(h + 20, 4) != 0)
      return Status::InvalidArgument(where + ": unknown flags");
    f.zero = (flags & kChunkZero) != 0;
    if (f.offset % chunk != 0)
      return Status::InvalidArgument(where + ".offset: " + std::to_string(f.offset) +
                                     " is not a multiple of the chunk size " +
                                     std::to_string(chunk));
    if (f.offset < next || f.offset >= to)
      return Status::InvalidArgument(where + ".offset: " + std::to_string(f.offset) +
                                     " is outside the window or not ascending");
    if (f.length != std::min(chunk, size - f.offset))
      return Status::InvalidArgument(where + ".length: must be " +
                                     std::to_string(std::min(chunk, size - f.offset)));
    pos += kChunkHeaderBytes;
    if (f.zero) {
      if (f.sum != kZeroSum && f.sum != chunk_checksum(std::string(f.length, '\0')))
        return Status::InvalidArgument(where + ".checksum: does not match a zero chunk");
    } else {
      if (body.size() - pos < f.length)
        return Status::InvalidArgument(where + ": truncated payload");
      f.payload = body.substr(pos, f.length);
      pos += f.length;
      payload += f.length;
      if (payload > window)
        return Status::InvalidArgument("frames: more than " + std::to_string(window) +
                                       " payload bytes in one window");
      if (chunk_checksum(f.payload) != f.sum)
        return Status::InvalidArgument(where + ".checksum: does not match its payload (offset " +
                                       std::to_string(f.offset) + "): corrupted in transit");
    }
    next = f.offset + f.length;
    frames.push_back(f);
  }
  return frames;
}

}  // namespace

// ---- the operator's side ----

Result<std::string> Migrations::start(const MigrationRequest& req) {
  auto& im = *impl_;
  if (req.source_id.empty()) return Status::InvalidArgument("sourceId: required");
  if (req.cluster_id.empty()) return Status::InvalidArgument("clusterId: required");
  if (Status s = validate_object_name(req.project_name, "projectName"); !s.ok()) return s;
  std::set<std::string> asked(req.disks.begin(), req.disks.end());
  if (asked.size() != req.disks.size())
    return Status::InvalidArgument("disks: a disk is named twice");
  auto source = Sources(im).get(req.source_id);
  if (!source.ok()) return source.status();
  {
    std::shared_lock lock(im.registry_mu);
    auto b = im.backend(req.cluster_id);
    if (!b.ok()) return b.status();
  }
  SourceMigration m;
  m.source_id = req.source_id;
  m.cluster_id = req.cluster_id;
  m.project_name = req.project_name;
  m.syncing = req.syncing;
  m.state = "READY";
  m.stage = "checking";
  m.chunk_bytes = kChunkBytes;
  m.window_bytes = kWindowBytes;
  m.rate_limit_bytes_per_sec = req.rate_limit_bytes_per_sec;
  for (const auto& d : source->disks) {
    const bool chosen = asked.empty() ? d.need_migration : asked.count(d.name) > 0;
    if (!chosen) continue;
    asked.erase(d.name);
    if (d.size == 0)
      return Status::InvalidArgument("disks: disk " + d.name +
                                     " has size 0 and cannot be migrated");
    MigrationDisk md;
    md.name = d.name;
    md.size = d.size;
    m.disks.push_back(std::move(md));
  }
  if (!asked.empty())
    return Status::InvalidArgument("disks: source " + req.source_id + " has no disk " +
                                   *asked.begin());
  if (m.disks.empty()) return Status::InvalidArgument("disks: no disk of the source is to migrate");
  const std::string base = object_name(source->name.empty() ? source->id : source->name);
  const std::string request = json::serialize(json::object{{"sourceId", req.source_id}});
  auto ids = detail::EngineTxn::submit_all(
      *im.engine,
      {{detail::kMigrateSourceServer,
        request,
        {"source:" + req.source_id, "cluster:" + req.cluster_id}}},
      [&](Txn& t, const std::vector<std::string>& ids) -> Status {
        auto row = SourceCatalog::by_id(t, req.source_id);
        if (!row.ok()) return row.status();
        if (!*row) return Status::NotFound("source " + req.source_id + " not found");
        const std::string& state = (*row)->state;
        if (state == "unavailable")
          return Status::FailedPrecondition(
              "source " + req.source_id +
              " is unavailable: its environment check failed (see its checks)");
        if (state != "waiting" && state != "error" && state != "finished" && state != "stopped")
          return Status::FailedPrecondition("source " + req.source_id + " is " + state +
                                            ": a migration is under way");
        auto prev = MigrationCatalog::latest_of(t, req.source_id);
        if (!prev.ok()) return prev.status();
        if (*prev && !ended(**prev))
          return Status::FailedPrecondition("source " + req.source_id + " has migration " +
                                            (**prev).id + " under way");
        m.id = ids[0];
        const std::string tag = m.id.substr(0, 8);
        for (std::size_t i = 0; i < m.disks.size(); ++i)
          m.disks[i].volume_name =
              (base + "-" + object_name(m.disks[i].name) + "-" + tag).substr(0, 200);
        if (Status s = MigrationCatalog::insert(t, m, im.now_ms()); !s.ok()) return s;
        SourceCatalog::Stored st = **row;
        st.workflow_id = m.id;
        st.replicate_size = 0;
        if (Status s = SourceCatalog::update(t, st); !s.ok()) return s;
        return detail::set_source_stage(im, t, req.source_id, "initialize", "checking");
      });
  if (!ids.ok()) return ids.status();
  return ids->front();
}

namespace {

// The migration `find` reads, with its pace; NOT_FOUND saying `missing` when there is none.
Result<SourceMigration> read_migration(
    detail::ServiceImpl& im,
    const std::function<Result<std::optional<SourceMigration>>(Txn&)>& find,
    const std::string& missing) {
  auto m = detail::rows::read<std::optional<SourceMigration>>(*im.store, find);
  if (!m.ok()) return m.status();
  if (!*m) return Status::NotFound(missing);
  add_pace(**m, im.now_ms());
  return std::move(**m);
}

}  // namespace

Result<SourceMigration> Migrations::get(const std::string& id) const {
  return read_migration(
      *impl_, [&](Txn& t) { return MigrationCatalog::by_id(t, id); },
      "migration " + id.substr(0, 64) + " not found");
}

Result<SourceMigration> Migrations::of_source(const std::string& source_id) const {
  return read_migration(
      *impl_, [&](Txn& t) { return MigrationCatalog::latest_of(t, source_id); },
      "source " + source_id.substr(0, 64) + " has no migration");
}

namespace {

// Changes the source's running migration with `fn` in one transaction, then wakes its
// workflow.
Status steer(detail::ServiceImpl& im, const std::string& source_id,
             const std::function<Status(Txn&, SourceMigration&)>& fn) {
  std::string id;
  Status s = im.store->transact([&](Txn& t) -> Status {
    auto m = MigrationCatalog::latest_of(t, source_id);
    if (!m.ok()) return m.status();
    if (!*m || ended(**m))
      return Status::NotFound("source " + source_id.substr(0, 64) + " has no running migration");
    id = (*m)->id;
    if (Status f = fn(t, **m); !f.ok()) return f;
    return MigrationCatalog::update(t, **m);
  });
  if (s.ok()) im.engine->wake(id);
  return s;
}

}  // namespace

Status Migrations::sync(const std::string& source_id) {
  return steer(*impl_, source_id, [&](Txn&, SourceMigration& m) -> Status {
    if (!m.syncing)
      return Status::FailedPrecondition("the migration " + m.id +
                                        " was started without syncing: it cuts over by itself");
    if (m.cutover_requested)
      return Status::FailedPrecondition("the migration " + m.id + " is cutting over");
    if (m.stage != "syncing")
      return Status::FailedPrecondition("the migration " + m.id + " is " + m.stage +
                                        ": a sync follows the full replication");
    if (m.passes_wanted > m.pass || !pass_done(m))
      return Status::FailedPrecondition("a sync of migration " + m.id + " is under way");
    m.passes_wanted = m.pass + 1;
    return Status::Ok();
  });
}

Status Migrations::cutover(const std::string& source_id) {
  return steer(*impl_, source_id, [&](Txn&, SourceMigration& m) -> Status {
    if (m.cutover_requested)
      return Status::FailedPrecondition("the migration " + m.id + " is cutting over already");
    m.cutover_requested = true;
    return Status::Ok();
  });
}

Status Migrations::stop(const std::string& source_id) {
  auto& im = *impl_;
  std::string id;
  Status s = steer(im, source_id, [&](Txn& t, SourceMigration& m) -> Status {
    if (m.stopped) return Status::FailedPrecondition("the migration " + m.id + " is stopped");
    if (m.stage == "cutovered")
      return Status::FailedPrecondition("the migration " + m.id + " has cut over");
    m.stopped = true;
    m.state = "ABORT";
    id = m.id;
    return detail::set_source_stage(im, t, source_id, "stopped", "");
  });
  if (s.ok()) im.streams->stop(id);
  return s;
}

Status Migrations::resume(const std::string& source_id) {
  auto& im = *impl_;
  return steer(im, source_id, [&](Txn& t, SourceMigration& m) -> Status {
    if (!m.stopped && m.error.empty())
      return Status::FailedPrecondition("the migration " + m.id + " is " + m.state +
                                        ": only a stopped or failed one starts again");
    m.stopped = false;
    m.error.clear();
    m.state = m.stage == "replicating" || m.stage == "checking" || m.stage == "setting" ? "RUNNING"
                                                                                        : "SYNCING";
    const std::string state = m.stage == "syncing"       ? "syncing"
                              : m.stage == "cutovering"  ? "cutovering"
                              : m.stage == "replicating" ? "replicate"
                                                         : "initialize";
    return detail::set_source_stage(im, t, source_id, state, "");
  });
}

// ---- the agent's side ----

Result<AgentCommand> Migrations::poll(const std::string& source_id) {
  auto& im = *impl_;
  if (Status s = Sources(im).visit(source_id); !s.ok()) return s;
  AgentCommand c;
  auto m = of_source(source_id);
  if (!m.ok() && m.status().code() != Code::kNotFound) return m.status();
  if (!m.ok() || ended(*m) || m->state == "READY") {
    c.name = "TASK_NOT_STARTED";
    return c;
  }
  c.task_id = m->id;
  c.pass = m->pass;
  c.cutover = m->cutover_pass != 0 && m->pass == m->cutover_pass;
  if (m->stopped)
    c.name = "STOP";
  else if (!m->error.empty() || !streaming_stage(m->stage) || pass_done(*m))
    c.name = "SKIP";
  else
    c.name = m->pass == 0 ? "START" : "SYNC";
  return c;
}

Status Migrations::command_result(const std::string& source_id, const std::string& command_name,
                                  bool success, const std::string& detail) {
  static const std::set<std::string> kNames = {"START", "STOP",       "DELETE",      "SYNC",
                                               "SKIP",  "UPLOAD_LOG", "RSET_LOG_ACL"};
  if (!kNames.count(command_name))
    return Status::InvalidArgument(
        "command_name: must be START, STOP, DELETE, SYNC, SKIP, UPLOAD_LOG or RSET_LOG_ACL");
  auto& im = *impl_;
  if (Status s = Sources(im).visit(source_id); !s.ok()) return s;
  if (success) return Status::Ok();
  Status s = steer(im, source_id, [&](Txn& t, SourceMigration& m) -> Status {
    m.error = "the agent reports that " + command_name + " failed: " + detail.substr(0, 1024);
    m.state = "MIGRATE_FAIL";
    return detail::set_source_stage(im, t, source_id, "error", "");
  });
  // A result for a source whose migration has ended is acknowledged and changes nothing.
  return s.code() == Code::kNotFound ? Status::Ok() : s;
}

namespace {

struct DiskRef {
  SourceMigration m;
  std::size_t idx = 0;
};

Result<DiskRef> find_disk(Txn& t, const std::string& source_id, const std::string& migration_id,
                          const std::string& disk) {
  auto m = MigrationCatalog::by_id(t, migration_id);
  if (!m.ok()) return m.status();
  if (!*m || (*m)->source_id != source_id)
    return Status::NotFound("source " + source_id.substr(0, 64) + " has no migration " +
                            migration_id.substr(0, 64));
  for (std::size_t i = 0; i < (*m)->disks.size(); ++i)
    if ((*m)->disks[i].name == disk) return DiskRef{std::move(**m), i};
  return Status::NotFound("migration " + migration_id + " has no disk " + disk.substr(0, 64));
}

Status check_streaming(const SourceMigration& m) {
  if (ended(m)) return Status::FailedPrecondition("the migration " + m.id + " has ended");
  if (m.stopped) return Status::FailedPrecondition("the migration " + m.id + " is stopped");
  if (!m.error.empty())
    return Status::FailedPrecondition("the migration " + m.id + " is in error: " + m.error);
  if (!streaming_stage(m.stage))
    return Status::FailedPrecondition("the migration " + m.id + " is " + m.stage +
                                      ", not streaming");
  return Status::Ok();
}

}  // namespace

Result<DiskSession> Migrations::open_disk(const std::string& source_id,
                                          const std::string& migration_id,
                                          const std::string& disk) {
  auto& im = *impl_;
  auto ref = detail::rows::read<DiskRef>(
      *im.store, [&](Txn& t) { return find_disk(t, source_id, migration_id, disk); });
  if (!ref.ok()) return ref.status();
  if (Status s = check_streaming(ref->m); !s.ok()) return s;
  auto ds = im.streams->disk(migration_id, ref->idx);
  // A new session starts from what is durable: the last one's flusher is stopped first, so
  // that nothing it still held is acknowledged behind the new session's back.
  ds->stop();
  std::lock_guard lock(ds->mu);
  ds->stopping = false;
  ds->failed = Status::Ok();
  DiskSession out;
  Status s = im.store->transact([&](Txn& t) -> Status {
    auto r = find_disk(t, source_id, migration_id, disk);
    if (!r.ok()) return r.status();
    if (Status c = check_streaming(r->m); !c.ok()) return c;
    MigrationDisk d = r->m.disks[r->idx];
    d.sessions += 1;
    out.pass = d.pass;
    out.size = d.size;
    out.acked = d.acked;
    out.done = d.pass == r->m.pass && d.acked >= d.size;
    out.chunk_bytes = r->m.chunk_bytes;
    out.window_bytes = r->m.window_bytes;
    out.batch_bytes = kBatchBytes;
    out.rate_limit_bytes_per_sec = r->m.rate_limit_bytes_per_sec;
    return MigrationCatalog::update_disk(t, migration_id, r->idx, d);
  });
  if (!s.ok()) return s;
  out.session = detail::random_hex(*im.env, 16);
  ds->session = out.session;
  ds->pass = out.pass;
  ds->received = out.acked;
  ds->acked = out.acked;
  return out;
}

Result<std::string> Migrations::checksums(const std::string& source_id,
                                          const std::string& migration_id,
                                          const std::string& disk) const {
  auto& im = *impl_;
  auto ref = detail::rows::read<DiskRef>(
      *im.store, [&](Txn& t) { return find_disk(t, source_id, migration_id, disk); });
  if (!ref.ok()) return ref.status();
  const std::string path = detail::sums_path(im.options.data_dir, migration_id, ref->idx);
  const std::uint64_t bytes =
      detail::chunk_count(ref->m.disks[ref->idx].size, ref->m.chunk_bytes) * detail::kChecksumBytes;
  detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT)
      return Status::FailedPrecondition("the migration " + migration_id +
                                        " has not set up its volumes yet");
    return detail::errno_status("checksums of disk " + disk);
  }
  std::string out(bytes, '\0');
  if (Status s = read_full(fd.get(), out.data(), out.size(), 0, "checksums of disk " + disk);
      !s.ok())
    return s;
  return out;
}

namespace {

// The flusher of a disk's stream: makes what was received durable, in order (volume synced,
// checksums written and synced, acknowledged offset committed), until the stream stops.
void flush_loop(detail::ServiceImpl& im, const std::string& source_id,
                const std::string& migration_id, std::size_t idx,
                std::shared_ptr<detail::DiskStream> ds) {
  std::unique_lock lock(ds->mu);
  for (;;) {
    ds->cv.wait(lock, [&] { return ds->stopping || ds->received > ds->acked; });
    if (ds->stopping) return;
    const std::uint64_t upto = ds->received;
    auto pending = std::move(ds->pending);
    ds->pending.clear();
    const std::uint64_t bytes = ds->pending_bytes, resent = ds->pending_resent;
    ds->pending_bytes = ds->pending_resent = 0;
    BlockSink* sink = ds->sink.get();
    const int sfd = ds->sums.get();
    const std::int64_t pass = ds->pass;
    lock.unlock();
    Status s = sink ? sink->sync() : Status::Ok();
    for (std::size_t i = 0; s.ok() && i < pending.size(); ++i)
      s = write_full(sfd, pending[i].second.data(), pending[i].second.size(),
                     pending[i].first * detail::kChecksumBytes, "checksums");
    if (s.ok() && !pending.empty()) s = datasync(sfd, "checksums");
    bool done = false;
    if (s.ok())
      s = im.store->transact([&](Txn& t) -> Status {
        auto m = MigrationCatalog::by_id(t, migration_id);
        if (!m.ok()) return m.status();
        if (!*m || idx >= (*m)->disks.size())
          return Status::NotFound("migration " + migration_id + " is gone");
        MigrationDisk d = (*m)->disks[idx];
        if (d.pass != pass) return Status::Aborted("the pass moved on");
        const std::uint64_t before = d.acked;
        d.acked = upto;
        d.pass_bytes += bytes;
        d.total_bytes += bytes;
        d.resent_bytes += resent;
        done = upto == d.size;
        if (Status u = MigrationCatalog::update_disk(t, migration_id, idx, d); !u.ok()) return u;
        auto src = SourceCatalog::by_id(t, source_id);
        if (!src.ok()) return src.status();
        if (!*src) return Status::Ok();
        SourceCatalog::Stored st = **src;
        st.replicate_size = static_cast<std::int64_t>((*m)->replicate_size - before + upto);
        return SourceCatalog::update(t, st);
      });
    lock.lock();
    if (!s.ok()) {
      // The session is over: the agent opens another, from what is durable.
      ds->failed = s;
      ds->session.clear();
      ds->cv.notify_all();
      return;
    }
    ds->acked = upto;
    ds->cv.notify_all();
    if (done) im.engine->wake(migration_id);
  }
}

}  // namespace

Result<WindowAck> Migrations::write_window(const std::string& source_id,
                                           const std::string& migration_id, const std::string& disk,
                                           const std::string& session, std::uint64_t from,
                                           std::uint64_t to, std::string_view body) {
  auto& im = *impl_;
  auto ref = detail::rows::read<DiskRef>(
      *im.store, [&](Txn& t) { return find_disk(t, source_id, migration_id, disk); });
  if (!ref.ok()) return ref.status();
  const SourceMigration& m = ref->m;
  const MigrationDisk& d = m.disks[ref->idx];
  if (Status s = check_streaming(m); !s.ok()) return s;
  if (to <= from || to > d.size)
    return Status::InvalidArgument("to: must lie after from and within the disk's " +
                                   std::to_string(d.size) + " bytes");
  if (to % m.chunk_bytes != 0 && to != d.size)
    return Status::InvalidArgument("to: must be a multiple of the chunk size " +
                                   std::to_string(m.chunk_bytes) + " or the disk's end");
  auto frames = parse_frames(body, from, to, d.size, m.chunk_bytes, kBatchBytes);
  if (!frames.ok()) return frames.status();
  std::uint64_t payload = 0;
  for (const Frame& f : *frames) payload += f.zero ? 0 : f.length;

  auto ds = im.streams->disk(migration_id, ref->idx);
  std::unique_lock lock(ds->mu);
  auto current = [&]() -> Status {
    if (ds->stopping || session.empty() || session != ds->session)
      return Status::Aborted("session: not the disk's current session; open the disk again");
    if (!ds->failed.ok())
      return Status::Aborted("the stream failed (" + ds->failed.message() +
                             "); open the disk again");
    return Status::Ok();
  };
  if (Status s = current(); !s.ok()) return s;
  if (ds->pass != m.pass || d.pass != m.pass)
    return Status::Aborted("pass " + std::to_string(m.pass) + " has begun; open the disk again");
  if (from != ds->received)
    return Status::Aborted("from: the session has received up to " + std::to_string(ds->received) +
                           ", not " + std::to_string(from));
  // Flow control: no more than the window unacknowledged.
  ds->cv.wait(lock, [&] {
    return !current().ok() || ds->received - ds->acked + payload <= m.window_bytes ||
           ds->received == ds->acked;
  });
  if (Status s = current(); !s.ok()) return s;

  const std::string what = "checksums of disk " + disk;
  if (!frames->empty()) {
    if (!ds->sums.valid()) {
      const std::string sums = detail::sums_path(im.options.data_dir, migration_id, ref->idx);
      ds->sums = detail::Fd(::open(sums.c_str(), O_RDWR | O_CLOEXEC));
      if (!ds->sums.valid()) return detail::errno_status(what);
    }
    if (!ds->sink) {
      DataAccess access;
      access.owner = migration_id;
      // What a driver makes to reach the volume (an ACL entry, a connection) is recorded first,
      // so that the workflow's end, or its undo after a crash, removes it.
      access.record = [&im, &migration_id, cluster = m.cluster_id](const std::string& res) {
        return im.store->transact([&](Txn& t) {
          return MigrationCatalog::add_held(t, migration_id, cluster + "\t" + res);
        });
      };
      auto b = [&]() -> Result<std::shared_ptr<Backend>> {
        std::shared_lock rl(im.registry_mu);
        return im.backend(m.cluster_id);
      }();
      if (!b.ok()) return b.status();
      auto sink = (*b)->open_volume_sink(m.project_name, d.volume_id, m.pass == 0, access);
      if (!sink.ok()) return sink.status();
      ds->sink = std::move(sink).value();
    }
    const int sfd = ds->sums.get();
    // 1. Forget what the chunks held, durably, before touching them.
    std::uint64_t resent = 0;
    for (const Frame& f : *frames) {
      const std::uint64_t at = f.offset / m.chunk_bytes * detail::kChecksumBytes;
      char old[detail::kChecksumBytes];
      if (Status s = read_full(sfd, old, sizeof old, at, what); !s.ok()) return s;
      if (std::string_view(old, sizeof old) == kUnknownSum) resent += f.zero ? 0 : f.length;
      if (Status s = write_full(sfd, kUnknownSum.data(), kUnknownSum.size(), at, what); !s.ok())
        return s;
    }
    if (Status s = datasync(sfd, what); !s.ok()) return s;
    // 2. The data, into the volume; the flusher makes it durable.
    for (const Frame& f : *frames) {
      Status s = f.zero ? ds->sink->zero_range(f.offset, f.length)
                        : ds->sink->write_at(f.offset, f.payload.data(), f.payload.size());
      if (!s.ok()) {
        ds->failed = s;
        ds->session.clear();
        return s.with_prefix("volume " + d.volume_id);
      }
      ds->pending.emplace_back(f.offset / m.chunk_bytes, f.zero ? kZeroSum : std::string(f.sum));
    }
    ds->pending_bytes += payload;
    ds->pending_resent += resent;
  }
  ds->received = to;
  if (!ds->flusher.joinable())
    ds->flusher = std::thread(flush_loop, std::ref(im), source_id, migration_id, ref->idx, ds);
  ds->cv.notify_all();
  WindowAck ack;
  ack.received = to;
  ack.pass_done = to == d.size;
  // The pass's last batch answers once all of it is durable.
  if (ack.pass_done) {
    ds->cv.wait(lock, [&] { return !current().ok() || ds->acked == to; });
    if (Status s = current(); !s.ok()) return s;
  }
  ack.acked = ds->acked;
  ack.command = m.pass == 0 ? "START" : "SYNC";
  return ack;
}

}  // namespace dmscore
