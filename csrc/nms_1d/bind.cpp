// Binding of the 1D NMS op: module opentad.ops._nms_1d_cpu, ops torch.ops.opentad.nms_1d / softnms_1d.
#include <torch/library.h>

#include "../python_module.h"
#include "nms_1d.h"

TORCH_LIBRARY_FRAGMENT(opentad, m) {
  m.def("nms_1d(Tensor segs, Tensor scores, float iou_threshold, int max_num=0) -> Tensor", &opentad::nms_1d_cpu);
  m.def(
      "softnms_1d(Tensor segs, Tensor scores, *, float iou_threshold, float sigma, float min_score, int method, "
      "float t1, float t2, int max_num=0) -> (Tensor, Tensor)",
      &opentad::softnms_1d_cpu);
}

OPENTAD_PYTHON_MODULE("1D NMS and soft-NMS (CPU, float32): torch.ops.opentad.nms_1d, torch.ops.opentad.softnms_1d")
