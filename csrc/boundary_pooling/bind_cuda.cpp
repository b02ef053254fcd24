// Binding of boundary max pooling on CUDA: module opentad.ops._boundary_pooling_cuda,
// ops torch.ops.opentad.boundary_pooling_forward_cuda / boundary_pooling_backward_cuda.
#include <torch/library.h>

#include "../python_module.h"
#include "boundary_pooling.h"

TORCH_LIBRARY_FRAGMENT(opentad, m) {
  m.def("boundary_pooling_forward_cuda(Tensor input, Tensor segments) -> Tensor",
        &opentad::boundary_pooling_forward_cuda);
  m.def("boundary_pooling_backward_cuda(Tensor grad_output, Tensor input, Tensor segments) -> Tensor",
        &opentad::boundary_pooling_backward_cuda);
}

OPENTAD_PYTHON_MODULE("Boundary max pooling (CUDA): torch.ops.opentad.boundary_pooling_forward_cuda / _backward_cuda")
