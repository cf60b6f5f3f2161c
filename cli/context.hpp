#pragma once
// dmsctl's command line state: the global flags, how to reach the service, how to print and
// follow what it answers, and the commands registered on the CLI11 app.
//
// One Context lives in main() for the whole run. Each cli/commands/<noun>.cpp registers its
// commands on it (commands/commands.hpp); the option values of a command are held by the
// Context (hold()), so the CLI11 options can bind to them by reference.

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common.hpp"
#include "config.hpp"
#include "dmscore/http/api_client.hpp"
#include "output.hpp"

namespace dmsctl {

// What the global and shared options set.
struct Flags {
  std::string endpoint, ca_cert, context, output = "table";
  bool insecure = false;
  bool wait = false, no_progress = false;
  int timeout_s = 0;  // 0: wait without limit
};

struct Connection {
  std::unique_ptr<dmscore::http::ApiClient> api;
  std::string endpoint;
  // What `api` was made with, for a command that needs a client of its own (the agent's data
  // stream sends octet-stream bodies).
  dmscore::http::ClientOptions options;
  std::string token;
};

class Context {
 public:
  Context() = default;
  // The registered commands refer to it: it stays where main() made it.
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Flags flags;

  // ---- registering commands ----

  // A command with its example(s) in --help, run by run() when it is the one parsed. Commands
  // under a verb are listed for shell completion.
  CLI::App* leaf(CLI::App* parent, const std::string& name, const std::string& what,
                 const std::string& example, std::function<int()> run);
  // -o/--output.
  CLI::App* with_output(CLI::App* c);
  // --wait, --no-progress, --timeout and -o, for commands that start a workflow.
  CLI::App* with_wait(CLI::App* c);
  // `cmd` takes SIGINT itself (serve): run() leaves the signal alone for it.
  void takes_own_signals(const CLI::App* cmd) { own_signals_.insert(cmd); }
  // A T that lives as long as the Context: a command's option values.
  template <class T>
  T& hold() {
    auto p = std::make_shared<T>();
    held_.push_back(p);
    return *p;
  }
  // verb → its nouns, in the order they were registered.
  const std::map<std::string, std::vector<std::string>>& tree() const { return tree_; }

  // After app.parse(): runs the parsed command (help when none) and answers the exit code.
  int run(CLI::App& app);

  // ---- for the commands ----

  // The service, from --endpoint, $DMS_ENDPOINT or the saved context; the token from
  // $DMS_TOKEN or the context. `need_token`: fail when there is none.
  Connection connect(bool need_token) const;
  Config load_config() const;
  Format output_format() const;
  // Prints an answer in the -o format; a table's next page token goes to stderr.
  void print(const std::string& answer, const std::string& kind) const;
  // The run of a command that makes one call and prints its answer as `kind`.
  using Call = std::function<dmscore::Result<std::string>(dmscore::http::ApiClient&)>;
  std::function<int()> printing(std::string kind, Call call);
  // The run of a command that makes one call and then says `done()` on stderr.
  std::function<int()> reporting(Call call, std::function<std::string()> done);
  // The answer of a call that may be throttled: a 429 with Retry-After fails naming the wait.
  std::string admitted(const Connection& c, dmscore::Result<std::string> r) const;
  // Follows a workflow to its end with progress on stderr; prints it (-o) when asked, or only
  // its result (as YAML) with `show_result` in table mode. Answers the exit code.
  int follow(Connection& c, const std::string& id, const std::string& title, bool print_result,
             bool show_result = false);
  // Starts long work: prints the workflow id of `answer`, or follows it with --wait.
  int started(Connection& c, const std::string& answer, const std::string& title,
              bool show_result = false);

 private:
  std::map<CLI::App*, std::function<int()>> actions_;
  std::map<std::string, std::vector<std::string>> tree_;
  std::set<const CLI::App*> own_signals_;
  std::vector<std::shared_ptr<void>> held_;
};

// The verbs (get, list, create, ...), in the order --help lists them.
void add_verbs(CLI::App& app);

}  // namespace dmsctl
