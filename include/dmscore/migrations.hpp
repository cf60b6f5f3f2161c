#pragma once
// Migrations: moving a source server's disks (sources.hpp) into volumes of an attached cluster,
// as SMS migrates its sources, handed out by Service::migrations(). Safe for concurrent use.
//
// start() submits a MIGRATE_SOURCE_SERVER workflow, which is also the source's current task:
//
//   checking ──► setting ──► replicating ──► syncing ──────────► cutovering ──► cutovered
//   the source   a volume     pass 0: the     (only with          the last pass, the
//   can go       per disk,    agent streams   `syncing`) pass n   agent's pre-cutover hook
//                held         every disk      on each sync()      first; volumes Available,
//                                                                 state `finished`
//
// The agent on the source streams each disk in passes. A pass runs from offset 0 to the disk's
// end in windows of chunks: each chunk carries its offset and checksum, and holes and all-zero
// chunks are not sent. The service writes a window into the destination volume through the
// cluster's backend, makes it durable, records the checksum of every chunk it holds, and only
// then acknowledges the window's end. The agent compares its chunks with those checksums, so a
// sync sends only what changed, and a pass interrupted (either side killed) resumes from the
// acknowledged offset. Sessions opened after an interruption first forget the checksums of the
// one window that may have been written without being acknowledged, so it is sent again.
//
// stop() pauses (the workflow keeps its volumes and stays RUNNING, the source `stopped`);
// resume() goes on where it stood. An agent that reports a failed command puts the source in
// `error` with its reason; resume() retries. Cancelling the workflow removes the volumes it
// made, and only those.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dmscore/result.hpp"
#include "dmscore/service_part.hpp"

namespace dmscore {

struct MigrationRequest {
  std::string source_id;
  std::string cluster_id;
  // Default: "default".
  std::string project_name = "default";
  // Names of the source's disks to migrate; empty: every disk whose need_migration is set.
  std::vector<std::string> disks;
  // Keep syncing after the full replication until cutover() (SMS's `syncing`); false: cut
  // over as soon as the replication is done.
  bool syncing = false;
  // Payload bytes per second the agent may send; 0: unlimited.
  std::uint64_t rate_limit_bytes_per_sec = 0;
};

struct MigrationDisk {
  std::string name;
  std::uint64_t size = 0;
  std::string volume_name;
  std::string volume_id;  // empty until made
  // The pass this disk is in (0: the full replication) and the offset acknowledged in it.
  std::int64_t pass = 0;
  std::uint64_t acked = 0;
  // Payload bytes written: in this pass, in every pass, and of them written again after an
  // interruption (the window that was not acknowledged).
  std::uint64_t pass_bytes = 0;
  std::uint64_t total_bytes = 0;
  std::uint64_t resent_bytes = 0;
  // Streaming sessions opened in this pass.
  std::int64_t sessions = 0;
};

struct SourceMigration {
  std::string id;  // the workflow's id
  std::string source_id;
  std::string cluster_id;
  std::string project_name;
  bool syncing = false;
  // SMS's task states: READY, RUNNING, SYNCING, MIGRATE_SUCCESS, MIGRATE_FAIL (the agent
  // failed, start() retries; or the workflow failed, `finished`), ABORT (stopped, or
  // cancelled and `finished`).
  std::string state;
  // The source's migration_cycle: checking, setting, replicating, syncing, cutovering,
  // cutovered.
  std::string stage;
  // The pass the agent is to stream, the passes asked for (sync()) and, once cutover() was
  // asked, the pass that cuts over (0 before).
  std::int64_t pass = 0;
  std::int64_t passes_wanted = 0;
  bool cutover_requested = false;
  std::int64_t cutover_pass = 0;
  bool stopped = false;
  // The workflow has ended (cut over, failed or cancelled): nothing changes any more.
  bool finished = false;
  // Why the source is in error (the agent's report, or the step that failed); empty otherwise.
  std::string error;
  std::uint64_t chunk_bytes = 0;
  std::uint64_t window_bytes = 0;
  std::uint64_t rate_limit_bytes_per_sec = 0;
  // Bytes of the disks, and of the current pass acknowledged; payload bytes per second over
  // the current pass, and the seconds it still needs at that pace (-1 when unknown).
  std::uint64_t total_size = 0;
  std::uint64_t replicate_size = 0;
  std::uint64_t migrate_speed = 0;
  std::int64_t remain_seconds = -1;
  // Epoch milliseconds.
  std::int64_t start_date = 0;
  std::int64_t pass_started = 0;
  std::vector<MigrationDisk> disks;
};

// What an agent is told to do (SMS's command channel): START (stream the full replication),
// SYNC (stream pass `pass`; `cutover`: the last one, after the pre-cutover hook), STOP, SKIP
// (nothing now), TASK_NOT_STARTED (no migration).
struct AgentCommand {
  std::string name;
  std::string task_id;
  std::int64_t pass = 0;
  bool cutover = false;
};

// A streaming session of one disk's pass.
struct DiskSession {
  std::string session;  // names the session in write_window
  std::int64_t pass = 0;
  std::uint64_t size = 0;
  std::uint64_t acked = 0;
  bool done = false;  // acked == size
  std::uint64_t chunk_bytes = 0;
  // Payload that may be unacknowledged (sent, not yet durable); payload of one request.
  std::uint64_t window_bytes = 0;
  std::uint64_t batch_bytes = 0;
  std::uint64_t rate_limit_bytes_per_sec = 0;
};

struct WindowAck {
  // Every byte below `received` is in the volume; below `acked` it is durable (the session
  // resumes there after an interruption).
  std::uint64_t received = 0;
  std::uint64_t acked = 0;
  // The pass's end was received and is durable.
  bool pass_done = false;
  // The agent's command now, so that it learns of a stop within a window.
  std::string command;
};

// The data stream's framing (little-endian): per chunk a 40-byte header
//   "DMSC" | u32 flags | u64 offset | u32 length | u32 0 | 16-byte XXH3-128 of the payload
// followed by `length` payload bytes, unless flags has kChunkZero (the chunk reads as zeros,
// no payload; its checksum is that of `length` zero bytes).
inline constexpr std::uint32_t kChunkZero = 1;
inline constexpr std::size_t kChunkHeaderBytes = 40;

// XXH3-128 of `data`, as 16 bytes (high half first, big-endian), the checksum of the framing.
std::string chunk_checksum(std::string_view data);
// The header of one chunk.
std::string chunk_header(std::uint64_t offset, std::uint32_t length, std::uint32_t flags,
                         std::string_view checksum);

class Migrations : public detail::ServicePart {
 public:
  using ServicePart::ServicePart;

  // Submits the migration of a source that is `waiting` (or `error`, or `finished` to migrate
  // again) into `cluster_id`. INVALID_ARGUMENT naming the field (an unknown disk, a disk of
  // size 0, a bad project name); NOT_FOUND for an unknown source or cluster;
  // FAILED_PRECONDITION when the source is `unavailable` or already migrating;
  // RESOURCE_EXHAUSTED at maxRunningWorkflows. Returns the workflow id.
  Result<std::string> start(const MigrationRequest& request);
  // NOT_FOUND.
  Result<SourceMigration> get(const std::string& id) const;
  // The source's latest migration. NOT_FOUND when it has none.
  Result<SourceMigration> of_source(const std::string& source_id) const;

  // Operator actions on the source's running migration. FAILED_PRECONDITION naming the state
  // when the action does not apply (sync before the replication ended, or without `syncing`;
  // stop when stopped, ...); NOT_FOUND when the source has no running migration.
  Status sync(const std::string& source_id);
  Status cutover(const std::string& source_id);
  Status stop(const std::string& source_id);
  Status resume(const std::string& source_id);

  // ---- the agent's side ----
  // The command for the source's agent (and a visit, as Sources::visit).
  Result<AgentCommand> poll(const std::string& source_id);
  // The agent's result of a command. `success` false puts the migration in error with the
  // agent's detail. INVALID_ARGUMENT for an unknown command name.
  Status command_result(const std::string& source_id, const std::string& command_name, bool success,
                        const std::string& detail);
  // Opens (or reopens) the stream of `disk` in the migration's current pass.
  // FAILED_PRECONDITION when the migration is not streaming (stopped, in error, ended).
  Result<DiskSession> open_disk(const std::string& source_id, const std::string& migration_id,
                                const std::string& disk);
  // The checksums of the disk's chunks the service holds: 16 bytes per chunk, all zero for a
  // chunk that reads as zeros, all 0xff for one it does not know.
  Result<std::string> checksums(const std::string& source_id, const std::string& migration_id,
                                const std::string& disk) const;
  // Writes the batch [from, to) of the session's pass: `frames` holds the chunks in it that
  // differ from the checksums (see the framing above; at most batch_bytes of payload); every
  // other chunk of the range is as the service holds it. Answers once the batch is in the
  // volume and at most window_bytes are unacknowledged; it becomes durable in the background
  // (the pass's last batch answers once durable). ABORTED when `from` is not where the
  // session's last batch ended or the session is not the disk's current one (reopen the disk:
  // it resumes at the acknowledged offset); INVALID_ARGUMENT naming what is wrong in the frames
  // (a checksum that does not match its payload included); nothing is written then.
  Result<WindowAck> write_window(const std::string& source_id, const std::string& migration_id,
                                 const std::string& disk, const std::string& session,
                                 std::uint64_t from, std::uint64_t to, std::string_view frames);
};

}  // namespace dmscore
