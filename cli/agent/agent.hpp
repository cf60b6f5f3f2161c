#pragma once
// The migration agent (`dmsctl agent`): registers the machine it runs on as a source server,
// reports again when its facts change, and carries out the commands it polls over SMS's agent
// channel (GET /v3/sources/{id}/command, POST .../command_result): START and SYNC stream the
// disks of the migration's current pass, STOP halts.
//
// A pass of a disk (migrations.hpp): the agent opens a session (the acknowledged offset, the
// chunk, batch and window sizes), fetches the checksums of the chunks the service holds, then reads
// the disk from the acknowledged offset on. Holes (SEEK_DATA) and all-zero chunks that the service
// holds as zeros are not read or not sent; a chunk whose checksum equals the service's is not
// sent. Changed chunks go in batches of at most batchBytes, one request after the other while a
// reader thread prepares the next two; the service answers once a batch is in the volume and
// holds the agent back while more than windowBytes are not yet durable.
// Any failure (the service restarting, the session taken over) reopens the session, which
// resumes at the acknowledged offset.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "agent/facts.hpp"
#include "dmscore/http/client.hpp"

namespace dmsctl::agent {

struct AgentOptions {
  FactsOptions facts;
  dmscore::http::ClientOptions client;
  std::string token;
  // Run through /bin/sh before the cutover pass (quiesce the source); its failure fails the
  // command. Empty: none.
  std::string pre_cutover_hook;
  // The hook is killed past this. Default: 10 min.
  int hook_timeout_ms = 600000;
  // Between polls when idle. Default: 2 s.
  int poll_ms = 2000;
  // Facts are collected again (and reported when they changed) this often. Default: 60 s.
  int report_every_ms = 60000;
  // Exit 0 once a migration this agent streamed has cut over (for scripts and tests).
  bool exit_after_cutover = false;
  // Progress lines on stderr.
  bool progress = true;
  // Set to stop the agent (SIGTERM).
  std::atomic<bool>* stop = nullptr;
};

// Runs the agent until `stop` (0), or a migration cut over with exit_after_cutover (0). Returns
// the exit code: 2 when the facts cannot be collected, 3 when the service refuses the agent's
// token or role, 1 for another failure to register.
int run_agent(const AgentOptions& options, const std::function<void(const std::string&)>& log);

}  // namespace dmsctl::agent
