// Binding of 1D RoI align on CUDA: module opentad.ops._align1d_cuda,
// ops torch.ops.opentad.align1d_forward_cuda / align1d_backward_cuda.
#include <torch/library.h>

#include "../python_module.h"
#include "align1d.h"

TORCH_LIBRARY_FRAGMENT(opentad, m) {
  m.def("align1d_forward_cuda(Tensor input, Tensor rois, int pooled_size, int sampling_ratio) -> Tensor",
        &opentad::align1d_forward_cuda);
  m.def(
      "align1d_backward_cuda(Tensor grad_output, Tensor rois, int pooled_size, int batch_size, int channels, "
      "int length, int sampling_ratio) -> Tensor",
      &opentad::align1d_backward_cuda);
}

OPENTAD_PYTHON_MODULE("1D RoI align (CUDA): torch.ops.opentad.align1d_forward_cuda / align1d_backward_cuda")
