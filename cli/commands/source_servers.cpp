// dmsctl commands on source servers (the machines agents registered through the SMS API): list,
// get, delete.
#include <fmt/core.h>

#include <boost/json.hpp>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

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

struct Column {
  const char* title;
  bool wide_only;
  std::function<std::string(const json::object&)> get;
};

std::vector<Column> source_server_columns() {
  auto f = [](const char* key) { return [key](const json::object& o) { return cell(o, key); }; };
  return {
      {"ID", false, f("id")},
      {"NAME", false, f("name")},
      {"HOSTNAME", true, f("hostname")},
      {"IP", false,
       [](const json::object& o) {
         std::string ip = cell(o, "ip");
         return ip.empty() ? cell(o, "ipv6") : ip;
       }},
      {"OS", false, f("osType")},
      {"OS-VERSION", true, f("osVersion")},
      {"AGENT", true, f("agentVersion")},
      {"STATE", false, f("state")},
      {"CYCLE", false, f("migrationCycle")},
      {"CONNECTED", false, f("connected")},
      {"DISKS", true,
       [](const json::object& o) {
         const auto* d = o.if_contains("disks");
         return d && d->is_array() ? std::to_string(d->as_array().size()) : "";
       }},
      {"SIZE", true,
       [](const json::object& o) {
         std::string s = cell(o, "totalSize");
         try {
           return s.empty() ? s : human_bytes(static_cast<double>(std::stoull(s)));
         } catch (...) {
           return s;
         }
       }},
      {"ADDED", true, f("addedAt")},
      {"LAST-VISIT", false, f("lastVisitAt")},
  };
}

// The checks of a source server that did not pass, as a table; empty when all passed.
std::string failed_checks(const json::object& s) {
  std::vector<std::vector<std::string>> rows{{"FAILED-CHECK", "RESULT", "CODE", "MESSAGE"}};
  if (const auto* checks = s.if_contains("checks"); checks && checks->is_array())
    for (const auto& c : checks->as_array()) {
      if (!c.is_object()) continue;
      const auto& o = c.as_object();
      if (cell(o, "result") == "OK") continue;
      rows.push_back(
          {cell(o, "name"), cell(o, "result"), cell(o, "errorCode"), cell(o, "message")});
    }
  return rows.size() > 1 ? aligned(rows) : std::string();
}

// Prints source servers ({"sourceServer": {...}} or {"sourceServers": [...], "nextPageToken"})
// in the -o format; in table and wide, one server's failed checks follow its row.
void show_source_servers(const Context& ctx, const std::string& answer) {
  const Format f = ctx.output_format();
  if (f != Format::kTable && f != Format::kWide) {
    ctx.print(answer, "sourceServer");
    return;
  }
  const json::value v = parse_answer(answer);
  const std::vector<json::object> servers = objects_in(v, "sourceServer");
  std::vector<Column> cols;
  for (auto& c : source_server_columns())
    if (f == Format::kWide || !c.wide_only) cols.push_back(c);
  std::vector<std::vector<std::string>> rows(1);
  for (const auto& c : cols) rows[0].push_back(c.title);
  for (const auto& s : servers) {
    rows.emplace_back();
    for (const auto& c : cols) rows.back().push_back(c.get(s));
  }
  std::string out = aligned(rows);
  const json::object* o = v.if_object();
  if (o && o->contains("sourceServer") && servers.size() == 1)
    if (std::string checks = failed_checks(servers[0]); !checks.empty()) out += "\n" + checks;
  std::fputs(out.c_str(), stdout);
  if (const auto* t = o ? o->if_contains("nextPageToken") : nullptr;
      t && t->is_string() && !t->as_string().empty())
    fmt::print(stderr, "more: repeat with --page-token {}\n", std::string(t->as_string()));
}

}  // namespace

void add_source_server_commands(CLI::App& app, Context& ctx) {
  using dmscore::http::url_encode;
  auto& a = ctx.hold<SourceServerArgs>();
  auto* list = ctx.leaf(app.get_subcommand("list"), "source-servers",
                        "List the source servers agents registered, newest first",
                        "  dmsctl list source-servers --state waiting -o wide\n"
                        "  dmsctl list source-servers --connected false -o name",
                        [&ctx, &a] {
                          auto c = ctx.connect(true);
                          show_source_servers(ctx, check(c.api->call("GET", list_target(a))));
                          return kExitOk;
                        });
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

  auto* get =
      ctx.leaf(app.get_subcommand("get"), "source-server",
               "Show a source server: with -o json or yaml all of it, with its disks, "
               "checks and the agent's report; as a table, also the checks it failed",
               "  dmsctl get source-server SOURCE_SERVER_ID\n"
               "  dmsctl get source-server SOURCE_SERVER_ID -o yaml",
               [&ctx, &a] {
                 auto c = ctx.connect(true);
                 show_source_servers(
                     ctx, check(c.api->call("GET", kSourceServers + "/" + url_encode(a.id))));
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
