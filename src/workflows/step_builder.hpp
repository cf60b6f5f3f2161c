#pragma once
// The one way workflow files build their steps: a name, a run and an optional undo, each a
// plain function of the module state the workflow works on.

#include <type_traits>

#include "dmscore/workflow.hpp"

namespace dmscore::detail {

template <class Owner>
using StepFn = std::type_identity_t<Status (*)(Owner&, StepContext&)>;

template <class Owner>
Step make_step(const char* name, Owner& owner, StepFn<Owner> run, StepFn<Owner> undo = nullptr) {
  Step s;
  s.name = name;
  s.run = [&owner, run](StepContext& c) { return run(owner, c); };
  if (undo) s.undo = [&owner, undo](StepContext& c) { return undo(owner, c); };
  return s;
}

}  // namespace dmscore::detail
