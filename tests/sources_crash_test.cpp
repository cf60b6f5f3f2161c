// Kills a service with SIGKILL in the middle of bursts of source reports from eight agents at
// once, again and again: every report it acknowledged is there after the restart (the source
// exists under the id it answered, with that report or a later one), one source per agent.
#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "crash_harness.hpp"
#include "dmscore/service.hpp"
#include "service_options.hpp"
#include "test_util.hpp"

using namespace dmscore;
using namespace dmscore::testing;
using namespace std::chrono_literals;

TEST_CASE("Sources: SIGKILL during registration bursts loses no acknowledged report") {
  TempDir tmp;
  const std::string data = tmp / "data";
  const int rounds = env_int("DMSCORE_SOURCES_ROUNDS", 12);
  std::mt19937 rng(Catch::rngSeed());
  // Per agent: the id answered and the highest version acknowledged.
  std::map<int, std::pair<std::string, long>> acked;
  std::size_t total_acks = 0;
  for (int round = 0; round < rounds; ++round) {
    const auto after = std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 700)(rng));
    auto run = run_child_kill_after_line({DMSCORE_SOURCES_CHILD, data, std::to_string(round)},
                                         "READY", after);
    INFO("round " << round << " stderr/exit " << run.exit_code);
    REQUIRE(run.exit_code == -1);  // killed, not ended
    for (const auto& line : lines_with(run.out, "ACK ")) {
      int agent = 0;
      long version = 0;
      char id[64] = {0};
      REQUIRE(std::sscanf(line.c_str(), "%d %ld %63s", &agent, &version, id) == 3);
      auto& a = acked[agent];
      if (!a.first.empty()) CHECK(a.first == id);  // a report again never makes a second source
      a.first = id;
      a.second = std::max(a.second, version);
      ++total_acks;
    }
    // Every acknowledged report survived this kill.
    auto svc = Service::open(test_options(data));
    REQUIRE(svc.ok());
    auto page = (*svc)->sources().list({});
    REQUIRE(page.ok());
    // Sources whose first report was made durable but not yet acknowledged may exist too.
    CHECK(page->count >= static_cast<std::int64_t>(acked.size()));
    CHECK(page->count <= 6 + 2 * (round + 1));
    for (const auto& [agent, a] : acked) {
      auto s = (*svc)->sources().get(a.first);
      INFO("agent " << agent << " id " << a.first);
      REQUIRE(s.ok());
      CHECK(s->name == "agent-" + std::to_string(agent));
      CHECK(std::stol(s->agent_version) >= a.second);
      CHECK(s->state == "waiting");
    }
  }
  CHECK(total_acks > static_cast<std::size_t>(rounds));  // the kills fell inside bursts
  CHECK(acked.size() > 6);
}
