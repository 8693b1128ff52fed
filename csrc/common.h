// common.h: the index type, and the helpers that turn one X-macro list into an enum, its names
// and its dispatch.
//
// Each concept of the core is one list (activations.h MLPFAST_ACTIVATIONS, losses.h
// MLPFAST_OUTPUTS, optimizers.h MLPFAST_SOLVERS), LIST(X) calling X(name) once per entry, and
// one type per entry, `namespace_of_the_list::name`. Every switch over the enum is written once,
// in the list's visit(), from the same list: an entry without its type does not compile, and no
// case can be forgotten (the build also has -Werror=switch). Code that needs one entry's
// behaviour takes the type (a template parameter), so the hot loops are instantiated per entry
// with no indirect call per element.
#pragma once
#include <cstdint>

#include "portability.h"

namespace mlpfast {

using index_t = std::int64_t;

}  // namespace mlpfast

// X callbacks for the lists: the enumerator, its name, a count.
#define MLPFAST_ENUMERATOR(name) name,
#define MLPFAST_NAME(name) #name,
#define MLPFAST_COUNT(name) +1

// visit(value, f) = f(Namespace::name{}) for the list entry `value` of Enum: the one switch over
// the enum (internal linkage: use it inside an anonymous namespace).
#define MLPFAST_VISIT_CASE(name) \
  case E::name:                  \
    return f(NS::name{});
#define MLPFAST_DEFINE_VISIT(Enum, LIST, Namespace) \
  template <typename F>                             \
  inline decltype(auto) visit(Enum value, F&& f) {  \
    using E = Enum;                                 \
    namespace NS = Namespace;                       \
    switch (value) { LIST(MLPFAST_VISIT_CASE) }     \
    MLPFAST_UNREACHABLE();                          \
  }
