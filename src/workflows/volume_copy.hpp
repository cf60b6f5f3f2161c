#pragma once
// The volume-copy pipeline every copying workflow shares (thick clones, group full copies,
// group thick clones, restores):
//
//   create held destinations ──► copy, checkpointed ──► verify (verifyClone) ──► make available
//        │ (intent, owner label,      │ "<item>:<offset>"      │ chunk checksums
//        │  id recorded)              │ watermark fsynced        │
//        ▼ undo                       ▼ before it is recorded    ▼
//   delete what the intent or the owner label proves this workflow made
//
// A workflow describes what it copies as CopyItems; the pipeline keeps one checkpoint format
// ("<item>:<offset>": every byte of the items before <item>, and of <item> below <offset>, is in
// its destination and durable) and counts the service's copy and verify bytes.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dmscore/backend.hpp"
#include "dmscore/options.hpp"
#include "dmscore/workflow.hpp"

namespace dmscore::detail {

// One volume a workflow copies: from a snapshot (or, for a restore, a volume) into a volume.
struct CopyItem {
  std::string src_cluster;
  std::string src_project;
  std::string src_snapshot_id;  // or:
  std::string src_volume_id;
  std::string dst_cluster;
  std::string dst_project;
  std::string dst_name;
  std::string dst_volume_id;  // empty until made
  std::uint64_t size = 0;
  int replica = 1;
  int sector_size = 4096;
  bool compression = false;
};

// The checkpoint "<item>:<offset>". A thick clone of an earlier release wrote "<offset>" alone:
// it reads as item 0.
std::pair<std::size_t, std::uint64_t> parse_copy_checkpoint(const std::string& checkpoint);

class VolumeCopy {
 public:
  struct Deps {
    const Options* options = nullptr;
    std::shared_ptr<Env> env;
    // The driver of an attached cluster.
    std::function<Result<std::shared_ptr<Backend>>(const std::string& cluster_id)> backend;
    // The service's counters: data bytes written into destinations, bytes compared.
    std::atomic<std::uint64_t>* copy_bytes = nullptr;
    std::atomic<std::uint64_t>* verify_bytes = nullptr;
  };
  explicit VolumeCopy(Deps deps) : deps_(std::move(deps)) {}

  // Makes every item's destination volume, held in Creating, with the workflow's owner label;
  // `made(i, id)` records one durably. Before creating, the intent ("creating<i>") is saved; a
  // resumed run adopts the held volume of the planned name that carries its label.
  Status create_targets(StepContext& c, std::vector<CopyItem>& items,
                        const std::function<Status(std::size_t, const std::string&)>& made) const;
  // Deletes what create_targets made: the recorded ids, or a volume of the planned name whose
  // owner label names this workflow. Never anything else.
  Status delete_targets(StepContext& c, const std::vector<CopyItem>& items) const;
  // Copies every item from the step's checkpoint on, checkpointing "<item>:<offset>" at most
  // once per copy_checkpoint_interval (the destination fsynced first). `fresh_targets`: the
  // destinations were made by this workflow and read as zero until copied into. Progress runs
  // from `from_pct` to `to_pct` under `stage`.
  Status copy(StepContext& c, const std::vector<CopyItem>& items, bool fresh_targets,
              const char* stage, int from_pct, int to_pct) const;
  // Compares every item with its source (90..99 %). DATA_LOSS "verifyClone: ..." on a
  // difference.
  Status verify(StepContext& c, const std::vector<CopyItem>& items) const;
  Status make_available(const std::vector<CopyItem>& items) const;
  // Removes what the drivers made to reach data for this workflow and recorded (the step var
  // "dataHeld": "<cluster>\t<resource>" lines): temporary volumes, ACL entries, connections.
  // Copy and verify run it when they end and when they resume after a crash; the steps that
  // copy run it as (part of) their undo, for a workflow that ends without resuming them.
  Status release_data(StepContext& c) const;

 private:
  // How a driver reaching `cluster`'s data for this workflow records what it makes.
  DataAccess access(StepContext& c, const std::string& cluster) const;
  Status verify_items(StepContext& c, const std::vector<CopyItem>& items) const;
  Status copy_item(StepContext& c, const CopyItem& it, std::size_t i, std::size_t n,
                   std::uint64_t from, bool fresh, std::uint64_t before, std::uint64_t total,
                   const char* stage, int from_pct, int to_pct) const;

  Deps deps_;
};

}  // namespace dmscore::detail
