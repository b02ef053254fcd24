// Binding of 1D RoI align on the CPU: module opentad.ops._align1d_cpu,
// ops torch.ops.opentad.align1d_forward_cpu / align1d_backward_cpu.
#include <torch/library.h>

#include "../python_module.h"
#include "align1d.h"

TORCH_LIBRARY_FRAGMENT(opentad, m) {
  m.def("align1d_forward_cpu(Tensor input, Tensor rois, int pooled_size, int sampling_ratio) -> Tensor",
        &opentad::align1d_forward_cpu);
  m.def(
      "align1d_backward_cpu(Tensor grad_output, Tensor rois, int pooled_size, int batch_size, int channels, "
      "int length, int sampling_ratio) -> Tensor",
      &opentad::align1d_backward_cpu);
}

OPENTAD_PYTHON_MODULE("1D RoI align (CPU): torch.ops.opentad.align1d_forward_cpu / align1d_backward_cpu")
