// 1D NMS and soft-NMS on the CPU (float32), matching upstream OpenTAD's results.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace opentad {

// Greedy hard NMS. segs [N, 2], scores [N] (float32, CPU). Returns the int64
// indices of the kept segments, highest score first, at most max_num of them
// (max_num <= 0: all).
at::Tensor nms_1d_cpu(const at::Tensor& segs, const at::Tensor& scores, double iou_threshold, int64_t max_num);

// Soft-NMS. Returns dets [K, 3] (start, end, decayed score) in selection order
// and the int64 index of each selected segment. method: 0 hard, 1 linear,
// 2 Gaussian, 3 improved Gaussian (threshold t1 + t2 * length).
std::tuple<at::Tensor, at::Tensor> softnms_1d_cpu(const at::Tensor& segs, const at::Tensor& scores,
                                                  double iou_threshold, double sigma, double min_score,
                                                  int64_t method, double t1, double t2, int64_t max_num);

}  // namespace opentad
