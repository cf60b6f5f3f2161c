// dmsctl commands on source servers (the machines agents registered through the SMS API): list,
// get, delete.

#include <boost/json.hpp>
#include <cstdio>
#include <string>

#include "commands/commands.hpp"
#include "output.hpp"

namespace dmsctl {

namespace json = boost::json;

namespace {

const std::string kSourceServers = "/api/v1/source-servers";

struct SourceServerArgs {
  std::string id, state, name, ip, migration_cycle, connected, page_token;
  int page_size = 0;
};

// GET /api/v1/source-servers with the filters that were given.
std::string list_target(const SourceServerArgs& a) {
  std::string q;
  auto add = [&q](const char* key, const std::string& value) {
    if (!value.empty())
      q += (q.empty() ? "?" : "&") + std::string(key) + "=" + dmscore::http::url_encode(value);
  };
  if (a.page_size > 0) add("pageSize", std::to_string(a.page_size));
  add("nextPageToken", a.page_token);
  add("state", a.state);
  add("name", a.name);
  add("ip", a.ip);
  add("migrationCycle", a.migration_cycle);
  add("connected", a.connected);
  return kSourceServers + q;
}

// After one source server's table: the checks it failed, as a table of their own.
void print_failed_checks(const Context& ctx, const std::string& answer) {
  const Format f = ctx.output_format();
  if (f != Format::kTable && f != Format::kWide) return;
  const json::value v = parse_answer(answer);
  const json::value* checks = nullptr;
  if (const auto* o = v.if_object())
    if (const auto* s = o->if_contains("sourceServer"); s && s->is_object())
      checks = s->as_object().if_contains("checks");
  json::array failed;
  if (checks && checks->is_array())
    for (const auto& c : checks->as_array())
      if (c.is_object() && c.as_object().if_contains("result") && c.at("result") != "OK")
        failed.push_back(c);
  if (failed.empty()) return;
  std::fputs("\n", stdout);
  ctx.print(json::serialize(json::object{{"checks", std::move(failed)}}), "check");
}

}  // namespace

void add_source_server_commands(CLI::App& app, Context& ctx) {
  using dmscore::http::url_encode;
  auto& a = ctx.hold<SourceServerArgs>();
  auto* list = ctx.leaf(
      app.get_subcommand("list"), "source-servers",
      "List the source servers agents registered, newest first",
      "  dmsctl list source-servers --state waiting -o wide\n"
      "  dmsctl list source-servers --connected false -o name",
      ctx.printing("sourceServer", [&a](auto& api) { return api.call("GET", list_target(a)); }));
  list->add_option("--state", a.state, "waiting, unavailable, replicate, finished, ...");
  list->add_option("--name", a.name, "only those whose name contains this");
  list->add_option("--ip", a.ip, "only those with this IPv4 or IPv6 address");
  list->add_option("--migration-cycle", a.migration_cycle,
                   "checking, setting, replicating, syncing, cutovering or cutovered");
  list->add_option("--connected", a.connected,
                   "true: those whose agent called lately; false: the others")
      ->check(CLI::IsMember({"true", "false"}));
  list->add_option("--page-size", a.page_size, "servers per page")->check(CLI::Range(1, 1000));
  list->add_option("--page-token", a.page_token, "the page to show");
  ctx.with_output(list);

  auto* get = ctx.leaf(app.get_subcommand("get"), "source-server",
                       "Show a source server: with -o json or yaml all of it, with its disks, "
                       "checks and the agent's report; as a table, also the checks it failed",
                       "  dmsctl get source-server SOURCE_SERVER_ID\n"
                       "  dmsctl get source-server SOURCE_SERVER_ID -o yaml",
                       [&ctx, &a] {
                         auto c = ctx.connect(true);
                         const std::string answer =
                             check(c.api->call("GET", kSourceServers + "/" + url_encode(a.id)));
                         ctx.print(answer, "sourceServer");
                         print_failed_checks(ctx, answer);
                         return kExitOk;
                       });
  get->add_option("id", a.id, "source server id")->required();
  ctx.with_output(get);

  auto* del = ctx.leaf(
      app.get_subcommand("delete"), "source-server",
      "Forget a source server (not while it is being migrated); its agent may register it again",
      "  dmsctl delete source-server SOURCE_SERVER_ID",
      ctx.reporting(
          [&a](auto& api) { return api.call("DELETE", kSourceServers + "/" + url_encode(a.id)); },
          [&a] { return "deleted source server " + a.id; }));
  del->add_option("id", a.id, "source server id")->required();
}

}  // namespace dmsctl
