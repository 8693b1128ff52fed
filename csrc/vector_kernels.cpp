// vector_kernels.cpp: element-wise kernels (activations over arrays, losses, optimizer updates),
// compiled once per ISA level (see kernels.h).
#include "kernels.h"

namespace mlpfast {
namespace MLPFAST_ISA_NS {

void register_vector(KernelSet<float>&, KernelSet<double>&) {}

}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
