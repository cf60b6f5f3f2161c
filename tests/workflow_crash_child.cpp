// A process the crash test kills with SIGKILL at random moments. It runs workflows whose steps
// do real file work under <work>/, and prints "ACK <id>" once a submission is acknowledged.
//
//   workflow_crash_child run   DB WORK SEED   submit and cancel for ever (until killed)
//   workflow_crash_child drain DB WORK        recover and run until nothing is left, then exit 0
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "dmscore/store.hpp"
#include "dmscore/workflow.hpp"

using namespace dmscore;
namespace fs = std::filesystem;

namespace {

constexpr int kBlocks = 64;
constexpr int kBlock = 4096;

std::string work_dir;

std::string path_of(const std::string& id, const char* ext) { return work_dir + "/" + id + ext; }

Status sync_dir() {
  int fd = ::open(work_dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Status::Internal("open dir");
  ::fsync(fd);
  ::close(fd);
  return Status::Ok();
}

void fill_block(char* buf, const std::string& id, int i) {
  std::memset(buf, 0, kBlock);
  std::snprintf(buf, kBlock, "%s block %d", id.c_str(), i);
}

WorkflowType ledger_type() {
  WorkflowType t{"LEDGER", {}};
  // Creates the data file; idempotent (exists is fine).
  t.steps.push_back({"create",
                     [](StepContext& c) -> Status {
                       int fd = ::open(path_of(c.workflow_id(), ".data").c_str(),
                                       O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
                       if (fd < 0) return Status::Internal("create");
                       ::ftruncate(fd, kBlocks * kBlock);
                       ::fsync(fd);
                       ::close(fd);
                       return sync_dir();
                     },
                     [](StepContext& c) -> Status {
                       ::unlink(path_of(c.workflow_id(), ".data").c_str());
                       return sync_dir();
                     }});
  // Writes blocks, checkpointing every 8 after an fsync; resumes from the checkpoint.
  t.steps.push_back(
      {"fill", [](StepContext& c) -> Status {
         int from = c.checkpoint().empty() ? 0 : std::stoi(c.checkpoint());
         int fd = ::open(path_of(c.workflow_id(), ".data").c_str(), O_WRONLY | O_CLOEXEC);
         if (fd < 0) return Status::Internal("open data");
         char buf[kBlock];
         for (int i = from; i < kBlocks; ++i) {
           if (c.should_stop()) {
             ::close(fd);
             return Status::Cancelled("stopped");
           }
           fill_block(buf, c.workflow_id(), i);
           if (::pwrite(fd, buf, kBlock, off_t{i} * kBlock) != kBlock) {
             ::close(fd);
             return Status::Internal("write");
           }
           if ((i + 1) % 8 == 0) {
             ::fdatasync(fd);
             Status s = c.save_checkpoint(std::to_string(i + 1));
             if (!s.ok()) {
               ::close(fd);
               return s;
             }
             std::this_thread::sleep_for(std::chrono::microseconds(300));
           }
           c.report_progress({(i + 1) * 100 / kBlocks, "fill", std::uint64_t(i + 1) * kBlock,
                              std::uint64_t(kBlocks) * kBlock, 0});
         }
         ::fsync(fd);
         ::close(fd);
         return Status::Ok();
       }});
  // Deliberately not idempotent: appends a line. It must run exactly once or the workflow
  // must fail (OnCrash::kFail), so a second line proves a step ran twice.
  t.steps.push_back({"count",
                     [](StepContext& c) -> Status {
                       int fd = ::open(path_of(c.workflow_id(), ".count").c_str(),
                                       O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
                       if (fd < 0) return Status::Internal("open count");
                       std::string line = c.workflow_id() + "\n";
                       ::write(fd, line.data(), line.size());
                       ::fsync(fd);
                       ::close(fd);
                       return sync_dir();
                     },
                     [](StepContext& c) -> Status {
                       ::unlink(path_of(c.workflow_id(), ".count").c_str());
                       return sync_dir();
                     },
                     OnCrash::kFail, "the count may or may not have been taken"});
  // Publishes the result; idempotent.
  t.steps.push_back({"publish",
                     [](StepContext& c) -> Status {
                       std::error_code ec;
                       if (fs::exists(path_of(c.workflow_id(), ".done"))) return Status::Ok();
                       fs::rename(path_of(c.workflow_id(), ".data"),
                                  path_of(c.workflow_id(), ".done"), ec);
                       if (ec) return Status::Internal("rename: " + ec.message());
                       c.set_result(R"({"file":")" + c.workflow_id() + R"(.done"})");
                       return sync_dir();
                     },
                     [](StepContext& c) -> Status {
                       ::unlink(path_of(c.workflow_id(), ".done").c_str());
                       return sync_dir();
                     }});
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  std::string mode = argv[1];
  work_dir = argv[3];
  auto store = Store::open(argv[2]);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().to_string().c_str());
    return 1;
  }
  EngineOptions o;
  o.max_running_workflows = 12;
  o.threads = 4;
  o.progress_persist_interval = std::chrono::milliseconds(2);
  WorkflowEngine engine(**store, o);
  if (!engine.register_type(ledger_type()).ok() || !engine.start().ok()) return 1;

  if (mode == "drain") {
    for (int i = 0; i < 6000; ++i) {
      auto n = engine.active_count();
      if (n.ok() && *n == 0) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 3;
  }

  std::mt19937 rng(static_cast<unsigned>(std::stoul(argc > 4 ? argv[4] : "1")));
  std::vector<std::string> mine;
  for (;;) {
    auto id = engine.submit("LEDGER", "{}");
    if (id.ok()) {
      std::printf("ACK %s\n", id->c_str());
      std::fflush(stdout);
      mine.push_back(*id);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!mine.empty() && rng() % 7 == 0) {
      (void)engine.cancel(mine[rng() % mine.size()]);
    }
  }
}
