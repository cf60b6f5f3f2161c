// dmsctl completion: a bash or zsh completion script of the verbs and their nouns.
#include <fmt/core.h>

#include <map>
#include <string>
#include <vector>

#include "commands/commands.hpp"

namespace dmsctl {

namespace {

std::string completion_script(const std::string& shell,
                              const std::map<std::string, std::vector<std::string>>& tree) {
  std::string cases;
  std::string verbs;
  for (const auto& [verb, nouns] : tree) {
    verbs += verb + " ";
    std::string list;
    for (const auto& n : nouns) list += n + " ";
    cases += "    " + verb + ") COMPREPLY=($(compgen -W \"" + list + "\" -- \"$cur\")) ;;\n";
  }
  std::string bash =
      "# dmsctl bash completion: source <(dmsctl completion bash)\n"
      "_dmsctl() {\n"
      "  local cur=${COMP_WORDS[COMP_CWORD]}\n"
      "  if [[ $cur == -* ]]; then\n"
      "    COMPREPLY=($(compgen -W \"--endpoint --ca-cert --insecure --context -o --output "
      "--wait --no-progress --timeout --help\" -- \"$cur\")); return\n"
      "  fi\n"
      "  if ((COMP_CWORD == 1)); then\n"
      "    COMPREPLY=($(compgen -W \"" +
      verbs +
      "\" -- \"$cur\")); return\n"
      "  fi\n"
      "  if ((COMP_CWORD == 2)); then\n"
      "    case ${COMP_WORDS[1]} in\n" +
      cases +
      "    esac\n"
      "  fi\n"
      "}\n"
      "complete -F _dmsctl dmsctl\n";
  if (shell == "bash") return bash;
  return "#compdef dmsctl\n# dmsctl zsh completion: source <(dmsctl completion zsh)\n"
         "autoload -U +X bashcompinit && bashcompinit\n" +
         bash;
}

}  // namespace

void add_completion_commands(CLI::App& app, Context& ctx) {
  auto& shell = ctx.hold<std::string>();
  auto* completion =
      ctx.leaf(&app, "completion", "Print a shell completion script",
               "  source <(dmsctl completion bash)\n  dmsctl completion zsh > ~/.zfunc/_dmsctl",
               [&ctx, &shell] {
                 // The tree is complete by now: every command was registered before parsing.
                 fmt::print("{}", completion_script(shell, ctx.tree()));
                 return kExitOk;
               });
  completion->add_option("shell", shell, "bash or zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));
}

}  // namespace dmsctl
