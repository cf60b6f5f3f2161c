// Sources: registration, reports, the environment check, listing and the state of the source
// servers agents report (sources.hpp).
#include <algorithm>
#include <set>

#include "base/codec.hpp"
#include "base/util.hpp"
#include "catalog/migration_catalog.hpp"
#include "catalog/rows.hpp"
#include "catalog/source_catalog.hpp"
#include "service/service_impl.hpp"
#include "sources/source_schema.hpp"

namespace dmscore {

namespace json = boost::json;
using detail::SourceCatalog;

namespace {

// The states of a source whose migration is under way: it may not be deleted, nor its disk
// choices changed.
bool migrating(const std::string& state) {
  static const std::set<std::string> kBusy = {"initialize", "replicate", "syncing",
                                              "stopping",   "skipping",  "cloning",
                                              "cutovering", "clearing",  "premiging"};
  return kBusy.count(state) > 0;
}

// The migration cycles changestate may set: the registration's six and SMS's drill stages.
const std::vector<std::string>& settable_cycles() {
  static const auto& v = *new std::vector<std::string>{
      "no_ready",  "ready_for_test", "testing", "tested",      "cutovering",
      "cutovered", "checking",       "setting", "replicating", "syncing"};
  return v;
}

bool one_of(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

json::value parse_stored(const std::string& s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  return ec ? json::value() : v;
}

json::array checks_json(const std::vector<SourceCheck>& checks) {
  json::array a;
  for (const auto& c : checks) {
    json::array params;
    for (const auto& p : c.params) params.emplace_back(p);
    a.push_back(json::object{{"id", c.id},
                             {"name", c.name},
                             {"result", c.result},
                             {"error_code", c.error_code},
                             {"message", c.message},
                             {"params", std::move(params)}});
  }
  return a;
}

std::vector<SourceCheck> checks_from(const std::string& s) {
  std::vector<SourceCheck> out;
  json::value v = parse_stored(s);
  if (!v.is_array()) return out;
  for (const auto& item : v.as_array()) {
    if (!item.is_object()) continue;
    const auto& o = item.as_object();
    SourceCheck c;
    c.id = detail::report_int(o, "id");
    c.name = detail::report_text(o, "name");
    c.result = detail::report_text(o, "result");
    c.error_code = detail::report_text(o, "error_code");
    c.message = detail::report_text(o, "message");
    if (const auto* p = o.if_contains("params"); p && p->is_array())
      for (const auto& x : p->as_array())
        if (x.is_string()) c.params.emplace_back(x.get_string());
    out.push_back(std::move(c));
  }
  return out;
}

std::string state_of(const std::vector<SourceCheck>& checks) {
  for (const auto& c : checks)
    if (c.result == "ERROR") return "unavailable";
  return "waiting";
}

SourceServer to_source(const SourceCatalog::Stored& s, std::int64_t connected_since) {
  SourceServer out;
  out.id = s.id;
  out.name = s.name;
  out.ip = s.ip;
  out.ipv6 = s.ipv6;
  out.first_mac = s.first_mac;
  out.state = s.state;
  out.migration_cycle = s.migration_cycle;
  out.migproject_id = s.migproject_id;
  out.add_date = s.add_date;
  out.state_action_time = s.state_action_time;
  out.stage_action_time = s.stage_action_time;
  out.last_visit_time = s.last_visit_time;
  out.connected = s.last_visit_time >= connected_since;
  out.replicate_size = static_cast<std::uint64_t>(s.replicate_size);
  out.workflow_id = s.workflow_id;
  out.reported_by = s.reported_by;
  out.report_json = s.report;
  out.checks = checks_from(s.checks);
  json::value report = parse_stored(s.report);
  if (report.is_object()) {
    const auto& r = report.as_object();
    out.hostname = detail::report_text(r, "hostname");
    out.os_type = detail::report_text(r, "os_type");
    out.os_version = detail::report_text(r, "os_version");
    out.firmware = detail::report_text(r, "firmware");
    out.agent_version = detail::report_text(r, "agent_version");
    out.kernel_version = detail::report_text(r, "kernel_version");
    out.cpu_quantity = detail::report_int(r, "cpu_quantity");
    out.memory = detail::report_int(r, "memory");
    out.disks = detail::source_disks(r);
  }
  json::value plan = parse_stored(s.plan);
  const json::object* disks = nullptr;
  if (plan.is_object())
    if (const auto* d = plan.as_object().if_contains("disks"); d && d->is_object())
      disks = &d->as_object();
  for (auto& d : out.disks) {
    if (disks)
      if (const auto* c = disks->if_contains(d.name); c && c->is_object()) {
        if (const auto* n = c->as_object().if_contains("need_migration"); n && n->is_bool())
          d.need_migration = n->get_bool();
        if (const auto* a = c->as_object().if_contains("adjust_size"); a && a->is_int64())
          d.adjust_size = static_cast<std::uint64_t>(a->get_int64());
      }
    if (d.need_migration) out.total_size += d.adjust_size.value_or(d.size);
  }
  return out;
}

// What one choice of an update names, checked against `reported` (disks or volume groups, the
// objects under `child_key` their partitions or logical volumes).
Status check_choices(const std::vector<SourceVolumeChoice>& choices, const json::value* reported,
                     const char* field, const char* child_key, const char* child_field,
                     json::object& out) {
  if (choices.size() > 50) return Status::InvalidArgument(std::string(field) + ": at most 50");
  for (std::size_t i = 0; i < choices.size(); ++i) {
    const auto& c = choices[i];
    const std::string path = std::string(field) + "[" + std::to_string(i) + "]";
    const json::object* found = nullptr;
    if (reported && reported->is_array())
      for (const auto& r : reported->as_array())
        if (r.is_object() && detail::report_text(r.as_object(), "name") == c.id)
          found = &r.as_object();
    if (!found)
      return Status::InvalidArgument(path + ".id: the source reported no " +
                                     (std::string(field) == "disks" ? "disk" : "volume group") +
                                     " named " + c.id.substr(0, 255));
    if (out.contains(c.id)) return Status::InvalidArgument(path + ".id: given twice");
    json::object entry;
    if (c.need_migration) entry["need_migration"] = *c.need_migration;
    if (c.adjust_size) {
      const auto size = static_cast<std::uint64_t>(detail::report_int(*found, "size"));
      if (*c.adjust_size < size || *c.adjust_size > static_cast<std::uint64_t>(INT64_MAX))
        return Status::InvalidArgument(path + ".adjust_size: must be at least the size " +
                                       std::to_string(size) +
                                       " (a block copy cannot shrink what it copies)");
      entry["adjust_size"] = static_cast<std::int64_t>(*c.adjust_size);
    }
    json::object children;
    if (Status s =
            check_choices(c.children, found->if_contains(child_key),
                          (path + "." + child_field).c_str(), child_key, child_field, children);
        !s.ok())
      return s;
    if (!children.empty()) entry["children"] = std::move(children);
    out[c.id] = std::move(entry);
  }
  return Status::Ok();
}

}  // namespace

Result<SourceReportResult> Sources::report(const std::string& report_json,
                                           const std::string& reporter) {
  auto body = detail::parse_json(report_json);
  if (!body.ok()) return body.status();
  auto canonical = detail::canonical_source_report(*body);
  if (!canonical.ok()) return canonical.status();
  const auto checks = detail::check_source_environment(*canonical);
  const std::string checked_state = state_of(checks);
  const std::string given_id = detail::report_text(*canonical, "id");
  const std::string mac =
      detail::report_text(canonical->at("networks").as_array()[0].as_object(), "mac");
  const std::int64_t now = impl_->now_ms();
  const std::string fresh = detail::random_hex(*impl_->env, 16);
  SourceReportResult out;
  Status s = impl_->store->transact([&](Txn& t) -> Status {
    std::optional<SourceCatalog::Stored> row;
    if (!given_id.empty()) {
      auto r = SourceCatalog::by_id(t, given_id);
      if (!r.ok()) return r.status();
      row = std::move(*r);
    }
    if (!row) {
      auto r = SourceCatalog::by_mac(t, mac);
      if (!r.ok()) return r.status();
      row = std::move(*r);
    }
    if (row && row->first_mac != mac) {
      auto other = SourceCatalog::by_mac(t, mac);
      if (!other.ok()) return other.status();
      if (*other)
        return Status::AlreadyExists("networks[0].mac: source " + (*other)->id +
                                     " was registered with this mac");
    }
    json::object report = *canonical;
    const bool created = !row;
    SourceCatalog::Stored st = created ? SourceCatalog::Stored{} : *row;
    if (created) {
      st.id = fresh;
      st.add_date = now;
      st.state = checked_state;
      st.state_action_time = now;
      st.migration_cycle = "checking";
      st.stage_action_time = now;
      st.plan = "{}";
    } else if (st.state == "unavailable" || st.state == "waiting") {
      // The check decides only before a migration has begun.
      if (st.state != checked_state) st.state_action_time = now;
      st.state = checked_state;
    }
    report["id"] = st.id;
    json::value plan = parse_stored(st.plan);
    const bool renamed = plan.is_object() && plan.as_object().contains("name");
    if (!renamed) st.name = detail::report_text(report, "name");
    st.ip = detail::report_text(report, "ip");
    st.ipv6 = detail::report_text(report, "ipv6");
    st.first_mac = mac;
    st.report = json::serialize(report);
    st.checks = json::serialize(checks_json(checks));
    st.reported_by = reporter;
    st.reported_at = now;
    st.last_visit_time = now;
    if (Status w = created ? SourceCatalog::insert(t, st) : SourceCatalog::update(t, st); !w.ok())
      return w;
    out = {st.id, created, st.state};
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status Sources::visit(const std::string& id) {
  return impl_->store->transact(
      [&](Txn& t) { return SourceCatalog::visit(t, id, impl_->now_ms()); });
}

Result<SourcePage> Sources::list(const SourceQuery& query) const {
  if (query.state && !one_of(source_states(), *query.state))
    return Status::InvalidArgument("state: must be one of the source states (waiting, ...)");
  if (query.migration_cycle && !one_of(settable_cycles(), *query.migration_cycle))
    return Status::InvalidArgument(
        "migration_cycle: must be checking, setting, replicating, syncing, cutovering, "
        "cutovered, or a drill stage (no_ready, ready_for_test, testing, tested)");
  for (const auto* f : {&query.name, &query.id, &query.ip, &query.migproject})
    if (*f && f->value().size() > 255)
      return Status::InvalidArgument("filter: at most 255 characters");
  if (query.limit < 1 || query.limit > 1000)
    return Status::InvalidArgument("limit: must be 1..1000");
  if (query.offset < 0 || query.offset > INT32_MAX)
    return Status::InvalidArgument("offset: must be 0..2147483647");
  std::int64_t before = 0;
  if (!query.page_token.empty()) {
    if (query.offset != 0) return Status::InvalidArgument("offset: not with a page token");
    auto t = detail::parse_page_token(query.page_token, "src");
    if (!t.ok()) return t.status();
    before = *t;
  }
  const std::int64_t since =
      impl_->now_ms() -
      std::chrono::duration_cast<std::chrono::milliseconds>(impl_->options.source_agent_timeout)
          .count();
  return detail::rows::read<SourcePage>(*impl_->store, [&](Txn& t) -> Result<SourcePage> {
    const bool tokens = !query.page_token.empty() || query.offset == 0;
    auto r = SourceCatalog::list(t, query, since, before, query.limit + (tokens ? 1 : 0));
    if (!r.ok()) return r.status();
    SourcePage page;
    page.count = r->first;
    auto& rows = r->second;
    if (tokens && static_cast<std::int64_t>(rows.size()) > query.limit) {
      rows.pop_back();
      page.next_page_token = detail::make_page_token("src", rows.back().seq);
    }
    for (const auto& row : rows) page.sources.push_back(to_source(row, since));
    return page;
  });
}

Result<SourceServer> Sources::get(const std::string& id) const {
  const std::int64_t since =
      impl_->now_ms() -
      std::chrono::duration_cast<std::chrono::milliseconds>(impl_->options.source_agent_timeout)
          .count();
  return detail::rows::read<SourceServer>(*impl_->store, [&](Txn& t) -> Result<SourceServer> {
    auto r = SourceCatalog::by_id(t, id);
    if (!r.ok()) return r.status();
    if (!*r) return Status::NotFound("source " + id.substr(0, 64) + " not found");
    return to_source(**r, since);
  });
}

Result<SourceServer> Sources::update(const std::string& id, const SourceUpdate& update) {
  if (update.name && (update.name->empty() || update.name->size() > 64))
    return Status::InvalidArgument("name: must be 1..64 characters");
  if (update.migproject_id && update.migproject_id->size() > 255)
    return Status::InvalidArgument("migprojectid: must be at most 255 characters");
  Status s = impl_->store->transact([&](Txn& t) -> Status {
    auto r = SourceCatalog::by_id(t, id);
    if (!r.ok()) return r.status();
    if (!*r) return Status::NotFound("source " + id.substr(0, 64) + " not found");
    SourceCatalog::Stored st = **r;
    json::value plan = parse_stored(st.plan);
    if (!plan.is_object()) plan = json::object();
    json::value report = parse_stored(st.report);
    if (!report.is_object()) return Status::Internal("source " + id + ": stored report unreadable");
    const auto& rep = report.as_object();
    if ((!update.disks.empty() || !update.volume_groups.empty()) && migrating(st.state))
      return Status::FailedPrecondition(
          "disks: cannot change what is migrated while the source "
          "is " +
          st.state);
    if (!update.disks.empty()) {
      json::object disks;
      if (Status c = check_choices(update.disks, rep.if_contains("disks"), "disks",
                                   "physical_volumes", "physical_volumes", disks);
          !c.ok())
        return c;
      plan.as_object()["disks"] = std::move(disks);
    }
    if (!update.volume_groups.empty()) {
      json::object groups;
      if (Status c = check_choices(update.volume_groups, rep.if_contains("volume_groups"),
                                   "volume_groups", "logical_volumes", "logical_volumes", groups);
          !c.ok())
        return c;
      plan.as_object()["volume_groups"] = std::move(groups);
    }
    if (update.name) {
      st.name = *update.name;
      plan.as_object()["name"] = *update.name;
    }
    if (update.migproject_id) st.migproject_id = *update.migproject_id;
    st.plan = json::serialize(plan);
    return SourceCatalog::update(t, st);
  });
  if (!s.ok()) return s;
  return get(id);
}

Status Sources::remove(const std::string& id) { return remove_many({id}); }

Status Sources::remove_many(const std::vector<std::string>& ids) {
  if (ids.empty()) return Status::InvalidArgument("ids: at least one id is required");
  if (ids.size() > 100) return Status::InvalidArgument("ids: at most 100 ids at once");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (!seen.insert(ids[i]).second)
      return Status::InvalidArgument("ids[" + std::to_string(i) + "]: given twice");
  return impl_->store->transact([&](Txn& t) -> Status {
    for (const auto& id : ids) {
      auto r = SourceCatalog::by_id(t, id);
      if (!r.ok()) return r.status();
      if (!*r) return Status::NotFound("source " + id.substr(0, 64) + " not found");
      if (migrating((*r)->state))
        return Status::FailedPrecondition("source " + id + " is " + (*r)->state +
                                          ": stop its migration before deleting it");
      // A stopped or failed migration still holds its volumes: it ends by a cancel of its
      // workflow (which removes them) or by its cutover.
      auto m = detail::MigrationCatalog::latest_of(t, id);
      if (!m.ok()) return m.status();
      if (*m && !(*m)->finished)
        return Status::FailedPrecondition("source " + id + " has migration " + (*m)->id +
                                          " under way (" + (*m)->state +
                                          "): cancel its workflow before deleting it");
    }
    for (const auto& id : ids) {
      auto r = SourceCatalog::remove(t, id);
      if (!r.ok()) return r.status();
    }
    return Status::Ok();
  });
}

Status Sources::change_state(const std::string& id, const std::string& copystate,
                             const std::string& migrationcycle) {
  std::string state = lower(copystate);
  if (state == "init") state = "initialize";
  if (!one_of(source_states(), state))
    return Status::InvalidArgument(
        "copystate: must be one of the source states (WAITING, INIT, "
        "REPLICATE, ...)");
  const std::string cycle = lower(migrationcycle);
  if (!one_of(settable_cycles(), cycle))
    return Status::InvalidArgument(
        "migrationcycle: must be checking, setting, replicating, "
        "syncing, cutovering, cutovered or a drill stage");
  return impl_->store->transact([&](Txn& t) -> Status {
    auto r = SourceCatalog::by_id(t, id);
    if (!r.ok()) return r.status();
    if (!*r) return Status::NotFound("source " + id.substr(0, 64) + " not found");
    SourceCatalog::Stored st = **r;
    const std::int64_t now = impl_->now_ms();
    if (st.state != state) st.state_action_time = now;
    if (st.migration_cycle != cycle) st.stage_action_time = now;
    st.state = state;
    st.migration_cycle = cycle;
    return SourceCatalog::update(t, st);
  });
}

Result<SourceOverview> Sources::overview() const {
  return detail::rows::read<SourceOverview>(*impl_->store, [&](Txn& t) -> Result<SourceOverview> {
    auto r = SourceCatalog::per_state(t);
    if (!r.ok()) return r.status();
    auto unconfigured = SourceCatalog::unconfigured(t);
    if (!unconfigured.ok()) return unconfigured.status();
    SourceOverview o;
    for (const char* k :
         {"waiting", "replicate", "syncing", "stopped", "deleting", "cutovering", "unavailable",
          "stopping", "skipping", "finished", "initialize", "error", "cloning"}) {
      std::int64_t n = 0;
      for (const auto& [state, count] : *r)
        if (state == k) n = count;
      o.counts.emplace_back(k, n);
    }
    o.counts.emplace_back("unconfigured", *unconfigured);
    return o;
  });
}

}  // namespace dmscore
