#include <cstdio>
#include <cstdlib>
#include <dmscore/service.hpp>
#include <dmscore/version.hpp>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  dmscore::Options o;
  o.data_dir = argv[1];
  o.rsa_bits = 2048;
  o.admin_password = "consumer-admin-pw";
  auto svc = dmscore::Service::open(o);
  if (!svc.ok()) {
    std::fprintf(stderr, "%s\n", svc.status().to_string().c_str());
    return 1;
  }
  auto list = (*svc)->workflows().list({});
  std::printf("libdmscore %s ready=%d workflows=%zu\n", dmscore::version(), (*svc)->ready() ? 1 : 0,
              list.ok() ? list->workflows.size() : 0);
  return (*svc)->ready() && list.ok() ? 0 : 1;
}
