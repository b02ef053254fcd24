// Binding of boundary max pooling on the CPU: module opentad.ops._boundary_pooling_cpu,
// ops torch.ops.opentad.boundary_pooling_forward_cpu / boundary_pooling_backward_cpu.
#include <torch/library.h>

#include "../python_module.h"
#include "boundary_pooling.h"

TORCH_LIBRARY_FRAGMENT(opentad, m) {
  m.def("boundary_pooling_forward_cpu(Tensor input, Tensor segments) -> Tensor",
        &opentad::boundary_pooling_forward_cpu);
  m.def("boundary_pooling_backward_cpu(Tensor grad_output, Tensor input, Tensor segments) -> Tensor",
        &opentad::boundary_pooling_backward_cpu);
}

OPENTAD_PYTHON_MODULE("Boundary max pooling (CPU): torch.ops.opentad.boundary_pooling_forward_cpu / _backward_cpu")
