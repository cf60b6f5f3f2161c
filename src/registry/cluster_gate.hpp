#pragma once
// The gate in front of one cluster's driver: what keeps a slow or dead cluster from costing
// anyone but its own callers.
//
//   caller (inside a CallScope)            workflow step (no scope)
//        │                                        │
//        ▼                                        │
//   breaker open? ── yes ──► UNAVAILABLE "retry in N s", at once
//        │ no (or the one half-open probe)        │
//   calls in flight ≥ limit? ── yes ──► UNAVAILABLE "retry in 1 s", at once
//        │ no: take a permit                      │
//        ▼                                        ▼
//                  driver call (bounded by the scope's deadline)
//                                 │
//        DEADLINE_EXCEEDED ──► breaker opens for `cooldown`; any other answer closes it
//
// Callers are those of the service's API (a request): they get a bounded share of the
// cluster (a bulkhead) and fail fast while it is known to hang (a circuit breaker). Workflow
// steps and health checks are not refused (their own timeouts bound them), but their outcomes
// move the breaker too. A call made on an HTTP I/O thread is a bug: it is counted and logged.
//
// GatedBackend is a Backend that passes every call through a gate. Safe for concurrent use.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "dmscore/backend.hpp"
#include "dmscore/env.hpp"

namespace dmscore::detail {

struct GateOptions {
  int max_calls = 4;
  std::chrono::milliseconds cooldown{5000};
  std::function<void(std::string_view)> log;
};

struct GateStats {
  std::uint64_t refused_busy = 0;     // callers refused: calls in flight at the limit
  std::uint64_t refused_open = 0;     // callers refused: the breaker was open
  std::uint64_t timeouts = 0;         // calls that ended DEADLINE_EXCEEDED
  std::uint64_t io_thread_calls = 0;  // calls made on an HTTP I/O thread (a bug)
  int in_flight = 0;                  // callers' calls running now
  bool open = false;                  // the breaker refuses callers now
};

class ClusterGate {
 public:
  ClusterGate(std::string cluster_id, GateOptions options, std::shared_ptr<Env> env);

  // Held by a caller's call while it runs.
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& o) noexcept : gate_(o.gate_), probe_(o.probe_) { o.gate_ = nullptr; }
    Permit& operator=(Permit&&) = delete;
    ~Permit();
    bool probe() const { return probe_; }

   private:
    friend class ClusterGate;
    Permit(ClusterGate* gate, bool probe) : gate_(gate), probe_(probe) {}
    ClusterGate* gate_ = nullptr;
    bool probe_ = false;
  };

  // Runs `fn` as a call to the cluster: through the bulkhead and breaker when the thread serves
  // a caller (CallScope), directly otherwise; records how it ended.
  Status call(const std::function<Status()>& fn);

  GateStats stats() const;
  const std::string& cluster_id() const { return cluster_id_; }

 private:
  Result<Permit> enter();
  void record(const Status& s, bool probe);

  std::string cluster_id_;
  GateOptions options_;
  std::shared_ptr<Env> env_;
  mutable std::mutex mu_;
  int in_flight_ = 0;
  std::optional<Env::SteadyTime> open_until_;
  bool probing_ = false;
  GateStats counters_;
  std::atomic<bool> warned_io_{false};
};

// A Backend whose every call goes through a ClusterGate.
class GatedBackend final : public Backend {
 public:
  GatedBackend(std::shared_ptr<Backend> inner, std::shared_ptr<ClusterGate> gate)
      : inner_(std::move(inner)), gate_(std::move(gate)) {}

  Backend& inner() const { return *inner_; }
  ClusterGate& gate() const { return *gate_; }

  Result<ClusterInfo> info() override;
  Status repair_needed() const override { return inner_->repair_needed(); }
  Result<VolumePage> list_volumes(const std::string& project, const PageRequest& page) override;
  Result<Volume> get_volume(const std::string& project, const std::string& id) override;
  Result<Volume> find_volume(const std::string& project, const std::string& name) override;
  Result<Volume> create_volume(const CreateVolumeRequest& request) override;
  Status mark_volume_available(const std::string& project, const std::string& id) override;
  Status delete_volume(const std::string& project, const std::string& id) override;
  Result<SnapshotPage> list_snapshots(const std::string& project, const PageRequest& page) override;
  Result<Snapshot> get_snapshot(const std::string& project, const std::string& id) override;
  Result<Snapshot> find_snapshot(const std::string& project, const std::string& name) override;
  Result<Snapshot> create_snapshot(const CreateSnapshotRequest& request) override;
  Status delete_snapshot(const std::string& project, const std::string& id) override;
  Result<std::vector<ManageableObject>> list_manageable_volumes() override;
  Result<Volume> manage_volume(const ManageVolumeRequest& request) override;
  Result<std::string> unmanage_volume(const std::string& project, const std::string& id) override;
  Result<std::vector<ManageableObject>> list_manageable_snapshots() override;
  Result<Snapshot> manage_snapshot(const ManageSnapshotRequest& request) override;
  Result<std::string> unmanage_snapshot(const std::string& project, const std::string& id) override;
  Result<std::unique_ptr<BlockSource>> open_snapshot_data(const std::string& project,
                                                          const std::string& id,
                                                          const DataAccess& access) override;
  Result<std::unique_ptr<BlockSource>> open_volume_data(const std::string& project,
                                                        const std::string& id,
                                                        const DataAccess& access) override;
  Result<std::unique_ptr<BlockSink>> open_volume_sink(const std::string& project,
                                                      const std::string& id, bool fresh,
                                                      const DataAccess& access) override;
  Status release_data(const std::string& resource) override;

 private:
  template <typename T, typename Fn>
  Result<T> through(Fn fn) {
    std::optional<Result<T>> out;
    Status s = gate_->call([&]() -> Status {
      out.emplace(fn());
      return out->status();
    });
    if (!out) return s;  // refused before the call
    return std::move(*out);
  }

  std::shared_ptr<Backend> inner_;
  std::shared_ptr<ClusterGate> gate_;
};

// The backend behind a gate, or `b` itself.
inline Backend* ungated(Backend* b) {
  if (auto* g = dynamic_cast<GatedBackend*>(b)) return &g->inner();
  return b;
}

}  // namespace dmscore::detail
