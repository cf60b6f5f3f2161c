// dmsctl get service-credentials: the service's public key, for Lightbits clusters to trust.
#include <fmt/core.h>

#include <fstream>
#include <string>

#include "commands/commands.hpp"

namespace dmsctl {

void add_credentials_commands(CLI::App& app, Context& ctx) {
  auto& pem_out = ctx.hold<std::string>();
  auto* creds = ctx.leaf(
      app.get_subcommand("get"), "service-credentials",
      "The service's public key, to import into Lightbits clusters",
      "  dmsctl get service-credentials --pem-out dms.pem", [&ctx, &pem_out] {
        auto c = ctx.connect(true);
        auto creds = decoded(
            dmscore::http::ServiceCredentialsAnswer::parse(check(c.api->service_credentials())));
        if (!pem_out.empty()) {
          std::optional<std::string> pem = creds.pem();
          if (!pem) fail(kExitError, "pubKey: not base64");
          std::ofstream out(pem_out, std::ios::binary | std::ios::trunc);
          if (!(out << *pem)) fail(kExitError, "--pem-out: cannot write " + pem_out);
          fmt::print(stderr,
                     "wrote {}. Import it on each Lightbits cluster with:\n"
                     "  lbcli create credential --project-name=system --type=rsa256pubkey "
                     "--id={} {}\n",
                     pem_out, creds.pub_key_id, pem_out);
        }
        ctx.print(creds.body, "service-credentials");
        return kExitOk;
      });
  creds->add_option("--pem-out", pem_out, "write the decoded PEM public key to this file");
  ctx.with_output(creds);
}

}  // namespace dmsctl
