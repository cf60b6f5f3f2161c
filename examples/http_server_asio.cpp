// Embedding the HTTP façade on an io_context the application already runs.
//
//   example_http_server_asio DATA_DIR [PORT] [--for-ms N]
// The application owns the loop (here: two threads and a signal set); the server only adds its
// acceptor and sessions to it.
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"

int main(int argc, char** argv) {
  using namespace dmscore;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DATA_DIR [PORT] [--for-ms N]\n", argv[0]);
    return 2;
  }
  int for_ms = argc > 4 && std::string(argv[3]) == "--for-ms" ? std::atoi(argv[4]) : 0;
  Options o;
  o.data_dir = argv[1];
  auto service = Service::open(o);
  if (!service.ok()) {
    std::fprintf(stderr, "%s\n", service.status().to_string().c_str());
    return 1;
  }

  boost::asio::io_context ioc;
  auto work = boost::asio::make_work_guard(ioc);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&ioc] { ioc.run(); });

  http::ServerOptions so;
  so.port = static_cast<std::uint16_t>(argc > 2 ? std::atoi(argv[2]) : 8443);
  auto server = http::Server::create(ioc, **service, so);
  if (!server.ok() || !(*server)->start().ok()) {
    std::fprintf(stderr, "cannot serve: %s\n", server.status().to_string().c_str());
    work.reset();
    ioc.stop();
    for (auto& t : threads) t.join();
    return 1;
  }
  std::printf("serving on http://127.0.0.1:%u\n", (*server)->port());
  std::fflush(stdout);

  // The application decides when to stop: a signal, or a timer for the smoke test.
  std::promise<void> done;
  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&done](auto, int) { done.set_value(); });
  boost::asio::steady_timer timer(ioc);
  if (for_ms > 0) {
    timer.expires_after(std::chrono::milliseconds(for_ms));
    timer.async_wait([&signals](auto) { signals.cancel(); });
  }
  done.get_future().wait();
  (*server)->stop();  // from outside the loop, while it still runs
  work.reset();
  ioc.stop();
  for (auto& t : threads) t.join();
  std::printf("stopped\n");
  return 0;
}
