#pragma once
// Sources: the machines an agent reports for migration (Huawei Cloud SMS's "source servers"),
// handed out by Service::sources(). Safe for concurrent use.
//
// An agent on the machine reports what it is: the body of SMS's `POST /v3/sources`, with every
// field, nested object, bound and enumeration of that API (docs/design.md, "Source servers",
// lists what is accepted per field). Each report is checked against the schema, stored durably
// before it is acknowledged, and followed by an environment check whose items (`checks`) decide
// the source's `state`: `waiting` when it can be migrated, `unavailable` when it cannot. A
// report that names a known `id`, or else carries the first-network `mac` of a known source,
// updates that source instead of creating another.
//
// `state` and `migration_cycle` each keep the time of their last change; `connected` is true
// while the agent has reported or polled within Options::source_agent_timeout.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dmscore/result.hpp"
#include "dmscore/service_part.hpp"

namespace dmscore {

// One item of the environment check after a report.
struct SourceCheck {
  std::int64_t id = 0;
  std::string name;
  // "OK", "WARN" or "ERROR" (SMS's EnvironmentCheck.result).
  std::string result;
  // Empty when OK.
  std::string error_code;
  std::string message;
  // The fields or objects the message is about.
  std::vector<std::string> params;
};

// A disk of a source, as reported, with what the operator chose for its migration.
struct SourceDisk {
  std::string name;
  std::string device_use;
  std::string partition_style;
  std::uint64_t size = 0;
  std::uint64_t used_size = 0;
  bool os_disk = false;
  // Migrate this disk (default true), into a volume of `adjust_size` bytes when set (never
  // smaller than the disk).
  bool need_migration = true;
  std::optional<std::uint64_t> adjust_size;
};

struct SourceServer {
  std::string id;  // 32 lowercase hex digits
  std::string name;
  std::string hostname;
  std::string ip;
  std::string ipv6;
  std::string first_mac;
  std::string os_type;  // WINDOWS | LINUX
  std::string os_version;
  std::string firmware;
  std::string agent_version;
  std::string kernel_version;
  std::int64_t cpu_quantity = 0;
  std::int64_t memory = 0;  // as the agent reported it (the seed says MB)
  // SMS's lower-case states: unavailable, waiting, initialize, replicate, syncing, ...
  std::string state;
  // checking, setting, replicating, syncing, cutovering, cutovered (and SMS's drill stages).
  std::string migration_cycle;
  bool connected = false;
  std::string migproject_id;
  // Epoch milliseconds: registration, last change of `state`, of `migration_cycle`, and the
  // last report or poll of the agent.
  std::int64_t add_date = 0;
  std::int64_t state_action_time = 0;
  std::int64_t stage_action_time = 0;
  std::int64_t last_visit_time = 0;
  std::vector<SourceCheck> checks;
  std::vector<SourceDisk> disks;
  // Bytes of the disks to migrate, and of them already copied.
  std::uint64_t total_size = 0;
  std::uint64_t replicate_size = 0;
  // The migration workflow working on it, if any.
  std::string workflow_id;
  // The user that reported it last.
  std::string reported_by;
  // The last report in canonical form: the seed's schema with numbers as JSON numbers (sizes
  // given with units converted to bytes), unset fields left out.
  std::string report_json;
};

// Filters of a listing; unset ones match everything.
struct SourceQuery {
  std::optional<std::string> state;
  // Sources whose name contains it.
  std::optional<std::string> name;
  std::optional<std::string> id;
  // Matches the source's ip or ipv6.
  std::optional<std::string> ip;
  std::optional<std::string> migproject;
  std::optional<std::string> migration_cycle;
  std::optional<bool> connected;
  // Newest registration first. Either offset paging (SMS: `limit` 1..200, `offset`), or
  // token paging (the native API): `page_token` from the previous page's next_page_token.
  std::int64_t limit = 200;
  std::int64_t offset = 0;
  std::string page_token;
};

struct SourcePage {
  // Matches of the filters, ignoring paging.
  std::int64_t count = 0;
  std::vector<SourceServer> sources;
  // Token paging only: empty on the last page.
  std::string next_page_token;
};

// What to migrate of one disk or volume group (SMS's PutDisk / PutVolumeGroups), named by its
// `id`: the disk's or volume group's reported name; `children` its partitions or logical
// volumes the same way.
struct SourceVolumeChoice {
  std::string id;
  std::optional<bool> need_migration;
  std::optional<std::uint64_t> adjust_size;
  std::vector<SourceVolumeChoice> children;
};

struct SourceUpdate {
  std::optional<std::string> name;  // 1..64 characters
  std::optional<std::string> migproject_id;
  std::vector<SourceVolumeChoice> disks;
  std::vector<SourceVolumeChoice> volume_groups;
};

struct SourceReportResult {
  std::string id;
  bool created = false;
  std::string state;
};

// Sources per state (SMS's overview), every state of SMS's overview present.
struct SourceOverview {
  std::vector<std::pair<std::string, std::int64_t>> counts;
};

class Sources : public detail::ServicePart {
 public:
  using ServicePart::ServicePart;

  // Registers or updates the source `report_json` (SMS's register body) describes, reported by
  // user `reporter`. INVALID_ARGUMENT whose message starts with the field's path
  // ("disks[0].size: must be at most ..."), changing nothing. Acknowledged only once durable.
  Result<SourceReportResult> report(const std::string& report_json, const std::string& reporter);
  // The agent of source `id` polled: refreshes last_visit_time. NOT_FOUND.
  Status visit(const std::string& id);

  // INVALID_ARGUMENT naming the filter or paging field.
  Result<SourcePage> list(const SourceQuery& query) const;
  // NOT_FOUND.
  Result<SourceServer> get(const std::string& id) const;
  // INVALID_ARGUMENT naming the field (an unknown disk or volume group id, a size smaller than
  // the disk); NOT_FOUND.
  Result<SourceServer> update(const std::string& id, const SourceUpdate& update);
  // NOT_FOUND; FAILED_PRECONDITION while a migration runs (a state of replication, sync,
  // cutover or stopping).
  Status remove(const std::string& id);
  // All or nothing: NOT_FOUND or FAILED_PRECONDITION naming the first id refused, nothing
  // deleted then. INVALID_ARGUMENT for an empty list, more than 100 ids or a repeated id.
  Status remove_many(const std::vector<std::string>& ids);
  // SMS's changestate: `copystate` (unavailable, waiting, init, replicate, ...; either case)
  // and `migrationcycle` (checking, setting, ...). INVALID_ARGUMENT naming the field; NOT_FOUND.
  Status change_state(const std::string& id, const std::string& copystate,
                      const std::string& migrationcycle);
  Result<SourceOverview> overview() const;
};

// The states and migration cycles a source may be in (SMS's enumerations).
const std::vector<std::string>& source_states();
const std::vector<std::string>& source_migration_cycles();

}  // namespace dmscore
