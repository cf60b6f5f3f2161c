// Embedding the HTTP façade on its own threads.
//
//   example_http_server DATA_DIR [PORT] [--for-ms N]
// Serves the REST API on 127.0.0.1:PORT (0 picks one) until SIGINT/SIGTERM, or for N ms.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "dmscore/http/server.hpp"
#include "dmscore/service.hpp"

int main(int argc, char** argv) {
  using namespace dmscore;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DATA_DIR [PORT] [--for-ms N]\n", argv[0]);
    return 2;
  }
  int for_ms = argc > 4 && std::string(argv[3]) == "--for-ms" ? std::atoi(argv[4]) : 0;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts

  Options o;
  o.data_dir = argv[1];
  auto service = Service::open(o);
  if (!service.ok()) {
    std::fprintf(stderr, "%s\n", service.status().to_string().c_str());
    return 1;
  }
  http::ServerOptions so;
  so.port = static_cast<std::uint16_t>(argc > 2 ? std::atoi(argv[2]) : 8443);
  auto server = http::Server::create(**service, so);
  if (!server.ok() || !(*server)->start().ok()) {
    std::fprintf(stderr, "cannot serve: %s\n", server.status().to_string().c_str());
    return 1;
  }
  std::printf("serving on http://127.0.0.1:%u\n", (*server)->port());
  std::fflush(stdout);
  if (for_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(for_ms));
  } else {
    int sig = 0;
    sigwait(&signals, &sig);
  }
  (*server)->stop();  // finishes requests in flight
  std::printf("stopped\n");
  return 0;
}
