#pragma once
// THICK_CLONE_VOLUME and THICK_CLONE_SNAPSHOT (drawn for users in dmscore/clone.hpp):
//
//   request: ThickCloneRequest as JSON (codec.hpp)
//
//   resolve-source ──► create-destination ──► copy ──────────► verify ───────► finalize
//     │ the source is   │ held volume of      │ volume-copy     │ verifyClone   │ volume: made
//     │ Available; the  │ dst.name (or the    │ pipeline,       │ only          │ Available
//     │ destination's   │ hidden dms-tmp-<wf> │ "<item>:<off>"  │               │ snapshot: the
//     │ attributes      │ for a snapshot)     │ checkpoints     │               │ hidden volume
//     │ fixed (vars)    │                     │                 │               │ snapshotted,
//     │                 ▼ undo: what this     │                 │               │ then deleted
//     │                   workflow made goes  │                 │               ▼ undo (snapshot):
//     │                                                                           the snapshot
//
// Between steps the clone keeps what it resolved in its step variables (CloneVars): a resumed
// run reads them back instead of asking the source again.

#include <cstdint>
#include <string>

#include "dmscore/workflow.hpp"

namespace dmscore::detail {

struct CloneVars {
  std::string dst_project;  // "" until resolve-source ran
  std::uint64_t src_size = 0;
  std::uint64_t dst_size = 0;
  int replica = 1;
  int sector_size = 4096;
  bool compression = false;
  std::string dst_volume_id;    // the destination (or hidden) volume, once made
  std::string dst_snapshot_id;  // a snapshot clone's result, once made

  static CloneVars load(const StepContext& c);
  // Saves what resolve-source fixed (the ids are saved by the steps that make them).
  void save_resolved(StepContext& c) const;
};

}  // namespace dmscore::detail
