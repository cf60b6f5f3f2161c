#include "store/schema.hpp"

#include "store/store_backend.hpp"

namespace dmscore::detail {

namespace {

// Version 1: the engine's tables. The active-workflow counter's triggers differ per dialect.
constexpr const char* kWorkflowTables = R"sql(
CREATE TABLE workflows (
  seq               INTEGER PRIMARY KEY AUTOINCREMENT,
  id                TEXT NOT NULL UNIQUE,
  type              TEXT NOT NULL,
  state             TEXT NOT NULL
                    CHECK (state IN ('PENDING','RUNNING','COMPLETED','FAILED','CANCELLED')),
  msg               TEXT NOT NULL DEFAULT '',
  created_at        INTEGER NOT NULL,
  started_at        INTEGER,
  ended_at          INTEGER,
  request           TEXT NOT NULL,
  result            TEXT NOT NULL DEFAULT '',
  vars              TEXT NOT NULL DEFAULT '{}',
  cancel_requested  INTEGER NOT NULL DEFAULT 0,
  step_index        INTEGER NOT NULL DEFAULT 0,
  -- Set when compensation has begun: the terminal state and message it ends in.
  final_state       TEXT CHECK (final_state IN ('FAILED','CANCELLED')),
  final_msg         TEXT NOT NULL DEFAULT '',
  progress_percent  INTEGER NOT NULL DEFAULT 0,
  progress_stage    TEXT NOT NULL DEFAULT '',
  bytes_done        INTEGER NOT NULL DEFAULT 0,
  bytes_total       INTEGER NOT NULL DEFAULT 0,
  bytes_per_second  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX workflows_by_state ON workflows (state, seq);
CREATE INDEX workflows_by_type ON workflows (type, seq);

-- The number of non-terminal workflows, kept exact by triggers in the same transactions that
-- change states, so admission reads one row instead of counting.
CREATE TABLE workflow_counters (
  name   TEXT PRIMARY KEY,
  value  INTEGER NOT NULL
);
INSERT INTO workflow_counters (name, value) VALUES ('active', 0);
CREATE TABLE workflow_steps (
  workflow_id  TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  idx          INTEGER NOT NULL,
  name         TEXT NOT NULL,
  state        TEXT NOT NULL CHECK (state IN ('STARTED','DONE','FAILED','UNDOING','UNDONE')),
  attempts     INTEGER NOT NULL DEFAULT 0,
  started_at   INTEGER,
  ended_at     INTEGER,
  checkpoint   TEXT NOT NULL DEFAULT '',
  error        TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (workflow_id, idx)
);

-- What a non-terminal workflow uses ("cluster:<id>", "volume:<id>", ...), so that deleting or
-- detaching it can be refused while the workflow runs.
CREATE TABLE workflow_resources (
  resource     TEXT NOT NULL,
  workflow_id  TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  PRIMARY KEY (resource, workflow_id)
);
CREATE INDEX workflow_resources_by_workflow ON workflow_resources (workflow_id);
)sql";

constexpr const char* kWorkflowCounterSqlite = R"sql(
CREATE TRIGGER workflows_active_insert AFTER INSERT ON workflows
  WHEN NEW.state IN ('PENDING', 'RUNNING')
  BEGIN UPDATE workflow_counters SET value = value + 1 WHERE name = 'active'; END;
CREATE TRIGGER workflows_active_update AFTER UPDATE OF state ON workflows
  WHEN (OLD.state IN ('PENDING', 'RUNNING')) <> (NEW.state IN ('PENDING', 'RUNNING'))
  BEGIN UPDATE workflow_counters
        SET value = value + CASE WHEN NEW.state IN ('PENDING', 'RUNNING') THEN 1 ELSE -1 END
        WHERE name = 'active'; END;
CREATE TRIGGER workflows_active_delete AFTER DELETE ON workflows
  WHEN OLD.state IN ('PENDING', 'RUNNING')
  BEGIN UPDATE workflow_counters SET value = value - 1 WHERE name = 'active'; END;

)sql";

constexpr const char* kWorkflowCounterPostgres = R"sql(
CREATE FUNCTION workflows_active_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.state IN ('PENDING', 'RUNNING') THEN
      UPDATE workflow_counters SET value = value + 1 WHERE name = 'active';
    END IF;
    RETURN NEW;
  ELSIF TG_OP = 'DELETE' THEN
    IF OLD.state IN ('PENDING', 'RUNNING') THEN
      UPDATE workflow_counters SET value = value - 1 WHERE name = 'active';
    END IF;
    RETURN OLD;
  END IF;
  IF (OLD.state IN ('PENDING', 'RUNNING')) <> (NEW.state IN ('PENDING', 'RUNNING')) THEN
    UPDATE workflow_counters
      SET value = value + CASE WHEN NEW.state IN ('PENDING', 'RUNNING') THEN 1 ELSE -1 END
      WHERE name = 'active';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER workflows_active AFTER INSERT OR DELETE OR UPDATE OF state ON workflows
  FOR EACH ROW EXECUTE FUNCTION workflows_active_count();
)sql";

}  // namespace

const std::vector<Migration>& schema_migrations() {
  // Never destroyed: a workflow thread may still open a store while exit() runs the static
  // destructors (an embedder that exits without closing its Service).
  static const auto& kMigrations = *new std::vector<Migration>{
      {1, std::string(kWorkflowTables) + kWorkflowCounterSqlite,
       postgres_ddl(kWorkflowTables) + kWorkflowCounterPostgres},
      {2, R"sql(
CREATE TABLE clusters (
  id                   TEXT PRIMARY KEY,
  name                 TEXT NOT NULL,
  kind                 TEXT NOT NULL CHECK (kind IN ('local', 'lightbits')),
  api_endpoint         TEXT NOT NULL UNIQUE,
  version              TEXT NOT NULL DEFAULT '',
  subsystem_nqn        TEXT NOT NULL DEFAULT '',
  api_endpoints        TEXT NOT NULL DEFAULT '[]',
  discovery_endpoints  TEXT NOT NULL DEFAULT '[]',
  servers              TEXT NOT NULL DEFAULT '[]',
  access_status        TEXT NOT NULL DEFAULT 'Connected',
  data_status          TEXT NOT NULL DEFAULT 'Connected',
  attached_at          INTEGER NOT NULL,
  refreshed_at         INTEGER
);
)sql"},
      {3, R"sql(
CREATE TABLE users (
  name                 TEXT PRIMARY KEY,
  role                 TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
  password_hash        TEXT NOT NULL,
  -- Bumped by logout and password changes; tokens carry the version they were issued at.
  token_version        INTEGER NOT NULL DEFAULT 1,
  created_at           INTEGER NOT NULL,
  password_changed_at  INTEGER NOT NULL
);
)sql"},
      {4, R"sql(
CREATE TABLE consistency_groups (
  seq                    INTEGER PRIMARY KEY AUTOINCREMENT,
  id                     TEXT NOT NULL UNIQUE,
  name                   TEXT NOT NULL UNIQUE,
  description            TEXT NOT NULL DEFAULT '',
  cluster_id             TEXT NOT NULL,
  project                TEXT NOT NULL,
  status                 TEXT NOT NULL CHECK (status IN
                         ('creating','available','error','deleting','error_deleting')),
  source_cg_snapshot_id  TEXT NOT NULL DEFAULT '',
  -- A group made from a group snapshot: the workflow that makes its volumes, and why it failed.
  workflow_id            TEXT NOT NULL DEFAULT '',
  message                TEXT NOT NULL DEFAULT '',
  created_at             INTEGER NOT NULL,
  updated_at             INTEGER NOT NULL
);
CREATE INDEX consistency_groups_by_cluster ON consistency_groups (cluster_id);

-- A volume is in at most one group: the primary key says so.
CREATE TABLE cg_members (
  cluster_id  TEXT NOT NULL,
  volume_id   TEXT NOT NULL,
  group_id    TEXT NOT NULL REFERENCES consistency_groups (id) ON DELETE CASCADE,
  position    INTEGER NOT NULL,
  PRIMARY KEY (cluster_id, volume_id)
);
CREATE INDEX cg_members_by_group ON cg_members (group_id, position);

CREATE TABLE cg_snapshots (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT NOT NULL UNIQUE,
  group_id     TEXT NOT NULL,
  name         TEXT NOT NULL,
  description  TEXT NOT NULL DEFAULT '',
  cluster_id   TEXT NOT NULL,
  project      TEXT NOT NULL,
  status       TEXT NOT NULL CHECK (status IN
               ('creating','available','error','deleting','error_deleting')),
  workflow_id  TEXT NOT NULL DEFAULT '',
  message      TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  UNIQUE (group_id, name)
);

CREATE TABLE cg_snapshot_members (
  cg_snapshot_id  TEXT NOT NULL REFERENCES cg_snapshots (id) ON DELETE CASCADE,
  position        INTEGER NOT NULL,
  volume_id       TEXT NOT NULL,
  snapshot_id     TEXT NOT NULL UNIQUE,
  size            INTEGER NOT NULL,
  PRIMARY KEY (cg_snapshot_id, position)
);
)sql"},
      {5, R"sql(
-- A group snapshot taken for full copies belongs to their copy set: the service deletes it
-- when no copy refers to it any more.
ALTER TABLE cg_snapshots ADD COLUMN copy_set_id TEXT NOT NULL DEFAULT '';

-- One full-copy request: `count` copies of a group's members (all, or some with partial).
CREATE TABLE copy_sets (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT,
  id               TEXT NOT NULL UNIQUE,
  name             TEXT NOT NULL,
  group_id         TEXT NOT NULL REFERENCES consistency_groups (id) ON DELETE CASCADE,
  cluster_id       TEXT NOT NULL,
  project          TEXT NOT NULL,
  copy_count       INTEGER NOT NULL,
  partial          INTEGER NOT NULL,
  create_inactive  INTEGER NOT NULL,
  created_at       INTEGER NOT NULL,
  UNIQUE (group_id, name)
);

-- One copy of a set: a volume per member, its state, and the group snapshot its content is
-- from (cg_snapshot_id) or is being made from (sync_cg_snapshot_id).
CREATE TABLE full_copies (
  copy_set_id          TEXT NOT NULL REFERENCES copy_sets (id) ON DELETE CASCADE,
  idx                  INTEGER NOT NULL,
  status               TEXT NOT NULL CHECK (status IN ('creating', 'inactive',
                       'synchronizing', 'synchronized', 'restoring', 'detached', 'error')),
  cg_snapshot_id       TEXT NOT NULL DEFAULT '',
  sync_cg_snapshot_id  TEXT NOT NULL DEFAULT '',
  workflow_id          TEXT NOT NULL DEFAULT '',
  message              TEXT NOT NULL DEFAULT '',
  updated_at           INTEGER NOT NULL,
  PRIMARY KEY (copy_set_id, idx)
);
CREATE INDEX full_copies_by_snapshot ON full_copies (cg_snapshot_id);
CREATE INDEX full_copies_by_sync_snapshot ON full_copies (sync_cg_snapshot_id);

CREATE TABLE full_copy_volumes (
  copy_set_id       TEXT NOT NULL,
  idx               INTEGER NOT NULL,
  position          INTEGER NOT NULL,
  source_volume_id  TEXT NOT NULL,
  name              TEXT NOT NULL,
  size              INTEGER NOT NULL,
  -- Empty until the copy's volume is made.
  volume_id         TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (copy_set_id, idx, position),
  FOREIGN KEY (copy_set_id, idx) REFERENCES full_copies (copy_set_id, idx) ON DELETE CASCADE
);
CREATE INDEX full_copy_volumes_by_volume ON full_copy_volumes (volume_id);
)sql"},
      {6, R"sql(
-- Why a cluster is not Connected (a local cluster that needs repair says what is wrong).
ALTER TABLE clusters ADD COLUMN status_message TEXT NOT NULL DEFAULT '';
)sql"},
      {7, R"sql(
-- The canonical code of why a workflow failed or was cancelled (RESOURCE_EXHAUSTED for a full
-- disk, ...), set with final_state when compensation begins.
ALTER TABLE workflows ADD COLUMN error_code TEXT NOT NULL DEFAULT '';
)sql"},
      {8, R"sql(
-- The volumes the service adopts or adopted (MANAGE_VOLUME), recorded with the workflow that
-- adopts them: what the request asked for beyond the cluster's own record, and where the
-- volume is, so that it reads as Creating from the moment the request is accepted and can be
-- found by id alone. Removed when the volume is given back or deleted.
CREATE TABLE managed_volumes (
  id            TEXT PRIMARY KEY,
  cluster_id    TEXT NOT NULL,
  project_name  TEXT NOT NULL,
  name          TEXT NOT NULL,
  reference     TEXT NOT NULL,
  display_name  TEXT NOT NULL DEFAULT '',
  description   TEXT NOT NULL DEFAULT '',
  metadata      TEXT NOT NULL DEFAULT '{}',
  bootable      INTEGER NOT NULL DEFAULT 0,
  availability_zone TEXT NOT NULL DEFAULT '',
  workflow_id   TEXT NOT NULL,
  created_at    INTEGER NOT NULL
);
CREATE INDEX managed_volumes_by_cluster ON managed_volumes (cluster_id);

-- Facts about the service that never change once set: its id ("service-id"), which it marks
-- on what it manages on clusters whose objects carry labels.
CREATE TABLE service_facts (
  name   TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);
)sql"},
      {9, R"sql(
-- The snapshots the service adopts or adopted (MANAGE_SNAPSHOT), as managed_volumes, with the
-- managed volume each is a snapshot of.
CREATE TABLE managed_snapshots (
  id            TEXT PRIMARY KEY,
  cluster_id    TEXT NOT NULL,
  project_name  TEXT NOT NULL,
  name          TEXT NOT NULL,
  reference     TEXT NOT NULL,
  display_name  TEXT NOT NULL DEFAULT '',
  description   TEXT NOT NULL DEFAULT '',
  metadata      TEXT NOT NULL DEFAULT '{}',
  bootable      INTEGER NOT NULL DEFAULT 0,
  availability_zone TEXT NOT NULL DEFAULT '',
  workflow_id   TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  volume_id     TEXT NOT NULL
);
CREATE INDEX managed_snapshots_by_cluster ON managed_snapshots (cluster_id);
)sql"},
      {10, R"sql(
-- The agent role: a user that may register and report sources, and nothing else. SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE users_v10 (
  name                 TEXT PRIMARY KEY,
  role                 TEXT NOT NULL CHECK (role IN ('admin', 'viewer', 'agent')),
  password_hash        TEXT NOT NULL,
  token_version        INTEGER NOT NULL DEFAULT 1,
  created_at           INTEGER NOT NULL,
  password_changed_at  INTEGER NOT NULL
);
INSERT INTO users_v10 (name, role, password_hash, token_version, created_at, password_changed_at)
  SELECT name, role, password_hash, token_version, created_at, password_changed_at FROM users;
DROP TABLE users;
ALTER TABLE users_v10 RENAME TO users;

-- Source servers (sources.hpp): the last report in canonical form, the columns the filters
-- read, the environment check and what the operator chose to migrate.
CREATE TABLE sources (
  seq                INTEGER PRIMARY KEY AUTOINCREMENT,
  id                 TEXT NOT NULL UNIQUE,
  name               TEXT NOT NULL,
  ip                 TEXT NOT NULL DEFAULT '',
  ipv6               TEXT NOT NULL DEFAULT '',
  first_mac          TEXT NOT NULL UNIQUE,
  state              TEXT NOT NULL,
  migration_cycle    TEXT NOT NULL,
  migproject_id      TEXT NOT NULL DEFAULT '',
  report             TEXT NOT NULL,
  checks             TEXT NOT NULL DEFAULT '[]',
  plan               TEXT NOT NULL DEFAULT '{}',
  reported_by        TEXT NOT NULL,
  add_date           INTEGER NOT NULL,
  reported_at        INTEGER NOT NULL,
  state_action_time  INTEGER NOT NULL,
  stage_action_time  INTEGER NOT NULL,
  last_visit_time    INTEGER NOT NULL,
  replicate_size     INTEGER NOT NULL DEFAULT 0,
  workflow_id        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sources_by_state ON sources (state, seq);
)sql"},
      {11, R"sql(
-- Migrations of sources (migrations.hpp): one per MIGRATE_SOURCE_SERVER workflow, and per
-- migrated disk its volume and where its stream stands in the current pass.
CREATE TABLE migrations (
  id             TEXT PRIMARY KEY,
  source_id      TEXT NOT NULL,
  cluster_id     TEXT NOT NULL,
  project_name   TEXT NOT NULL,
  syncing        INTEGER NOT NULL,
  state          TEXT NOT NULL,
  stage          TEXT NOT NULL,
  pass           INTEGER NOT NULL DEFAULT 0,
  passes_wanted  INTEGER NOT NULL DEFAULT 0,
  cutover        INTEGER NOT NULL DEFAULT 0,
  cutover_pass   INTEGER NOT NULL DEFAULT 0,
  stopped        INTEGER NOT NULL DEFAULT 0,
  error          TEXT NOT NULL DEFAULT '',
  chunk_bytes    INTEGER NOT NULL,
  window_bytes   INTEGER NOT NULL,
  rate_limit     INTEGER NOT NULL DEFAULT 0,
  created_at     INTEGER NOT NULL,
  pass_started   INTEGER NOT NULL DEFAULT 0,
  data_held      TEXT NOT NULL DEFAULT '',
  finished       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX migrations_by_source ON migrations (source_id, created_at);
CREATE TABLE migration_disks (
  migration_id   TEXT NOT NULL,
  idx            INTEGER NOT NULL,
  name           TEXT NOT NULL,
  size           INTEGER NOT NULL,
  volume_name    TEXT NOT NULL,
  volume_id      TEXT NOT NULL DEFAULT '',
  pass           INTEGER NOT NULL DEFAULT 0,
  acked          INTEGER NOT NULL DEFAULT 0,
  pass_bytes     INTEGER NOT NULL DEFAULT 0,
  total_bytes    INTEGER NOT NULL DEFAULT 0,
  resent_bytes   INTEGER NOT NULL DEFAULT 0,
  sessions       INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (migration_id, idx)
);
)sql"},
      {12, R"sql(
-- Scale-out (several instances on one PostgreSQL store): each instance's lease, renewed by its
-- heartbeat; the lease_until of a live instance lies ahead by the database's clock.
CREATE TABLE instances (
  id            TEXT PRIMARY KEY,
  address       TEXT NOT NULL DEFAULT '',
  started_at    INTEGER NOT NULL,
  heartbeat_at  INTEGER NOT NULL,
  lease_until   INTEGER NOT NULL,
  running       INTEGER NOT NULL DEFAULT 0
);
-- Which instance runs a workflow, and the epoch of its claim: bumped by every claim, checked by
-- every write of the run (fencing).
ALTER TABLE workflows ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE workflows ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
CREATE INDEX workflows_by_owner ON workflows (owner, state);
-- Placement: resources a workflow can use only where reached (a local cluster's folder), and
-- which instance reaches which.
CREATE TABLE placed_resources (
  resource  TEXT PRIMARY KEY
);
CREATE TABLE instance_reach (
  instance_id  TEXT NOT NULL,
  resource     TEXT NOT NULL,
  PRIMARY KEY (instance_id, resource)
);
-- Versions of what instances keep in memory (users, clusters): a write bumps its row in the
-- same transaction; an instance serves a kept value only while the version it read it at is
-- still the current one.
CREATE TABLE cache_versions (
  name     TEXT PRIMARY KEY,
  version  INTEGER NOT NULL
);
-- Short holds on resources for work that is not a workflow (WorkflowEngine::claim), shared by
-- the instances; a hold of an instance whose lease ran out is void.
-- The service's key pairs when instances share the store (Identity::open_in_store): each
-- private key sealed with AES-256-GCM under the instances' store key.
CREATE TABLE service_keys (
  slot        TEXT PRIMARY KEY CHECK (slot IN ('current', 'previous', 'login')),
  id          TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  sealed      TEXT NOT NULL
);
CREATE TABLE resource_holds (
  resource     TEXT PRIMARY KEY,
  instance_id  TEXT NOT NULL,
  doing        TEXT NOT NULL
);
)sql"},
  };
  return kMigrations;
}

}  // namespace dmscore::detail
