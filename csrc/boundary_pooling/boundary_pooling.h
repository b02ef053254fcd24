// Boundary max pooling (AFSD): for every segment, the maximum of each channel
// over the segment's start region (first half of the channels) or end region
// (second half). Shared by the CPU and CUDA builds.
//
// input [B, C, T] (C even), segments [B, K, 4] = (start_left, start_right,
// end_left, end_right) in feature positions, same dtype as input. Each bound
// is truncated toward zero and clamped to [0, T - 1]; the window is
// [left, max(left, right)]; ties go to the first position (it receives the
// gradient). Output [B, C, K].
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>

#include <cstdint>

namespace opentad {

template <typename T>
C10_HOST_DEVICE inline int64_t clamp_position(T bound, int64_t length) {
  int64_t pos = static_cast<int64_t>(bound);
  pos = pos < 0 ? 0 : pos;
  return pos > length - 1 ? length - 1 : pos;
}

// Position of the first maximum of row[left..right] (a NaN is never taken,
// unless it sits at `left`).
template <typename T>
C10_HOST_DEVICE inline int64_t window_argmax(const T* row, int64_t length, T left_bound, T right_bound) {
  const int64_t left = clamp_position(left_bound, length);
  const int64_t right = clamp_position(right_bound, length);
  int64_t arg = left;
  T best = row[left];
  for (int64_t i = left + 1; i <= right; ++i) {
    if (row[i] > best) {
      best = row[i];
      arg = i;
    }
  }
  return arg;
}

// Offset in segments [B, K, 4] of the window bounds for (batch n, channel c, segment k).
C10_HOST_DEVICE inline int64_t bound_offset(int64_t n, int64_t c, int64_t k, int64_t channels, int64_t num_segs) {
  const int64_t region = c / (channels / 2);  // 0: start region, 1: end region
  return (n * num_segs + k) * 4 + region * 2;
}

at::Tensor boundary_pooling_forward_cpu(const at::Tensor& input, const at::Tensor& segments);
at::Tensor boundary_pooling_backward_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& segments);
at::Tensor boundary_pooling_forward_cuda(const at::Tensor& input, const at::Tensor& segments);
at::Tensor boundary_pooling_backward_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                          const at::Tensor& segments);

}  // namespace opentad
