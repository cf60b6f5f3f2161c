// Embedding the workflow engine: a durable two-step workflow that survives restarts.
//
//   example_workflow DIR
#include "dmscore/workflow.hpp"

#include <cstdio>
#include <string>

#include "dmscore/store.hpp"

int main(int argc, char** argv) {
  using namespace dmscore;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  auto store = Store::open(std::string(argv[1]) + "/example.db");
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().to_string().c_str());
    return 1;
  }
  WorkflowEngine engine(**store, EngineOptions{});
  Status s = engine.register_type({"GREET",
                                   {{"compose",
                                     [](StepContext& c) {
                                       c.set_var("greeting", "hello from " + c.workflow_id());
                                       return Status::Ok();
                                     }},
                                    {"publish", [](StepContext& c) {
                                       c.set_result("{\"greeting\":\"" + c.var("greeting") + "\"}");
                                       return Status::Ok();
                                     }}}});
  if (s.ok()) s = engine.start();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }
  auto id = engine.submit("GREET", "{}");
  if (!id.ok()) {
    std::fprintf(stderr, "%s\n", id.status().to_string().c_str());
    return 1;
  }
  auto wf = engine.wait(*id, std::chrono::seconds(10));
  if (!wf.ok()) return 1;
  std::printf("%s %s %s\n", wf->id.c_str(), std::string(to_string(wf->state)).c_str(),
              wf->result.c_str());
  return wf->state == WorkflowState::kCompleted ? 0 : 1;
}
