#pragma once
// RESTORE_FULL_COPY: a synchronized copy's volumes written back onto its group's source
// volumes (POST copy set action "restore", confirmed).
//
//   request {"copySetId", "copy"} (FullCopyWork, without a group snapshot)
//
//   restore ────────────────────────────────────────────────────────────► copy synchronized
//     │ begin_restore: writes to the sources and new group snapshots of the group refused,
//     │ writes in flight drained ─► volume-copy pipeline, copy volumes → sources, checkpointed
//     │ ─► end_restore
//     ▼ undo (failure, cancel)
//   the sources hold partly restored data: the group goes to error (no group snapshot of them
//   until an operator resets it); the copy is intact and stays synchronized
//
//   cancelled before it started: the copy goes back to synchronized.
